// Errors as values across module boundaries. Every module has its own error enum and
// std::error_category; an Error carries the code plus a human-readable detail (file and line
// for config errors, the failing path for I/O errors). Nothing in L0-L2 throws.
#pragma once

#include <boost/system/result.hpp>

#include <string>
#include <system_error>
#include <utility>

namespace postern {

class Error {
 public:
  Error() = default;
  Error(std::error_code code, std::string detail = {}) : code_(code), detail_(std::move(detail)) {}

  const std::error_code& code() const { return code_; }
  const std::string& detail() const { return detail_; }
  // "category: message: detail", for logs and CLI output.
  std::string describe() const;

 private:
  std::error_code code_;
  std::string detail_;
};

// Calling value() on a failed Result is a programming error, never a recoverable condition.
[[noreturn]] void throw_exception_from_error(const Error& e, const boost::source_location& loc);

template <class T>
using Result = boost::system::result<T, Error>;

inline Error errno_error(int err, std::string detail) {
  return Error(std::error_code(err, std::generic_category()), std::move(detail));
}

}  // namespace postern
