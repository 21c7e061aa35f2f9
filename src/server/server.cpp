// Listeners, threads, signals and the privilege drop.
#include <grp.h>
#include <pwd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <thread>

#include "base/log.hpp"
#include "net/net.hpp"
#include "server/smtp_in.hpp"

namespace postern::server {

struct Server::Impl {
  ServerOptions options;
  asio::io_context io;
  asio::thread_pool pool;
  std::vector<tcp::acceptor> acceptors;
  std::shared_ptr<SmtpShared> smtp;
  asio::signal_set signals;

  explicit Impl(ServerOptions o)
      : options(std::move(o)),
        io(static_cast<int>(options.io_threads)),
        pool(options.blocking_threads),
        signals(io, SIGINT, SIGTERM) {}
};

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Server::~Server() {
  impl_->io.stop();
  impl_->pool.join();
}

namespace {

Result<void> drop_privileges(const std::string& user) {
  if (user.empty() || ::geteuid() != 0) return {};
  struct passwd* pw = ::getpwnam(user.c_str());
  if (!pw) return errno_error(ENOENT, "server.run_as_user: no user " + user);
  if (::initgroups(pw->pw_name, pw->pw_gid) != 0 || ::setgid(pw->pw_gid) != 0 ||
      ::setuid(pw->pw_uid) != 0)
    return errno_error(errno, "dropping privileges to " + user);
  if (::setuid(0) == 0) return errno_error(EPERM, "privileges could be regained after the drop");
  base::log::info("server.privileges.dropped", {{"user", user}});
  return {};
}

asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, std::shared_ptr<SmtpShared> shared) {
  while (acceptor.is_open()) {
    auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(acceptor.get_executor()),
                                                       nothrow_awaitable);
    if (ec) {
      if (ec == asio::error::operation_aborted) co_return;
      // Out of descriptors (EMFILE) and the like: retrying at once would spin.
      base::log::warn("smtp.accept.failed", {{"error", ec.message()}});
      asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(100));
      co_await pause.async_wait(nothrow_awaitable);
      continue;
    }
    auto ex = socket.get_executor();
    asio::co_spawn(ex, smtp_session(std::move(socket), shared), asio::detached);
  }
}

}  // namespace

Result<void> Server::bind() {
  auto& m = *impl_;
  // Every connection and every blob awaiting its group commit holds a descriptor.
  struct rlimit nofile {};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &nofile);
  }
  for (const auto& text : m.options.smtp_listen) {
    auto ep = net::parse_endpoint(text);
    if (!ep) return ep.error();
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(ep->host, ec);
    if (ec) return Error(net::Errc::bad_address, "smtp.listen: " + text + ": " + ec.message());
    tcp::endpoint endpoint(addr, ep->port);
    tcp::acceptor acc(m.io);
    acc.open(endpoint.protocol(), ec);
    if (!ec) acc.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acc.bind(endpoint, ec);
    if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return Error(ec, "smtp.listen " + text);
    m.acceptors.push_back(std::move(acc));
  }
  return drop_privileges(m.options.run_as_user);
}

std::vector<std::string> Server::bound() const {
  std::vector<std::string> out;
  for (const auto& a : impl_->acceptors) {
    boost::system::error_code ec;
    auto ep = a.local_endpoint(ec);
    if (!ec) out.push_back(net::Endpoint{ep.address().to_string(), ep.port()}.str());
  }
  return out;
}

Result<void> Server::run(Services services) {
  auto& m = *impl_;
  m.smtp = std::make_shared<SmtpShared>(m.options.smtp, std::move(services), &m.pool);
  for (auto& acc : m.acceptors) asio::co_spawn(m.io, accept_loop(acc, m.smtp), asio::detached);
  m.signals.async_wait([this](const boost::system::error_code& ec, int sig) {
    if (!ec) {
      base::log::info("server.stopping", {{"signal", sig}});
      stop();
    }
  });
  for (const auto& b : bound())
    base::log::info("server.listening", {{"protocol", "smtp"}, {"address", b}});
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < m.options.io_threads; ++i) threads.emplace_back([&m] { m.io.run(); });
  m.io.run();
  for (auto& t : threads) t.join();
  // Blocking work still queued finishes now, while the store it uses is still open.
  m.pool.join();
  return {};
}

namespace {
// Waits for the sessions to finish what they are doing, at most `grace`, then stops.
asio::awaitable<void> wind_down(asio::io_context& io, std::shared_ptr<SmtpShared> smtp,
                                std::chrono::seconds grace) {
  auto until = std::chrono::steady_clock::now() + grace;
  asio::steady_timer tick(io);
  while (smtp && smtp->live_sessions() > 0 && std::chrono::steady_clock::now() < until) {
    tick.expires_after(std::chrono::milliseconds(50));
    co_await tick.async_wait(nothrow_awaitable);
  }
  base::log::info("server.drained",
                  {{"sessions_left", smtp ? static_cast<uint64_t>(smtp->live_sessions()) : 0}});
  io.stop();
}
}  // namespace

void Server::stop() {
  asio::post(impl_->io, [m = impl_.get()] {
    for (auto& a : m->acceptors) {
      boost::system::error_code ec;
      a.close(ec);
    }
    if (m->smtp) m->smtp->drain();
    asio::co_spawn(m->io, wind_down(m->io, m->smtp, m->options.shutdown_grace), asio::detached);
  });
}

}  // namespace postern::server
