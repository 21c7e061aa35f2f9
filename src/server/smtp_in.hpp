// Internal to server/: the inbound SMTP session.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <unordered_map>

#include "server/asio_util.hpp"
#include "server/server.hpp"

namespace postern::server {

// Counts connections in total and per client address.
class ConnectionTracker {
 public:
  ConnectionTracker(std::size_t max_total, std::size_t max_per_ip)
      : max_total_(max_total), max_per_ip_(max_per_ip) {}
  enum class Verdict { ok, too_many_total, too_many_from_ip };
  Verdict acquire(const std::string& ip);
  void release(const std::string& ip);

 private:
  std::mutex mu_;
  std::size_t max_total_, max_per_ip_, total_ = 0;
  std::unordered_map<std::string, std::size_t> per_ip_;
};

class Watchdog;

struct SmtpShared {
  SmtpShared(SmtpSettings s, Services svc, asio::thread_pool* p)
      : settings(std::move(s)),
        services(std::move(svc)),
        pool(p),
        tracker(settings.max_connections, settings.max_connections_per_ip) {}
  SmtpSettings settings;
  Services services;
  asio::thread_pool* pool = nullptr;
  ConnectionTracker tracker;
  std::atomic<uint64_t> next_session{1};

  // Shutdown: sessions waiting for a command are told 421 4.3.2 at once; sessions in the middle
  // of a message finish it first.
  void drain();
  bool draining() const { return draining_.load(); }
  std::size_t live_sessions();
  void enter(const std::shared_ptr<Watchdog>& w);
  void leave(const std::shared_ptr<Watchdog>& w);

 private:
  std::atomic<bool> draining_{false};
  std::mutex live_mu_;
  std::vector<std::weak_ptr<Watchdog>> live_;
};

asio::awaitable<void> smtp_session(tcp::socket socket, std::shared_ptr<SmtpShared> shared);

}  // namespace postern::server
