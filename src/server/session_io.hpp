// Internal to server/: what every protocol session needs around its socket: a stream that can
// switch to TLS, and the watchdog that enforces the client's deadlines.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "server/asio_util.hpp"

namespace postern::server {

// Plain TCP until STARTTLS, then TLS over the same socket. OpenSSL reads and writes the
// (non-blocking) socket itself and the coroutine waits for readiness: asio's ssl::stream keeps
// two 17 KiB buffers and a 34 KiB BIO pair per connection, most of what an idle IMAP session
// would cost.
class Stream {
 public:
  explicit Stream(tcp::socket s) : sock_(std::move(s)) {}
  tcp::socket& socket() { return sock_; }
  bool tls() const { return ssl_ != nullptr; }

  asio::awaitable<std::pair<boost::system::error_code, std::size_t>> read_some(
      asio::mutable_buffer b);
  asio::awaitable<boost::system::error_code> write(std::string data);
  asio::awaitable<boost::system::error_code> start_tls(asio::ssl::context& ctx);
  // Outbound: handshake as the client, sending `server_name` as SNI. With `verify`, the peer's
  // chain must validate under the context's CA store and name `server_name`.
  asio::awaitable<boost::system::error_code> start_tls_client(asio::ssl::context& ctx,
                                                              std::string server_name, bool verify);
  std::string cipher() const;

 private:
  asio::awaitable<boost::system::error_code> wait_for(int ssl_want);
  asio::awaitable<boost::system::error_code> handshake();
  struct SslFree {
    void operator()(SSL* s) const { SSL_free(s); }
  };
  tcp::socket sock_;
  std::unique_ptr<SSL, SslFree> ssl_;
};

// One per session. The client must have done its part (sent a command, the message) by the
// deadline; past it the watcher cancels the socket's pending operations and marks the session
// expired. arm() restarts the clock after each reply, so time the server spends working
// (lookups, encryption, the commit) never counts against the client.
class Watchdog {
 public:
  Watchdog(const asio::any_io_executor& ex, tcp::socket& socket) : timer_(ex), socket_(&socket) {}
  void arm(std::chrono::seconds d) {
    expired_ = false;
    timer_.expires_after(d);  // cancels the pending wait: the watcher re-reads the expiry
  }
  bool expired() const { return expired_; }
  void stop() {
    done_ = true;
    timer_.cancel();
  }
  // The session is about to wait for a command (true) or is busy with one (false).
  void waiting_for_command(bool w) { waiting_for_command_ = w; }
  // From any thread: interrupts a session that is waiting for a command.
  void drain() {
    asio::post(timer_.get_executor(), [this, self = weak_from_this_()] {
      if (auto keep = self.lock(); keep && !done_ && waiting_for_command_) {
        boost::system::error_code ignored;
        socket_->cancel(ignored);
      }
    });
  }
  // The watcher coroutine; one per session, ends after stop().
  static asio::awaitable<void> watch(std::shared_ptr<Watchdog> w);
  std::weak_ptr<Watchdog> self;

 private:
  std::weak_ptr<Watchdog> weak_from_this_() const { return self; }
  asio::steady_timer timer_;
  tcp::socket* socket_;
  bool done_ = false;
  bool expired_ = false;
  bool waiting_for_command_ = false;
};

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

// The sessions of one protocol that are alive, so shutdown can drain them: sessions waiting
// for a command are interrupted at once; sessions in the middle of something finish it first.
class LiveSessions {
 public:
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

// Releases what a session holds however it ends (normal return or exception).
struct SessionEnd {
  std::shared_ptr<Watchdog> watchdog;
  LiveSessions* live;
  ConnectionTracker* tracker;
  std::string tracker_key;
  ~SessionEnd() {
    watchdog->stop();
    live->leave(watchdog);
    tracker->release(tracker_key);
  }
};

// Connection limits count IPv4 addresses and IPv6 /64 networks (one customer's allocation).
std::string tracker_key(const asio::ip::address& a);

}  // namespace postern::server
