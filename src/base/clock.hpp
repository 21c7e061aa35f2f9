// Time is injected: protocol timeouts, Received dates and tests all read a Clock.
#pragma once

#include <chrono>
#include <cstdint>

namespace postern::base {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::system_clock::time_point now() const = 0;
  int64_t unix_seconds() const {
    return std::chrono::duration_cast<std::chrono::seconds>(now().time_since_epoch()).count();
  }
};

class SystemClock final : public Clock {
 public:
  std::chrono::system_clock::time_point now() const override {
    return std::chrono::system_clock::now();
  }
};

// For tests: time moves only when told.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(std::chrono::system_clock::time_point t) : t_(t) {}
  std::chrono::system_clock::time_point now() const override { return t_; }
  void advance(std::chrono::seconds s) { t_ += s; }

 private:
  std::chrono::system_clock::time_point t_;
};

// RFC 5322 3.3 date-time in UTC, e.g. "Thu, 03 Dec 2026 13:05:53 +0000".
std::string rfc5322_date(std::chrono::system_clock::time_point t);

}  // namespace postern::base
