// What follows a delivery attempt: recipient states, retries, expiry, bounces and delay
// notifications (RFC 3464), and removing finished messages.
//
// Order for durability: a notification is queued (durable) before the recipient rows that
// call for it are updated, and the message is removed only after both. A crash in between
// sends a notification twice, never zero times.
#include "base/clock.hpp"
#include "base/random.hpp"
#include "queue/queue.hpp"

namespace postern::queue {
namespace {

std::string date_of(int64_t unix_seconds) {
  return base::rfc5322_date(
      std::chrono::system_clock::time_point(std::chrono::seconds(unix_seconds)));
}

std::string describe(const smtp::Reply& r) {
  std::string s = std::to_string(r.code);
  if (!r.enhanced.empty()) s += " " + r.enhanced;
  if (!r.text.empty()) s += " " + r.text;
  return s;
}

std::string status_of(const smtp::Reply& r, char cls) {
  if (!r.enhanced.empty() && r.enhanced[0] == cls) return r.enhanced;
  return std::string(1, cls) + ".0.0";
}

}  // namespace

Result<std::size_t> Queue::record(store::QueuedMessage m, const std::vector<Attempt>& attempts) {
  int64_t now = clock_.unix_seconds();
  bool expired = now - m.created >= policy_.lifetime.count();
  std::vector<smtp::DsnRecipient> failed, delayed;
  std::vector<store::QueuedRecipient> changed;
  for (const auto& a : attempts) {
    auto it = std::find_if(m.recipients.begin(), m.recipients.end(),
                           [&](const store::QueuedRecipient& r) { return r.id == a.recipient_id; });
    if (it == m.recipients.end() || it->state != store::RecipientState::pending) continue;
    store::QueuedRecipient& r = *it;
    ++r.attempts;
    r.last_reply = describe(a.reply).substr(0, 512);
    r.remote_mta = a.remote_mta;
    smtp::DsnRecipient d{r.address,    "", "", a.remote_mta, "smtp; " + r.last_reply,
                         date_of(now), ""};
    if (a.reply.code / 100 == 2) {
      r.state = store::RecipientState::delivered;
    } else if (a.reply.code / 100 == 5) {
      r.state = store::RecipientState::failed;
      d.action = "failed";
      d.status = status_of(a.reply, '5');
      failed.push_back(std::move(d));
    } else if (expired) {
      r.state = store::RecipientState::failed;
      d.action = "failed";
      d.status = a.reply.enhanced.starts_with("4.") ? a.reply.enhanced : "4.4.7";
      failed.push_back(std::move(d));
    } else {
      r.next_attempt = next_attempt(policy_, now, r.attempts);
    }
    changed.push_back(r);
  }
  bool warn = false;
  if (!m.warned && now - m.created >= policy_.warn_after.count()) {
    for (const auto& r : m.recipients)
      if (r.state == store::RecipientState::pending)
        delayed.push_back({r.address, "delayed", "4.0.0", r.remote_mta,
                           r.last_reply.empty() ? "" : "smtp; " + r.last_reply, date_of(now),
                           date_of(m.created + policy_.lifetime.count())});
    warn = !delayed.empty();
  }
  // Deliveries are saved first: they need no notice, and a failure further down must not make
  // the next scan send them again.
  std::vector<store::QueuedRecipient> done, rest;
  for (auto& r : changed)
    (r.state == store::RecipientState::delivered ? done : rest).push_back(std::move(r));
  if (!done.empty())
    if (auto r = store_.update_recipients(m.id, done); !r) return r.error();
  if (!m.sender.empty()) {
    if (!failed.empty())
      if (auto r = notify_sender(m, failed); !r) return r.error();
    if (warn)
      if (auto r = notify_sender(m, delayed); !r) return r.error();
  }
  if (!rest.empty())
    if (auto r = store_.update_recipients(m.id, rest); !r) return r.error();
  if (warn)
    if (auto r = store_.set_queue_warned(m.id); !r) return r.error();
  std::size_t pending = 0;
  for (const auto& r : m.recipients) pending += r.state == store::RecipientState::pending;
  if (pending == 0)
    if (auto r = remove(m.id); !r) return r.error();
  return pending;
}

Result<void> Queue::notify_sender(const store::QueuedMessage& m,
                                  const std::vector<smtp::DsnRecipient>& recipients) {
  // The original's header section goes back to the sender; an unreadable queue file still
  // gets its bounce, without it.
  std::string headers;
  if (auto original = content(m)) {
    auto hs = mime::parse_header_section(*original, mime::HeaderLimits{});
    if (hs) headers = original->substr(0, std::min(hs->body_offset, original->size()));
    crypto::wipe(*original);
  }
  smtp::DsnRequest req;
  req.reporting_mta = hostname_;
  req.postmaster = "MAILER-DAEMON@" + hostname_;
  req.to = m.sender;
  req.date = base::rfc5322_date(clock_.now());
  req.message_id = "<" + base::system_random().token(12) + "@" + hostname_ + ">";
  req.boundary = "dsn-" + base::system_random().token(12);
  req.arrival_date = date_of(m.created);
  req.original_headers = std::move(headers);
  req.recipients = recipients;
  NewMessage dsn;
  dsn.recipients = {m.sender};
  dsn.content = smtp::make_dsn(req);
  dsn.smtputf8 = m.smtputf8;
  dsn.eight_bit = true;
  auto id = enqueue(dsn);
  if (!id) return id.error();
  return {};
}

}  // namespace postern::queue
