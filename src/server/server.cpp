// Listeners, threads, signals and the privilege drop.
#include <grp.h>
#include <malloc.h>
#include <pwd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <thread>

#include "base/log.hpp"
#include "net/net.hpp"
#include "server/dmarc_reports.hpp"
#include "server/dns_pump.hpp"
#include "server/imap_in.hpp"
#include "server/smtp_in.hpp"

namespace postern::server {

struct Server::Impl {
  ServerOptions options;
  asio::io_context io;
  asio::thread_pool pool;
  enum class Kind { smtp, imap, imaps, submission, submissions };
  std::vector<tcp::acceptor> acceptors;
  std::vector<Kind> kinds;       // per acceptor
  std::unique_ptr<DnsPump> dns;  // before its users, so that it outlives them
  std::shared_ptr<SmtpShared> smtp;
  std::shared_ptr<SmtpShared> submission;
  std::shared_ptr<ImapShared> imap;
  std::unique_ptr<Outbound> outbound;
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

// Accepts connections and hands each to `start` (a session coroutine factory).
template <class Start>
asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, Start start) {
  while (acceptor.is_open()) {
    auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(acceptor.get_executor()),
                                                       nothrow_awaitable);
    if (ec) {
      if (ec == asio::error::operation_aborted) co_return;
      // Out of descriptors (EMFILE) and the like: retrying at once would spin.
      base::log::warn("server.accept.failed", {{"error", ec.message()}});
      asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(100));
      co_await pause.async_wait(nothrow_awaitable);
      continue;
    }
    // Replies are small and the client waits for each: without this, Nagle holds a reply
    // behind the delayed ACK of the previous one (~40 ms, seen at every TLS greeting).
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    auto ex = socket.get_executor();
    asio::co_spawn(ex, start(std::move(socket)), asio::detached);
  }
}

// A TLS handshake allocates ~50 KiB that is freed once the session is up; thousands of
// sessions leave the heap full of such holes, which glibc keeps unless asked. Returning them
// every few seconds is what keeps an idle connection's memory near what it really holds.
asio::awaitable<void> return_free_memory(asio::io_context& io) {
  asio::steady_timer t(io);
  while (true) {
    t.expires_after(std::chrono::seconds(5));
    auto [ec] = co_await t.async_wait(nothrow_awaitable);
    if (ec) co_return;
    malloc_trim(0);
  }
}

