// The IMAP session over a socket: reads complete commands (CommandReader), runs each on the
// blocking pool (ImapSession), writes the responses; STARTTLS and implicit TLS; IDLE woken by
// the change bus; deadlines by the watchdog (login, command, IDLE's 30 minutes).
//
// Security: the peer controls every byte; CommandReader bounds what is held. Commands the
// client pipelined before STARTTLS are discarded (RFC 9051 6.2.1). Nothing from the mail is
// logged.
#include "server/imap_in.hpp"

#include "base/log.hpp"
#include "server/imap_session.hpp"

namespace postern::server {
namespace {

struct Step {
  ImapSession::Outcome outcome;
  std::string out;
};

// IDLE's wake-up: set on the strand by the change bus, read on the strand by the session.
struct IdleState {
  bool idling = false;
  bool reading = false;  // waiting for the client: the only time a wake-up may cancel
  bool notified = false;
  tcp::socket* socket = nullptr;
};

}  // namespace

asio::awaitable<void> imap_session(tcp::socket socket, std::shared_ptr<ImapShared> shared,
                                   bool implicit_tls) {
  boost::system::error_code ec;
  auto remote = socket.remote_endpoint(ec);
  if (ec) co_return;
  std::string ip = remote.address().to_string();
  std::string key = tracker_key(remote.address());
  std::string sid = "i" + std::to_string(shared->next_session.fetch_add(1));
  const ImapSettings& settings = shared->ctx.settings;
  Stream stream(std::move(socket));
  auto verdict = shared->tracker.acquire(key);
  if (verdict != ConnectionTracker::Verdict::ok) {
    base::log::warn("imap.connection.refused", {{"sid", sid}, {"ip", ip}});
    if (!implicit_tls) {
      std::string bye = "* BYE Too many connections, try again later\r\n";
      co_await stream.write(std::move(bye));
    }
    co_return;
  }
  base::log::info("imap.session.start", {{"sid", sid}, {"ip", ip}, {"tls", implicit_tls}});
  auto watchdog = std::make_shared<Watchdog>(stream.socket().get_executor(), stream.socket());
  watchdog->self = watchdog;
  shared->enter(watchdog);
  SessionEnd session_end{watchdog, shared.get(), &shared->tracker, key};
  watchdog->arm(settings.login_timeout);
  asio::co_spawn(stream.socket().get_executor(), Watchdog::watch(watchdog), asio::detached);

  std::string end_reason = "logout";
  if (implicit_tls) {
    if (auto hec = co_await stream.start_tls(*shared->ctx.services.tls)) {
      base::log::info("imap.tls.failed", {{"sid", sid}, {"error", hec.message()}});
      co_return;
    }
  }
  auto session = std::make_shared<ImapSession>(shared->ctx, ip, implicit_tls);
  imap::CommandReader reader(settings.limits);
  auto idle = std::make_shared<IdleState>();
  idle->socket = &stream.socket();
  std::shared_ptr<ChangeBus::Callback> subscription;
  // Small: a session spends its life idle, and literals arrive in several reads anyway.
  std::string buffer(4 * 1024, '\0');
  std::string greeting = session->greeting();
  co_await stream.write(std::move(greeting));

  // The client's deadline: short until it logs in, IDLE's 30 minutes after.
  auto timeout = [&] {
    return session->authenticated() ? settings.idle_timeout : settings.login_timeout;
  };

  bool running = true;
  while (running) {
    auto status = reader.next();
    if (status == imap::CommandReader::Status::need_more) {
      watchdog->arm(timeout());
      bool between_commands = reader.buffered() == 0;
      watchdog->waiting_for_command(between_commands);
      boost::system::error_code rec;
      std::size_t n = 0;
      // A drain that came while the last command ran found the session busy: check it here,
      // on the strand, before waiting for the client again.
      if (!(between_commands && shared->draining()))
        std::tie(rec, n) = co_await stream.read_some(asio::buffer(buffer));
      watchdog->waiting_for_command(false);
      if (watchdog->expired() || rec || (shared->draining() && reader.buffered() == 0)) {
        if (watchdog->expired() || shared->draining()) {
          end_reason = watchdog->expired() ? "timeout" : "shutdown";
          watchdog->arm(std::chrono::seconds(10));
          std::string bye = watchdog->expired() ? "* BYE Autologout; idle for too long\r\n"
                                                : "* BYE Server shutting down\r\n";
          co_await stream.write(std::move(bye));
        } else {
          end_reason = rec == asio::error::eof ? "disconnect" : "read error";
        }
        break;
      }
      reader.feed(std::string_view(buffer.data(), n));
      continue;
    }
    if (status == imap::CommandReader::Status::continuation) {
      std::string go = "+ Ready for literal data\r\n";
      if (co_await stream.write(std::move(go))) break;
      continue;
    }
    if (status == imap::CommandReader::Status::too_long) {
      std::string bad = reader.tag() + " BAD Command line too long\r\n* BYE Closing\r\n";
      co_await stream.write(std::move(bad));
      end_reason = "line too long";
      break;
    }
    if (status == imap::CommandReader::Status::literal_too_big) {
      std::string no = reader.tag() + " NO [TOOBIG] Literal too large\r\n";
      if (!reader.can_continue()) no += "* BYE Closing\r\n";
      co_await stream.write(std::move(no));
      if (!reader.can_continue()) {
        end_reason = "literal too large";
        break;
      }
      continue;
    }
    // A complete command.
    std::string text = reader.take_command();
    auto run = [session, text = std::move(text)]() mutable -> Result<Step> {
      Step s;
      s.outcome = session->execute(text, s.out);
      crypto::wipe(text);  // it may have held a password
      return s;
    };
    auto step = co_await run_blocking<Result<Step>>(*shared->pool, std::move(run));
    if (!step) {
      base::log::error("imap.command.failed", {{"sid", sid}, {"error", step.error().describe()}});
      std::string bye = "* BYE Internal error\r\n";
      co_await stream.write(std::move(bye));
      break;
    }
    // A write that fails or is cancelled leaves the client with part of a response: the
    // session cannot go on.
    bool write_failed = static_cast<bool>(co_await stream.write(std::move(step->out)));
    while (!write_failed && step->outcome.more) {
      auto more = [session]() -> Result<Step> {
        Step s;
        s.outcome = session->resume(s.out);
        return s;
      };
      step = co_await run_blocking<Result<Step>>(*shared->pool, std::move(more));
      if (!step) break;
      write_failed = static_cast<bool>(co_await stream.write(std::move(step->out)));
    }
    if (write_failed) end_reason = "write error";
    if (write_failed || !step || step->outcome.close) break;
    reader.set_logged_in(session->authenticated());
    if (step->outcome.start_tls) {
      // Anything pipelined after STARTTLS was sent in clear: discard it.
      reader = imap::CommandReader(settings.limits);
      if (auto hec = co_await stream.start_tls(*shared->ctx.services.tls)) {
        base::log::info("imap.tls.failed", {{"sid", sid}, {"error", hec.message()}});
        end_reason = "tls handshake failed";
        break;
      }
      session->tls_started();
      continue;
    }
    if (session->authenticated() && !subscription && shared->ctx.services.changes) {
      std::weak_ptr<IdleState> weak = idle;
      auto ex = stream.socket().get_executor();
      subscription = shared->ctx.services.changes->subscribe(session->account_id(), [weak, ex] {
        asio::post(ex, [weak] {
          auto s = weak.lock();
          if (!s) return;
          s->notified = true;
          boost::system::error_code ignored;
          if (s->idling && s->reading) s->socket->cancel(ignored);
        });
      });
    }
    if (!step->outcome.idle) continue;
    // IDLE: report changes as they happen until the client says DONE.
    // A wake-up that came while the IDLE command itself ran stays set: the first pass
    // reports it.
    idle->idling = true;
    bool idle_over = false;
    while (!idle_over) {
      if (idle->notified) {
        idle->notified = false;
        auto updates = [session]() -> Result<Step> {
          Step s;
          s.outcome.close = !session->idle_updates(s.out);
          return s;
        };
        auto u = co_await run_blocking<Result<Step>>(*shared->pool, std::move(updates));
        bool failed = !u;
        if (u && !u->out.empty()) {
          std::string text = std::move(u->out);
          failed = static_cast<bool>(co_await stream.write(std::move(text)));
        }
        if (failed || u->outcome.close) {
          end_reason = failed ? "write error" : "mailbox deleted";
          running = false;
          break;
        }
      }
      auto st = reader.next();
      if (st == imap::CommandReader::Status::command) {
        std::string line = reader.take_command();
        std::string out;
        session->idle_done(line, out);
        if (co_await stream.write(std::move(out))) running = false;
        idle_over = true;
        break;
      }
      if (st != imap::CommandReader::Status::need_more) {
        running = false;
        break;
      }
      watchdog->arm(settings.idle_timeout);
      watchdog->waiting_for_command(true);
      boost::system::error_code rec;
      std::size_t n = 0;
      idle->reading = true;
      if (!shared->draining()) std::tie(rec, n) = co_await stream.read_some(asio::buffer(buffer));
      idle->reading = false;
      watchdog->waiting_for_command(false);
      if (rec == asio::error::operation_aborted && idle->notified && !watchdog->expired() &&
          !shared->draining())
        continue;
      if (rec || watchdog->expired() || shared->draining()) {
        end_reason = watchdog->expired() ? "timeout" : rec ? "disconnect" : "shutdown";
        if (watchdog->expired() || shared->draining()) {
          watchdog->arm(std::chrono::seconds(10));
          std::string bye = "* BYE Autologout\r\n";
          co_await stream.write(std::move(bye));
        }
        running = false;
        break;
      }
      reader.feed(std::string_view(buffer.data(), n));
    }
    idle->idling = false;
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  // The keys go with the session object; the pool may still hold it for a moment.
  subscription.reset();
  session.reset();
  base::log::info("imap.session.end", {{"sid", sid}, {"reason", end_reason}});
}

}  // namespace postern::server
