// Account, domain and alias administration; mail_list and check for operators and tests.
#include <istream>
#include <ostream>

#include "app/app.hpp"
#include "app/cli_support.hpp"
#include "app/services.hpp"
#include "base/clock.hpp"
#include "base/text.hpp"
#include "keys/keys.hpp"
#include "mime/mime.hpp"

namespace postern::app {

int user_add(const std::string& config_path, const std::string& address, std::istream& in,
             std::ostream& out, std::ostream& err) {
  int code = exit_ok;
  auto o = open(config_path, err, code);
  if (!o) return code;
  std::string password = read_secret_line(in);
  auto recovery = create_account(*o->store, o->config, address, password);
  crypto::wipe(password);
  if (!recovery) return report(recovery.error(), err);
  out << "created " << address << "\nrecovery key " << *recovery
      << "\n(shown only this once: it unlocks the mailbox if the password is lost)\n";
  return exit_ok;
}

int user_passwd(const std::string& config_path, const std::string& address, std::istream& in,
                bool with_recovery, std::ostream& out, std::ostream& err) {
  int code = exit_ok;
  auto o = open(config_path, err, code);
  if (!o) return code;
  auto found = find_with_keyring(*o->store, address);
  if (!found) return report(found.error(), err);
  const auto* acc = &found->account;
  const auto* ring = &found->keyring;
  // First line: the current password (or the recovery key); second line: the new password.
  std::string old_secret = read_secret_line(in);
  std::string new_password = read_secret_line(in);
  auto unlocked = with_recovery ? keys::unlock_with_recovery(acc->address, *ring, old_secret)
                                : keys::unlock_with_password(acc->address, *ring, old_secret);
  crypto::wipe(old_secret);
  if (!unlocked) {
    crypto::wipe(new_password);
    return report(unlocked.error(), err);
  }
  auto rewrapped =
      keys::rewrap_password(acc->address, *ring, *unlocked, new_password, argon2_params(o->config));
  crypto::wipe(new_password);
  if (!rewrapped) return report(rewrapped.error(), err);
  if (auto r = o->store->update_keyring(acc->id, rewrapped->serialize()); !r)
    return report(r.error(), err);
  out << "password changed for " << acc->address << "\n";
  return exit_ok;
}

int user_list(const std::string& config_path, std::ostream& out, std::ostream& err) {
  int code = exit_ok;
  auto o = open(config_path, err, code);
  if (!o) return code;
  auto accounts = o->store->accounts();
  if (!accounts) return report(accounts.error(), err);
  for (const auto& a : *accounts) {
    auto used = o->store->usage(a.id);
    out << a.address << " " << (used ? *used : 0) << " bytes";
    if (a.quota_bytes > 0) out << " of " << a.quota_bytes;
    out << "\n";
  }
  return exit_ok;
}

int dkim_show(const std::string& config_path, const std::string& domain, std::ostream& out,
              std::ostream& err) {
  int code = exit_ok;
  auto o = open(config_path, err, code);
  if (!o) return code;
  std::vector<std::string> domains{domain};
  if (domain.empty()) {
    auto all = o->store->domains();
    if (!all) return report(all.error(), err);
    domains = *all;
  }
  for (const auto& d : domains) {
    auto keys = o->store->dkim_keys(d);
    if (!keys) return report(keys.error(), err);
    if (keys->empty() && !domain.empty())
      return report(Error(store::Errc::not_found, "no DKIM key for " + d), err);
    for (auto& k : *keys) {
      out << dkim_dns_line(k) << "\n";
      crypto::wipe(k.secret);
    }
  }
  return exit_ok;
}

int dkim_rotate(const std::string& config_path, const std::string& domain, std::ostream& out,
                std::ostream& err) {
  int code = exit_ok;
  auto o = open(config_path, err, code);
  if (!o) return code;
  auto local = o->store->is_local_domain(domain);
  if (!local) return report(local.error(), err);
  if (!*local) return report(Error(store::Errc::not_found, "not a local domain: " + domain), err);
  auto lines = create_dkim_keys(*o->store, domain, base::SystemClock().unix_seconds());
  if (!lines) return report(lines.error(), err);
  for (const auto& l : *lines) out << l << "\n";
  return exit_ok;
}

int user_quota(const std::string& config_path, const std::string& address, int64_t bytes,
               std::ostream& out, std::ostream& err) {
  int code = exit_ok;
  auto o = open(config_path, err, code);
  if (!o) return code;
  auto acc = find(*o->store, address);
  if (!acc) return report(acc.error(), err);
  if (auto r = o->store->set_quota(acc->id, bytes); !r) return report(r.error(), err);
  out << acc->address << ": quota " << (bytes > 0 ? std::to_string(bytes) + " bytes" : "none")
      << "\n";
  return exit_ok;
}

int user_delete(const std::string& config_path, const std::string& address, std::ostream& out,
                std::ostream& err) {
  int code = exit_ok;
  auto o = open(config_path, err, code);
  if (!o) return code;
  auto acc = find(*o->store, address);
  if (!acc) return report(acc.error(), err);
  auto blobs = o->store->delete_account(acc->id);
  if (!blobs) return report(blobs.error(), err);
  store::BlobStore bs(o->config.blob_dir());
  std::size_t removed = 0;
  for (const auto& b : *blobs)
    if (bs.remove(b)) ++removed;
  out << "deleted " << acc->address << ": keys destroyed, " << removed
      << " message blobs removed\n";
  return exit_ok;
}

int domain_add(const std::string& config_path, const std::string& domain, std::ostream& out,
               std::ostream& err) {
  int code = exit_ok;
  auto o = open(config_path, err, code);
  if (!o) return code;
  if (!mime::valid_domain(domain, false)) {
    err << "postern: '" << domain << "' is not a valid domain name\n";
    return exit_usage;
  }
  std::string lower = base::ascii_lower(domain);
  if (auto r = o->store->add_domain(lower); !r) return report(r.error(), err);
  out << "added domain " << lower << "\n";
  return exit_ok;
}

int alias_add(const std::string& config_path, const std::string& alias, const std::string& target,
              std::ostream& out, std::ostream& err) {
  int code = exit_ok;
  auto o = open(config_path, err, code);
  if (!o) return code;
  auto acc = find(*o->store, target);
  if (!acc) return report(acc.error(), err);
  auto key = normalise_address(*o->store, alias);
  if (!key) return report(key.error(), err);
  if (auto r = o->store->add_alias(*key, acc->id); !r) return report(r.error(), err);
  out << "alias " << *key << " -> " << acc->address << "\n";
  return exit_ok;
}

int mail_list(const std::string& config_path, const std::string& address,
              const std::string& mailbox, std::istream& in, std::optional<uint32_t> uid,
              std::ostream& out, std::ostream& err) {
  int code = exit_ok;
  auto o = open(config_path, err, code);
  if (!o) return code;
  auto found = find_with_keyring(*o->store, address);
  if (!found) return report(found.error(), err);
  const auto* acc = &found->account;
  std::string password = read_secret_line(in);
  auto unlocked = keys::unlock_with_password(acc->address, found->keyring, password);
  crypto::wipe(password);
  if (!unlocked) return report(unlocked.error(), err);
  auto inbox = o->store->find_mailbox(acc->id, mailbox);
  if (!inbox) return report(inbox.error(), err);
  if (!*inbox) return report(Error(store::Errc::not_found, mailbox), err);
  auto msgs = o->store->messages((*inbox)->id);
  if (!msgs) return report(msgs.error(), err);
  store::BlobStore blobs(o->config.blob_dir());
  for (const auto& m : *msgs) {
    if (uid && m.uid != *uid) continue;
    auto key = keys::open_content_key(*unlocked, m.sealed_key);
    if (!key) return report(key.error(), err);
    if (uid) {
      auto blob = blobs.get(m.blob_id);
      if (!blob) return report(blob.error(), err);
      auto content = keys::open_blob(*key, *blob);
      if (!content) return report(content.error(), err);
      out << *content;
      return exit_ok;
    }
    auto sum = keys::open_summary(*key, m.summary);
    if (!sum) return report(sum.error(), err);
    auto summary = mime::Summary::parse(*sum);
    if (!summary) return report(summary.error(), err);
    auto hs = mime::parse_header_section(summary->header_section, mime::HeaderLimits{});
    std::string subject, message_id;
    if (hs) {
      if (auto* h = hs->find("Subject")) subject = mime::unfold(h->raw_value);
      if (auto* h = hs->find("Message-ID")) message_id = mime::unfold(h->raw_value);
    }
    out << m.uid << "\t" << m.size << "\t" << message_id << "\t" << subject << "\n";
  }
  if (uid) return report(Error(store::Errc::not_found, "uid " + std::to_string(*uid)), err);
  return exit_ok;
}

int check(const std::string& config_path, std::ostream& out, std::ostream& err) {
  int code = exit_ok;
  auto o = open(config_path, err, code);
  if (!o) return code;
  if (auto r = o->store->check_integrity(); !r) return report(r.error(), err);
  auto ids = o->store->blob_ids();
  if (!ids) return report(ids.error(), err);
  store::BlobStore blobs(o->config.blob_dir());
  std::size_t missing = 0;
  for (const auto& id : *ids)
    if (!blobs.get(id)) ++missing;
  auto unreferenced = unreferenced_blobs(*o->store, blobs, false);
  if (!unreferenced) return report(unreferenced.error(), err);
  out << "database ok, " << ids->size() << " messages, " << missing << " missing blobs, "
      << *unreferenced << " unreferenced blobs (removed at the next start)\n";
  return missing == 0 ? exit_ok : exit_failure;
}

}  // namespace postern::app
