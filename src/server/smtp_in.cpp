// The inbound (MX) SMTP session: drives smtp::ServerSession over a socket, with STARTTLS,
// deadlines, recipient lookup and zero-access delivery through the group committer.
//
// Security: the peer controls every byte; the protocol machine bounds them. This file adds
// the time bounds (a deadline per command and per message, enforced by a watchdog that cancels
// the socket) and the connection limits. Nothing from the message is logged.
#include "server/smtp_in.hpp"

#include <algorithm>
#include <map>

#include "base/log.hpp"
#include "base/random.hpp"
#include "crypto/crypto.hpp"
#include "keys/keys.hpp"
#include "server/dmarc_reports.hpp"
#include "server/inbound_auth.hpp"
#include "server/outbound.hpp"
#include "server/session_io.hpp"
#include "server/submission.hpp"

namespace postern::server {
namespace {

std::string dkim_summary(const std::vector<mailauth::DkimOutcome>& dkim) {
  std::string out;
  for (const auto& d : dkim)
    out += (out.empty() ? "" : ",") + std::string(mailauth::to_string(d.result)) + ":" + d.domain;
  return out.empty() ? "none" : out;
}

// SPF, DKIM and DMARC for a message on the MX: the refusal to send, or nothing, with the
// Authentication-Results field (and Junk for quarantine) set on the request.
asio::awaitable<std::optional<smtp::Reply>> authenticate(SmtpShared& shared, std::string sid,
                                                         DeliveryRequest& in) {
  auto job = std::make_shared<InboundAuthJob>();
  auto message = std::make_shared<const std::string>(std::move(in.message));
  job->message = message;
  job->options = shared.settings.authentication;
  auto& r = job->request;
  r.ip = in.client_ip;
  r.helo = in.envelope.helo;
  r.mail_from = in.envelope.sender ? in.envelope.sender->str() : "";
  r.receiver = in.hostname;
  r.message = *message;
  r.now = shared.services.clock->unix_seconds();
  r.sample = static_cast<unsigned>(base::system_random().next_u64() % 100);
  mailauth::InboundVerdict v = co_await authenticate_inbound(job, shared.dns, shared.pool);
  using Action = mailauth::InboundVerdict::Action;
  const char* action = v.action == Action::deliver  ? "deliver"
                       : v.action == Action::junk   ? "junk"
                       : v.action == Action::reject ? "reject"
                                                    : "defer";
  base::log::info("smtp.mailauth", {{"sid", sid},
                                    {"spf", mailauth::to_string(v.spf.result)},
                                    {"dkim", dkim_summary(v.dkim)},
                                    {"dmarc", mailauth::to_string(v.dmarc.result)},
                                    {"arc", mailauth::to_string(v.arc.result)},
                                    {"from_domain", v.dmarc.from_domain},
                                    {"action", action}});
  if (auto event = mailauth::dmarc_event(r, v)) {
    Services svc = shared.services;
    asio::post(*shared.pool, [svc, e = std::move(*event)] { record_dmarc_event(svc, e); });
  }
  if (v.action == Action::reject || v.action == Action::defer)
    co_return smtp::Reply{v.code, v.enhanced, v.text};
  in.message = mailauth::remove_forged_results(*message, in.hostname);
  in.authentication_results = std::move(v.authentication_results);
  in.junk = v.action == Action::junk;
  co_return std::nullopt;
}

}  // namespace

asio::awaitable<void> smtp_session(tcp::socket socket, std::shared_ptr<SmtpShared> shared,
                                   bool implicit_tls) {
  boost::system::error_code ec;
  auto remote = socket.remote_endpoint(ec);
  if (ec) co_return;
  std::string ip = remote.address().to_string();
  std::string key = tracker_key(remote.address());
  std::string sid = std::to_string(shared->next_session.fetch_add(1));
  const SmtpSettings& settings = shared->settings;
  const Services& svc = shared->services;

  Stream stream(std::move(socket));
  auto verdict = shared->tracker.acquire(key);
  if (verdict != ConnectionTracker::Verdict::ok) {
    base::log::warn(
        "smtp.connection.refused",
        {{"sid", sid},
         {"ip", ip},
         {"reason", verdict == ConnectionTracker::Verdict::too_many_from_ip ? "per-ip limit"
                                                                            : "total limit"}});
    // Named, not a temporary inside co_await: GCC 12 destroys such temporaries wrongly.
    smtp::Reply refusal{
        421, "4.7.0",
        settings.protocol.hostname + (verdict == ConnectionTracker::Verdict::too_many_from_ip
                                          ? " Too many connections from your address"
                                          : " Too many connections, try again later")};
    std::string text = smtp::format_reply(refusal);
    co_await stream.write(std::move(text));
    co_return;
  }
  base::log::info("smtp.session.start", {{"sid", sid}, {"ip", ip}});

  auto watchdog = std::make_shared<Watchdog>(stream.socket().get_executor(), stream.socket());
  watchdog->self = watchdog;
  shared->enter(watchdog);
  SessionEnd session_end{watchdog, shared.get(), &shared->tracker, key};
  watchdog->arm(settings.command_timeout);
  asio::co_spawn(stream.socket().get_executor(), Watchdog::watch(watchdog), asio::detached);

  smtp::Options opt = settings.protocol;
  opt.starttls_offered = svc.tls != nullptr;
  opt.tls_active = false;
  if (implicit_tls) {
    if (!svc.tls) co_return;
    if (auto hec = co_await stream.start_tls(*svc.tls)) {
      base::log::warn("smtp.tls.failed", {{"sid", sid}, {"error", hec.message()}});
      co_return;
    }
    opt.tls_active = true;
  }
  const bool submission = opt.submission;
  int64_t auth_account = 0;
  smtp::ServerSession machine(opt);
  std::map<std::string, int64_t> accounts;
  std::string buffer(64 * 1024, '\0');
  uint64_t delivered = 0;
  std::string end_reason = "quit";

  while (true) {
    smtp::Action action = machine.next();
    if (machine.has_output() && action != smtp::Action::verify_recipient) {
      std::string out = machine.take_output();
      if (auto wec = co_await stream.write(std::move(out))) {
        end_reason = "write error";
        break;
      }
      watchdog->arm(machine.in_message() ? settings.data_timeout : settings.command_timeout);
    }
    if (action == smtp::Action::close) break;
    if (action == smtp::Action::read) {
      boost::system::error_code rec;
      std::size_t n = 0;
      bool at_command = !machine.in_message() && machine.buffered() == 0;
      if (!watchdog->expired() && !(at_command && shared->draining())) {
        watchdog->waiting_for_command(at_command);
        std::tie(rec, n) = co_await stream.read_some(asio::buffer(buffer));
        watchdog->waiting_for_command(false);
      }
      if (at_command && shared->draining() && !watchdog->expired()) {
        end_reason = "shutdown";
        smtp::Reply bye{421, "4.3.2", settings.protocol.hostname + " Service shutting down"};
        std::string text = smtp::format_reply(bye);
        watchdog->arm(std::chrono::seconds(10));
        co_await stream.write(std::move(text));
        break;
      }
      if (watchdog->expired() || rec) {
        if (watchdog->expired()) {
          end_reason = "timeout";
          machine.timeout();
          watchdog->arm(std::chrono::seconds(10));  // for the 421 itself
          std::string out = machine.take_output();
          co_await stream.write(std::move(out));
        } else {
          end_reason = rec == asio::error::eof ? "disconnect" : "read error";
        }
        break;
      }
      machine.feed(std::string_view(buffer.data(), n));
      // RFC 5321 4.5.3.2.5: inside a message the deadline is per block received, so a large
      // message over a slow link is not cut off while it keeps arriving.
      if (machine.in_message()) watchdog->arm(settings.data_timeout);
    } else if (action == smtp::Action::verify_recipient) {
      mime::Mailbox mb = machine.pending_recipient();
      store::Store* st = svc.store;
      std::string postmaster = settings.postmaster;
      auto lookup = [st, mb, postmaster, submission]() -> Result<RecipientVerdict> {
        if (submission && mb.domain.empty())  // <Postmaster>: which one? Not ours to guess.
          return RecipientVerdict{smtp::Reply{550, "5.1.3", "Give the full Postmaster address"}};
        if (submission) {
          // Any remote recipient; local ones must exist (bounce now rather than later).
          auto local = st->is_local_domain(mb.domain);
          if (!local) return local.error();
          if (!*local) return RecipientVerdict{};
        }
        return lookup_recipient(*st, mb, postmaster);
      };
      auto v = co_await run_blocking<Result<RecipientVerdict>>(*shared->pool, std::move(lookup));
      if (!v) {
        base::log::error("smtp.lookup.failed", {{"sid", sid}, {"error", v.error().describe()}});
        v = RecipientVerdict{
            smtp::Reply{451, "4.3.0", "Temporary lookup failure, try again later"}};
      }
      if (machine.envelope().recipients.empty()) accounts.clear();
      if (!v->rejection) accounts[mb.lookup_key()] = v->account_id;
      machine.recipient_verdict(v->rejection);
    } else if (action == smtp::Action::authenticate) {
      std::string user = machine.auth_user();
      // One copy of the password, behind a pointer: moving the job around (pool, callback)
      // must not leave short-string copies behind that are never wiped.
      auto pw = std::make_shared<std::string>(machine.take_auth_password());
      auto check = [shared, user, pw]() -> Result<int64_t> {
        auto r = shared->passwords.verify(*shared->services.store, user, *pw);
        crypto::wipe(*pw);
        if (!r) return r.error();
        return r->first.id;  // the unwrapped keys are wiped here: sending needs none
      };
      auto verified = co_await run_blocking<Result<int64_t>>(*shared->pool, std::move(check));
      if (verified) {
        auth_account = *verified;
        base::log::info("smtp.auth.ok", {{"sid", sid}, {"ip", ip}, {"user", user}});
        machine.auth_result(true);
      } else if (verified.error().code() == keys::Errc::wrong_password) {
        base::log::warn("smtp.auth.failed",
                        {{"sid", sid}, {"ip", ip}, {"user", user.substr(0, 128)}});
        machine.auth_result(false);
      } else {
        base::log::error("smtp.auth.error", {{"sid", sid}, {"error", verified.error().describe()}});
        machine.auth_unavailable();
      }
    } else if (action == smtp::Action::verify_sender) {
      mime::Mailbox mb = machine.pending_sender();
      store::Store* st = svc.store;
      auto resolve = [st, key = mb.lookup_key()] { return st->resolve_address(key); };
      auto owner =
          co_await run_blocking<Result<std::optional<int64_t>>>(*shared->pool, std::move(resolve));
      std::optional<smtp::Reply> rejection;
      if (!owner)
        rejection = smtp::Reply{451, "4.3.0", "Temporary lookup failure, try again later"};
      else if (!*owner || **owner != auth_account)
        rejection = smtp::Reply{550, "5.7.1", "Sender address <" + mb.str() + "> is not yours"};
      machine.sender_verdict(rejection);
    } else if (action == smtp::Action::deliver && submission) {
      auto in = std::make_shared<SubmissionRequest>();
      in->envelope = machine.envelope();
      in->message = machine.take_message();
      in->account_id = auth_account;
      in->hostname = settings.protocol.hostname;
      in->queue_id = base::system_random().token(10);
      in->dkim = settings.dkim_sign;
      Services s = svc;
      auto job = [s, in] { return accept_submission(s, *in); };
      auto accepted =
          co_await run_blocking<Result<SubmissionOutcome>>(*shared->pool, std::move(job));
      crypto::wipe(in->message);
      smtp::Reply reply;
      if (!accepted) {
        base::log::error("smtp.submit.failed",
                         {{"sid", sid}, {"error", accepted.error().describe()}});
        reply = delivery_failure_reply(accepted.error());
      } else {
        reply = accepted->reply;
        if (reply.code == 250) {
          ++delivered;
          base::log::info("smtp.submit.ok", {{"sid", sid},
                                             {"id", accepted->queue_id},
                                             {"recipients", in->envelope.recipients.size()}});
          if (shared->outbound) shared->outbound->kick();
        } else {
          base::log::info("smtp.submit.refused", {{"sid", sid}, {"reply", reply.enhanced}});
        }
      }
      machine.delivery_result(reply);
    } else if (action == smtp::Action::deliver) {
      auto in = std::make_shared<DeliveryRequest>();
      in->envelope = machine.envelope();
      in->message = machine.take_message();
      in->accounts = accounts;
      in->client_ip = ip;
      in->tls_cipher = stream.cipher();
      in->queue_id = base::system_random().token(10);
      in->hostname = settings.protocol.hostname;
      bool skip = std::any_of(settings.authenticate_skip.begin(), settings.authenticate_skip.end(),
                              [&](const std::string& n) { return mailauth::in_network(ip, n); });
      if (settings.authenticate && shared->dns && !skip) {
        auto refusal = co_await authenticate(*shared, sid, *in);
        if (refusal) {
          machine.delivery_result(*refusal);
          continue;
        }
      }
      Services s = svc;
      auto job = [s, in] { return prepare_delivery(s, *in); };
      auto prepared = co_await run_blocking<Result<std::vector<PreparedMessage>>>(*shared->pool,
                                                                                  std::move(job));
      smtp::Reply reply{250, "2.0.0", "Ok: queued as " + in->queue_id};
      if (!prepared) {
        base::log::error(
            "smtp.deliver.failed",
            {{"sid", sid}, {"id", in->queue_id}, {"error", prepared.error().describe()}});
        reply = delivery_failure_reply(prepared.error());
      } else {
        std::size_t count = prepared->size();
        Committer* committer = svc.committer;
        auto submit = [committer, p = std::move(*prepared)](auto cb) mutable {
          committer->submit(std::move(p), std::move(cb));
        };
        auto committed = co_await await_callback<Result<void>>(std::move(submit));
        if (!committed) {
          base::log::error(
              "smtp.deliver.failed",
              {{"sid", sid}, {"id", in->queue_id}, {"error", committed.error().describe()}});
          reply = delivery_failure_reply(committed.error());
        } else {
          ++delivered;
          if (svc.changes)
            for (const auto& [addr, account] : in->accounts) svc.changes->notify(account);
          base::log::info("smtp.deliver.ok", {{"sid", sid},
                                              {"id", in->queue_id},
                                              {"mailboxes", count},
                                              {"bytes", in->message.size()}});
        }
      }
      machine.delivery_result(reply);
    } else if (action == smtp::Action::start_tls) {
      if (auto hec = co_await stream.start_tls(*svc.tls)) {
        base::log::warn("smtp.tls.failed", {{"sid", sid}, {"error", hec.message()}});
        end_reason = "tls handshake failed";
        break;
      }
      machine.tls_started();
      base::log::info("smtp.tls.ok", {{"sid", sid}, {"cipher", stream.cipher()}});
    }
  }

  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  base::log::info("smtp.session.end",
                  {{"sid", sid}, {"reason", end_reason}, {"delivered", delivered}});
}

}  // namespace postern::server
