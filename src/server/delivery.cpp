// Local delivery: per recipient account, add the trace headers, encrypt content and summary to
// the account's storage key (keys::seal_message) and write the blob durably. The committer then
// makes the batch visible. Nothing here needs an account secret.
#include "base/log.hpp"
#include "crypto/crypto.hpp"
#include "imap/imap.hpp"
#include "keys/keys.hpp"
#include "mime/mime.hpp"
#include "server/outbound.hpp"

namespace postern::server {
namespace {

std::string received_header(const DeliveryRequest& in, const base::Clock& clock,
                            const std::string& for_address) {
  const auto& env = in.envelope;
  std::string proto = env.smtputf8 ? "UTF8SMTP" : (env.esmtp ? "ESMTP" : "SMTP");
  if (env.tls) proto += "S";  // RFC 3848
  std::string h = "Received: from " + env.helo + " ([" + in.client_ip + "])\r\n\tby " +
                  in.hostname + " (postern) with " + proto + " id " + in.queue_id + "\r\n\t";
  if (!in.tls_cipher.empty()) h += "(" + in.tls_cipher + ")\r\n\t";
  if (!for_address.empty()) h += "for <" + for_address + ">";
  h += "; " + base::rfc5322_date(clock.now()) + "\r\n";
  return h;
}

}  // namespace

Result<RecipientVerdict> lookup_recipient(store::Store& store, const mime::Mailbox& mb,
                                          const std::string& postmaster) {
  std::string key;
  if (mb.domain.empty()) {
    key = postmaster;  // RFC 5321 4.1.1.3 <Postmaster>
  } else {
    auto local = store.is_local_domain(mb.domain);
    if (!local) return local.error();
    if (!*local) return RecipientVerdict{smtp::Reply{550, "5.7.1", "Relay access denied"}};
    key = mb.lookup_key();
  }
  auto id = store.resolve_address(key);
  if (!id) return id.error();
  if (!*id && mb.lookup_key().starts_with("postmaster@") && !postmaster.empty()) {
    id = store.resolve_address(postmaster);
    if (!id) return id.error();
  }
  if (!*id)
    return RecipientVerdict{smtp::Reply{550, "5.1.1", "Recipient address rejected: user unknown"}};
  auto account = store.account_by_id(**id);
  if (!account) return account.error();
  if (*account && (*account)->quota_bytes > 0) {
    auto used = store.usage(**id);
    if (!used) return used.error();
    // Temporary: the sender retries, and the user may make room meanwhile (RFC 3463 4.2.2).
    if (*used >= static_cast<uint64_t>((*account)->quota_bytes))
      return RecipientVerdict{smtp::Reply{452, "4.2.2", "Mailbox full, try again later"}};
  }
  return RecipientVerdict{std::nullopt, **id};
}

Result<std::vector<PreparedMessage>> prepare_delivery(const Services& svc,
                                                      const DeliveryRequest& in) {
  std::vector<PreparedMessage> out;
  std::map<int64_t, std::string> targets;  // account -> the first address that reached it
  for (const auto& rcpt : in.envelope.recipients) {
    auto it = in.accounts.find(rcpt.lookup_key());
    if (it != in.accounts.end()) targets.emplace(it->second, rcpt.str());
  }
  std::string return_path = in.envelope.sender ? in.envelope.sender->str() : "";
  std::string received = received_header(
      in, *svc.clock, in.envelope.recipients.size() == 1 ? in.envelope.recipients[0].str() : "");
  auto fail = [&](Error e) -> Result<std::vector<PreparedMessage>> {
    for (const auto& p : out) (void)svc.blobs->remove(p.record.blob_id);
    return e;
  };
  for (const auto& [account_id, address] : targets) {
    auto account = svc.store->account_by_id(account_id);
    if (!account) return fail(account.error());
    if (!*account) continue;  // deleted meanwhile
    auto inbox = svc.store->find_mailbox(account_id, in.junk ? "Junk" : "INBOX");
    if (inbox && !*inbox && in.junk) inbox = svc.store->find_mailbox(account_id, "INBOX");
    if (!inbox) return fail(inbox.error());
    if (!*inbox) return fail(Error(Errc::no_mailbox, address));
    std::string content = "Return-Path: <" + return_path + ">\r\nDelivered-To: " + address +
                          "\r\n" + received + in.authentication_results + in.message;
    auto sealed = seal_message_for(svc, (*account)->storage_public, content);
    if (!sealed) return fail(sealed.error());
    PreparedMessage p = std::move(*sealed);
    p.record.mailbox_id = (*inbox)->id;
    p.record.internal_date = svc.clock->unix_seconds();
    if (svc.dedupe_key) {
      // What the client sent, to whom, from whom: identical on a retry, different otherwise.
      auto digest = crypto::keyed_hash(svc.dedupe_key->view(),
                                       {return_path, std::to_string(account_id), in.message});
      if (!digest) return fail(digest.error());
      p.record.dedupe_digest = std::move(*digest);
    }
    out.push_back(std::move(p));
  }
  return out;
}

Result<PreparedMessage> seal_message_for(const Services& svc, std::string_view storage_public,
                                         std::string_view content) {
  mime::HeaderLimits limits;
  limits.max_headers = 10000;
  limits.max_header_bytes = content.size();
  auto summary = mime::summarize(content, limits);
  if (!summary) return summary.error();
  summary->envelope_cache = imap::envelope(summary->header_section);
  summary->structure_cache = imap::body_structure(*summary, content, true).value_or("");
  auto sealed = keys::seal_message(storage_public, content, summary->serialize());
  if (!sealed) return sealed.error();
  auto blob = svc.blobs->write(sealed->blob);
  if (!blob) return blob.error();
  PreparedMessage p{store::NewMessage{}, std::move(*blob)};
  p.record.blob_id = p.blob.id;
  p.record.size = content.size();
  p.record.sealed_key = std::move(sealed->sealed_key);
  p.record.summary = std::move(sealed->summary);
  return p;
}

smtp::Reply delivery_failure_reply(const Error& e) {
  // The message itself is unacceptable (header limits): retrying cannot help.
  if (e.code().category() == mime::category())
    return {554, "5.6.0", "Message header section exceeds limits"};
  if (e.code() == std::errc::no_space_on_device || e.code() == store::Errc::full)
    return {452, "4.3.1", "Insufficient system storage, try again later"};
  return {451, "4.3.0", "Temporary storage failure, try again later"};
}

}  // namespace postern::server
