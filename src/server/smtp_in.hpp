// Internal to server/: the inbound SMTP session.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <unordered_map>

#include "server/asio_util.hpp"
#include "server/outbound.hpp"
#include "server/password_check.hpp"
#include "server/server.hpp"
#include "server/session_io.hpp"

namespace postern::server {

struct SmtpShared : LiveSessions {
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
  PasswordCheck passwords{settings.argon2};  // submission
  Outbound* outbound = nullptr;              // told when a submission is queued
  DnsPump* dns = nullptr;                    // SPF, DKIM and DMARC lookups (MX)
};

// The MX session (settings.protocol.submission false) or a submission session; implicit_tls:
// the handshake comes first (port 465).
asio::awaitable<void> smtp_session(tcp::socket socket, std::shared_ptr<SmtpShared> shared,
                                   bool implicit_tls);

}  // namespace postern::server
