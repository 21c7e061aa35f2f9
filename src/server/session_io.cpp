// Session plumbing shared by the SMTP and IMAP servers.
#include "server/session_io.hpp"

namespace postern::server {

asio::awaitable<std::pair<boost::system::error_code, std::size_t>> Stream::read_some(
    asio::mutable_buffer b) {
  if (tls_) {
    auto [ec, n] = co_await tls_->async_read_some(b, nothrow_awaitable);
    co_return std::make_pair(ec, n);
  }
  auto [ec, n] = co_await sock_.async_read_some(b, nothrow_awaitable);
  co_return std::make_pair(ec, n);
}

asio::awaitable<boost::system::error_code> Stream::write(std::string data) {
  if (tls_) {
    auto [ec, n] = co_await asio::async_write(*tls_, asio::buffer(data), nothrow_awaitable);
    co_return ec;
  }
  auto [ec, n] = co_await asio::async_write(sock_, asio::buffer(data), nothrow_awaitable);
  co_return ec;
}

asio::awaitable<boost::system::error_code> Stream::start_tls(asio::ssl::context& ctx) {
  tls_ = std::make_unique<asio::ssl::stream<tcp::socket&>>(sock_, ctx);
  auto [ec] = co_await tls_->async_handshake(asio::ssl::stream_base::server, nothrow_awaitable);
  co_return ec;
}

std::string Stream::cipher() const {
  if (!tls_) return {};
  const SSL* ssl = const_cast<asio::ssl::stream<tcp::socket&>&>(*tls_).native_handle();
  return std::string(SSL_get_version(ssl)) + ":" + SSL_get_cipher_name(ssl);
}

asio::awaitable<void> Watchdog::watch(std::shared_ptr<Watchdog> w) {
  while (!w->done_) {
    co_await w->timer_.async_wait(nothrow_awaitable);
    if (w->done_) co_return;
    // Woken by arm() (aborted wait), or a completion that raced with it: check the expiry.
    if (w->timer_.expiry() > std::chrono::steady_clock::now()) continue;
    w->expired_ = true;
    boost::system::error_code ignored;
    w->socket_->cancel(ignored);
    w->timer_.expires_at(std::chrono::steady_clock::time_point::max());  // until the next arm()
  }
}

ConnectionTracker::Verdict ConnectionTracker::acquire(const std::string& ip) {
  std::lock_guard lock(mu_);
  if (total_ >= max_total_) return Verdict::too_many_total;
  auto it = per_ip_.find(ip);
  if (it != per_ip_.end() && it->second >= max_per_ip_) return Verdict::too_many_from_ip;
  ++per_ip_[ip];
  ++total_;
  return Verdict::ok;
}

void ConnectionTracker::release(const std::string& ip) {
  std::lock_guard lock(mu_);
  auto it = per_ip_.find(ip);
  if (it == per_ip_.end()) return;
  if (--it->second == 0) per_ip_.erase(it);
  --total_;
}

void LiveSessions::enter(const std::shared_ptr<Watchdog>& w) {
  std::lock_guard lock(live_mu_);
  live_.push_back(w);
}

void LiveSessions::leave(const std::shared_ptr<Watchdog>& w) {
  std::lock_guard lock(live_mu_);
  std::erase_if(live_, [&](const std::weak_ptr<Watchdog>& p) {
    auto l = p.lock();
    return !l || l == w;
  });
}

std::size_t LiveSessions::live_sessions() {
  std::lock_guard lock(live_mu_);
  return live_.size();
}

void LiveSessions::drain() {
  draining_ = true;
  std::lock_guard lock(live_mu_);
  for (const auto& p : live_)
    if (auto w = p.lock()) w->drain();
}

std::string tracker_key(const asio::ip::address& a) {
  if (a.is_v6()) {
    auto v6 = a.to_v6();
    if (v6.is_v4_mapped()) return asio::ip::make_address_v4(asio::ip::v4_mapped, v6).to_string();
    auto bytes = v6.to_bytes();
    for (std::size_t i = 8; i < bytes.size(); ++i) bytes[i] = 0;
    return asio::ip::address_v6(bytes).to_string() + "/64";
  }
  return a.to_string();
}

}  // namespace postern::server