// Once a UTC day is over, its DMARC events become reports (checked every interval, so a
// server that was down at midnight catches up when it starts).
asio::awaitable<void> dmarc_report_loop(asio::io_context& io, asio::thread_pool& pool, Services svc,
                                        DmarcReportSettings settings) {
  asio::steady_timer t(io);
  while (true) {
    int64_t now = svc.clock->unix_seconds();
    int64_t day_start = now - now % 86400;
    auto job = [svc, settings, day_start] { return send_dmarc_reports(svc, settings, day_start); };
    auto sent = co_await run_blocking<Result<DmarcReportOutcome>>(pool, std::move(job));
    if (!sent)
      base::log::warn("dmarc.report.failed", {{"error", sent.error().describe()}});
    else if (sent->reports > 0)
      base::log::info("dmarc.reports.sent", {{"reports", sent->reports}, {"events", sent->events}});
    t.expires_after(settings.check_interval);
    auto [ec] = co_await t.async_wait(nothrow_awaitable);
    if (ec) co_return;
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
  auto listen = [&](const std::vector<std::string>& addresses, Impl::Kind kind,
                    const char* key) -> Result<void> {
    for (const auto& text : addresses) {
      auto ep = net::parse_endpoint(text);
      if (!ep) return ep.error();
      boost::system::error_code ec;
      auto addr = asio::ip::make_address(ep->host, ec);
      if (ec)
        return Error(net::Errc::bad_address, std::string(key) + ": " + text + ": " + ec.message());
      tcp::endpoint endpoint(addr, ep->port);
      tcp::acceptor acc(m.io);
      acc.open(endpoint.protocol(), ec);
      if (!ec) acc.set_option(tcp::acceptor::reuse_address(true), ec);
      if (!ec) acc.bind(endpoint, ec);
      if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
      if (ec) return Error(ec, std::string(key) + " " + text);
      m.acceptors.push_back(std::move(acc));
      m.kinds.push_back(kind);
    }
    return {};
  };
  if (auto r = listen(m.options.smtp_listen, Impl::Kind::smtp, "smtp.listen"); !r) return r;
  if (auto r = listen(m.options.imap_listen, Impl::Kind::imap, "imap.listen"); !r) return r;
  if (auto r = listen(m.options.imaps_listen, Impl::Kind::imaps, "imap.tls_listen"); !r) return r;
  if (auto r = listen(m.options.submission_listen, Impl::Kind::submission, "submission.listen"); !r)
    return r;
  if (auto r =
          listen(m.options.submissions_listen, Impl::Kind::submissions, "submission.tls_listen");
      !r)
    return r;
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
  if (services.resolver) m.dns = std::make_unique<DnsPump>(m.io, *services.resolver);
  m.smtp = std::make_shared<SmtpShared>(m.options.smtp, services, &m.pool);
  m.smtp->dns = m.dns.get();
  SmtpSettings submission_settings = m.options.smtp;
  submission_settings.protocol.submission = true;
  m.submission = std::make_shared<SmtpShared>(submission_settings, services, &m.pool);
  if (services.queue) {
    m.outbound =
        std::make_unique<Outbound>(m.io, m.pool, services, m.options.outbound, m.dns.get());
    m.submission->outbound = m.outbound.get();
    m.outbound->start();
  }
  ImapSettings imap_settings = m.options.imap;
  m.imap = std::make_shared<ImapShared>(imap_settings, services, &m.pool);
  for (std::size_t i = 0; i < m.acceptors.size(); ++i) {
    auto kind = m.kinds[i];
    if (kind == Impl::Kind::smtp) {
      auto start = [smtp = m.smtp](tcp::socket s) {
        return smtp_session(std::move(s), smtp, false);
      };
      asio::co_spawn(m.io, accept_loop(m.acceptors[i], start), asio::detached);
    } else if (kind == Impl::Kind::submission || kind == Impl::Kind::submissions) {
      bool tls = kind == Impl::Kind::submissions;
      auto start = [sub = m.submission, tls](tcp::socket s) {
        return smtp_session(std::move(s), sub, tls);
      };
      asio::co_spawn(m.io, accept_loop(m.acceptors[i], start), asio::detached);
    } else {
      bool tls = kind == Impl::Kind::imaps;
      auto start = [imap = m.imap, tls](tcp::socket s) {
        return imap_session(std::move(s), imap, tls);
      };
      asio::co_spawn(m.io, accept_loop(m.acceptors[i], start), asio::detached);
    }
  }
  asio::co_spawn(m.io, return_free_memory(m.io), asio::detached);
  if (m.options.dmarc_reports.enabled && services.report_key && services.queue)
    asio::co_spawn(m.io, dmarc_report_loop(m.io, m.pool, services, m.options.dmarc_reports),
                   asio::detached);
  m.signals.async_wait([this](const boost::system::error_code& ec, int sig) {
    if (!ec) {
      base::log::info("server.stopping", {{"signal", sig}});
      stop();
    }
  });
  {
    auto addresses = bound();
    const char* names[] = {"smtp", "imap", "imaps", "submission", "submissions"};
    for (std::size_t i = 0; i < addresses.size(); ++i)
      base::log::info("server.listening", {{"protocol", names[static_cast<int>(m.kinds[i])]},
                                           {"address", addresses[i]}});
  }
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
                                std::shared_ptr<SmtpShared> submission,
                                std::shared_ptr<ImapShared> imap, Outbound* outbound,
                                std::chrono::seconds grace) {
  auto until = std::chrono::steady_clock::now() + grace;
  asio::steady_timer tick(io);
  auto live = [&] {
    return (smtp ? smtp->live_sessions() : 0) + (submission ? submission->live_sessions() : 0) +
           (imap ? imap->live_sessions() : 0) + (outbound ? outbound->active() : 0);
  };
  while (live() > 0 && std::chrono::steady_clock::now() < until) {
    tick.expires_after(std::chrono::milliseconds(50));
    co_await tick.async_wait(nothrow_awaitable);
  }
  base::log::info("server.drained", {{"sessions_left", static_cast<uint64_t>(live())}});
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
    if (m->submission) m->submission->drain();
    if (m->imap) m->imap->drain();
    if (m->outbound) m->outbound->stop();
    asio::co_spawn(m->io,
                   wind_down(m->io, m->smtp, m->submission, m->imap, m->outbound.get(),
                             m->options.shutdown_grace),
                   asio::detached);
  });
}

}  // namespace postern::server
