// Session plumbing shared by the SMTP and IMAP servers.
#include "server/session_io.hpp"

namespace postern::server {

namespace {

boost::system::error_code ssl_error(SSL* ssl, int r) {
  int e = SSL_get_error(ssl, r);
  if (e == SSL_ERROR_ZERO_RETURN) return asio::error::eof;
  unsigned long code = ERR_get_error();
  // SSL_ERROR_SYSCALL with an empty error queue: the peer closed the connection.
  if (e == SSL_ERROR_SYSCALL && code == 0) return asio::error::eof;
  if (code == 0) return asio::error::fault;
  return {static_cast<int>(code), asio::error::get_ssl_category()};
}

bool wants_io(int e) {
  return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
}

}  // namespace

asio::awaitable<boost::system::error_code> Stream::wait_for(int ssl_want) {
  auto what = ssl_want == SSL_ERROR_WANT_WRITE ? tcp::socket::wait_write : tcp::socket::wait_read;
  auto [ec] = co_await sock_.async_wait(what, nothrow_awaitable);
  co_return ec;
}

asio::awaitable<std::pair<boost::system::error_code, std::size_t>> Stream::read_some(
    asio::mutable_buffer b) {
  if (!ssl_) {
    auto [ec, n] = co_await sock_.async_read_some(b, nothrow_awaitable);
    co_return std::make_pair(ec, n);
  }
  while (true) {
    ERR_clear_error();
    std::size_t n = 0;
    int r = SSL_read_ex(ssl_.get(), b.data(), b.size(), &n);
    if (r == 1) co_return std::make_pair(boost::system::error_code(), n);
    int e = SSL_get_error(ssl_.get(), r);
    if (!wants_io(e)) co_return std::make_pair(ssl_error(ssl_.get(), r), std::size_t{0});
    if (auto ec = co_await wait_for(e)) co_return std::make_pair(ec, std::size_t{0});
  }
}

asio::awaitable<boost::system::error_code> Stream::write(std::string data) {
  if (!ssl_) {
    auto [ec, n] = co_await asio::async_write(sock_, asio::buffer(data), nothrow_awaitable);
    co_return ec;
  }
  std::size_t done = 0;
  while (done < data.size()) {
    ERR_clear_error();
    std::size_t n = 0;
    int r = SSL_write_ex(ssl_.get(), data.data() + done, data.size() - done, &n);
    if (r == 1) {
      done += n;
      continue;
    }
    int e = SSL_get_error(ssl_.get(), r);
    if (!wants_io(e)) co_return ssl_error(ssl_.get(), r);
    if (auto ec = co_await wait_for(e)) co_return ec;
  }
  co_return boost::system::error_code();
}

asio::awaitable<boost::system::error_code> Stream::start_tls(asio::ssl::context& ctx) {
  boost::system::error_code ec;
  sock_.non_blocking(true, ec);
  if (ec) co_return ec;
  ssl_.reset(SSL_new(ctx.native_handle()));
  if (!ssl_ || SSL_set_fd(ssl_.get(), static_cast<int>(sock_.native_handle())) != 1)
    co_return asio::error::no_memory;
  SSL_set_accept_state(ssl_.get());
  co_return co_await handshake();
}

asio::awaitable<boost::system::error_code> Stream::start_tls_client(asio::ssl::context& ctx,
                                                                    std::string server_name,
                                                                    bool verify) {
  boost::system::error_code ec;
  sock_.non_blocking(true, ec);
  if (ec) co_return ec;
  ssl_.reset(SSL_new(ctx.native_handle()));
  if (!ssl_ || SSL_set_fd(ssl_.get(), static_cast<int>(sock_.native_handle())) != 1)
    co_return asio::error::no_memory;
  SSL_set_tlsext_host_name(ssl_.get(), server_name.c_str());
  if (verify) {
    SSL_set_verify(ssl_.get(), SSL_VERIFY_PEER, nullptr);
    if (SSL_set1_host(ssl_.get(), server_name.c_str()) != 1) co_return asio::error::no_memory;
  } else {
    SSL_set_verify(ssl_.get(), SSL_VERIFY_NONE, nullptr);
  }
  SSL_set_connect_state(ssl_.get());
  co_return co_await handshake();
}

asio::awaitable<boost::system::error_code> Stream::handshake() {
  // Writes resume from where a partial write stopped, with the rest of the same string.
  SSL_set_mode(ssl_.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  while (true) {
    ERR_clear_error();
    int r = SSL_do_handshake(ssl_.get());
    if (r == 1) co_return boost::system::error_code();
    int e = SSL_get_error(ssl_.get(), r);
    if (!wants_io(e)) co_return ssl_error(ssl_.get(), r);
    if (auto wec = co_await wait_for(e)) co_return wec;
  }
}

std::string Stream::cipher() const {
  if (!ssl_) return {};
  return std::string(SSL_get_version(ssl_.get())) + ":" + SSL_get_cipher_name(ssl_.get());
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
