// What happens to a message a user submits, between the end of DATA and the 250: the
// RFC 6409 fixes, the sender check against the authenticated account, a Received field
// without the client's address, the DKIM signatures of the author's domain, and the queue.
#include "server/submission.hpp"

#include "base/random.hpp"
#include "mailauth/mailauth.hpp"
#include "queue/queue.hpp"

namespace postern::server {
namespace {

bool has_8bit(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return true;
  return false;
}

}  // namespace

Result<std::string> dkim_signatures(store::Store& store, const std::string& domain,
                                    std::string_view message, int64_t now) {
  auto records = store.dkim_keys(domain);
  if (!records) return records.error();
  struct Wipe {
    std::vector<store::DkimKeyRecord>& keys;
    ~Wipe() {
      for (auto& k : keys) crypto::wipe(k.secret);
    }
  } wipe{*records};
  std::string out;
  bool have_ed = false, have_rsa = false;
  for (const auto& rec : *records) {  // newest first
    bool ed = rec.algorithm == "ed25519-sha256";
    if ((ed && have_ed) || (!ed && have_rsa)) continue;
    (ed ? have_ed : have_rsa) = true;
    mailauth::DkimKey key;
    key.algorithm =
        ed ? mailauth::DkimAlgorithm::ed25519_sha256 : mailauth::DkimAlgorithm::rsa_sha256;
    key.domain = rec.domain;
    key.selector = rec.selector;
    key.secret = crypto::SecretBytes::copy_of(rec.secret);
    key.public_key = rec.public_key;
    mailauth::DkimOptions options;
    options.timestamp = now;
    auto sig = mailauth::dkim_sign(message, key, options);
    if (!sig) return sig.error();
    out += *sig;
  }
  return out;
}

Result<SubmissionOutcome> accept_submission(const Services& svc, const SubmissionRequest& in) {
  SubmissionOutcome out;
  smtp::SubmissionFix fix;
  fix.hostname = in.hostname;
  fix.message_id_local = base::system_random().token(16);
  fix.date = base::rfc5322_date(svc.clock->now());
  auto prepared = smtp::prepare_submission(in.message, fix);
  if (!prepared) {
    out.reply =
        smtp::Reply{554, "5.6.0", "Message header not acceptable: " + prepared.error().detail()};
    return out;
  }
  // Every author (and the Sender, if given) must be an address of the authenticated account.
  auto owned = [&](const mime::Mailbox& mb) -> Result<bool> {
    auto id = svc.store->resolve_address(mb.lookup_key());
    if (!id) return id.error();
    return *id && **id == in.account_id;
  };
  for (const auto* list : {&prepared->authors, &prepared->senders})
    for (const auto& mb : *list) {
      auto ok = owned(mb);
      if (!ok) return ok.error();
      if (!*ok) {
        out.reply =
            smtp::Reply{550, "5.7.1", "From address <" + mb.str() + "> is not yours to send as"};
        return out;
      }
    }
  // Privacy: the trace field names this server, not the user's address or client.
  std::string received = "Received: by " + in.hostname + " (postern) with " +
                         (in.envelope.smtputf8 ? "UTF8SMTPSA" : "ESMTPSA") + " id " + in.queue_id +
                         ";\r\n\t" + fix.date + "\r\n";
  std::string message = received + prepared->message;
  if (in.dkim) {
    auto sigs = dkim_signatures(*svc.store, prepared->authors.front().domain, message,
                                svc.clock->unix_seconds());
    if (!sigs) return sigs.error();
    message = *sigs + message;
  }
  queue::NewMessage q;
  q.sender = in.envelope.sender ? in.envelope.sender->str() : "";
  for (const auto& r : in.envelope.recipients) q.recipients.push_back(r.str());
  q.smtputf8 = in.envelope.smtputf8;
  q.eight_bit = in.envelope.body == smtp::Body::eight_bit_mime || has_8bit(message);
  q.requiretls = in.envelope.requiretls;
  q.content = std::move(message);
  auto id = svc.queue->enqueue(q);
  crypto::wipe(q.content);
  if (!id) return id.error();
  out.queue_id = *id;
  out.reply = smtp::Reply{250, "2.0.0", "Ok: queued as " + *id};
  return out;
}

}  // namespace postern::server
