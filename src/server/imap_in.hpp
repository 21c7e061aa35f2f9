// Internal to server/: the IMAP listeners' shared state and the session coroutine.
#pragma once

#include <atomic>
#include <memory>

#include "server/asio_util.hpp"
#include "server/imap_session.hpp"
#include "server/session_io.hpp"

namespace postern::server {

struct ImapShared : LiveSessions {
  ImapShared(ImapSettings s, Services svc, asio::thread_pool* p)
      : pool(p), tracker(s.max_connections, s.max_connections_per_ip) {
    ctx.settings = std::move(s);
    ctx.services = std::move(svc);
  }
  ImapContext ctx;
  asio::thread_pool* pool = nullptr;
  ConnectionTracker tracker;
  std::atomic<uint64_t> next_session{1};
};

// implicit_tls: the handshake comes first (port 993); otherwise STARTTLS is offered.
asio::awaitable<void> imap_session(tcp::socket socket, std::shared_ptr<ImapShared> shared,
                                   bool implicit_tls);

}  // namespace postern::server
