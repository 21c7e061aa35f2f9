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
};

asio::awaitable<void> smtp_session(tcp::socket socket, std::shared_ptr<SmtpShared> shared);

}  // namespace postern::server
