#include "app/services.hpp"

#include <algorithm>
#include <ctime>
#include <istream>
#include <unordered_set>

#include "base/clock.hpp"
#include "base/fs.hpp"
#include "base/log.hpp"
#include "keys/keys.hpp"
#include "mailauth/mailauth.hpp"
#include "mime/mime.hpp"

namespace postern::app {

Result<std::unique_ptr<store::Store>> open_store(const Config& c) {
  if (auto r = base::fs::make_dirs(c.data_dir); !r) return r.error();
  return store::open_sqlite(c.database_path(), store::SqliteOptions{});
}

crypto::Argon2Params argon2_params(const Config& c) {
  return {static_cast<unsigned long long>(c.argon2_ops),
          static_cast<std::size_t>(c.argon2_mem_kib) * 1024};
}

Result<std::string> normalise_address(store::Store& s, const std::string& address) {
  auto mb = mime::parse_mailbox(address, true);
  if (!mb) return Error(mb.error().code(), address);
  auto local = s.is_local_domain(mb->domain);
  if (!local) return local.error();
  if (!*local) return Error(store::Errc::not_found, "domain " + mb->domain + " is not local");
  return mb->lookup_key();
}

Result<std::string> create_account(store::Store& s, const Config& c, const std::string& address,
                                   const std::string& password) {
  auto addr = normalise_address(s, address);
  if (!addr) return addr.error();
  auto keys = keys::create_account_keys(*addr, password, argon2_params(c));
  if (!keys) return keys.error();
  std::vector<store::NewMailbox> boxes = {{"INBOX", ""},          {"Sent", "\\Sent"},
                                          {"Drafts", "\\Drafts"}, {"Trash", "\\Trash"},
                                          {"Junk", "\\Junk"},     {"Archive", "\\Archive"}};
  auto id = s.create_account(*addr, base::SystemClock().unix_seconds(),
                             keys->keyring.storage_public, keys->keyring.serialize(), boxes);
  if (!id) return id.error();
  return keys->recovery_key;
}

Result<std::size_t> unreferenced_blobs(store::Store& s, store::BlobStore& blobs, bool remove) {
  auto on_disk = blobs.list();
  if (!on_disk) return on_disk.error();
  auto referenced = s.blob_ids();
  if (!referenced) return referenced.error();
  std::unordered_set<std::string> known(referenced->begin(), referenced->end());
  std::size_t n = 0;
  for (const auto& id : *on_disk) {
    if (known.count(id)) continue;
    ++n;
    if (remove)
      if (auto r = blobs.remove(id); !r) return r.error();
  }
  return n;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string read_secret_line(std::istream& in) {
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

Result<std::vector<std::string>> create_dkim_keys(store::Store& s, const std::string& domain,
                                                  int64_t now) {
  std::time_t t = static_cast<std::time_t>(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char day[16];
  std::strftime(day, sizeof day, "%Y%m%d", &tm);
  auto existing = s.dkim_keys(domain);
  if (!existing) return existing.error();
  // Selectors are new names, never reused: a verifier may cache the old record.
  std::string base = std::string("s") + day;
  int n = 1;
  auto taken = [&](const std::string& sel) {
    return std::any_of(existing->begin(), existing->end(),
                       [&](const store::DkimKeyRecord& k) { return k.selector == sel; });
  };
  std::string suffix;
  while (taken(base + suffix + "e") || taken(base + suffix + "r"))
    suffix = "n" + std::to_string(++n);
  std::vector<std::string> lines;
  for (auto alg : {mailauth::DkimAlgorithm::ed25519_sha256, mailauth::DkimAlgorithm::rsa_sha256}) {
    bool ed = alg == mailauth::DkimAlgorithm::ed25519_sha256;
    auto key = mailauth::make_dkim_key(alg, domain, base + suffix + (ed ? "e" : "r"));
    if (!key) return key.error();
    store::DkimKeyRecord rec{domain,
                             key->selector,
                             ed ? "ed25519-sha256" : "rsa-sha256",
                             std::string(key->secret.view()),
                             key->public_key,
                             now};
    if (auto r = s.add_dkim_key(rec); !r) return r.error();
    lines.push_back(dkim_dns_line(rec));
    crypto::wipe(rec.secret);
  }
  return lines;
}

std::string dkim_dns_line(const store::DkimKeyRecord& key) {
  mailauth::DkimKey k;
  k.algorithm = key.algorithm == "ed25519-sha256" ? mailauth::DkimAlgorithm::ed25519_sha256
                                                  : mailauth::DkimAlgorithm::rsa_sha256;
  k.public_key = key.public_key;
  std::string record = mailauth::dkim_record(k);
  std::string line = key.selector + "._domainkey." + key.domain + ". IN TXT";
  for (std::size_t pos = 0; pos < record.size(); pos += 255)
    line += " \"" + record.substr(pos, 255) + "\"";
  return line;
}

Result<std::unique_ptr<dns::Resolver>> make_resolver(const Config& c) {
  dns::ResolverOptions ro;
  if (!c.dns_trust_anchor.empty() && base::fs::exists(c.dns_trust_anchor))
    ro.trust_anchor_file = c.dns_trust_anchor;
  else
    base::log::warn("dns.no_trust_anchor", {{"file", c.dns_trust_anchor}});
  ro.forwarders = c.dns_forwarders;
  for (const auto& o : c.dns_options) {
    auto colon = o.find(':');
    std::string value = o.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    ro.options.emplace_back(o.substr(0, colon + 1), value);
  }
  ro.unblock_zones = c.dns_resolve_zones;
  return dns::Resolver::create(ro);
}

Result<crypto::SecretBytes> instance_key(store::Store& s, std::string_view name) {
  std::string candidate = crypto::random_bytes(32);
  auto key = s.instance_secret(name, candidate);
  crypto::wipe(candidate);
  if (!key) return key.error();
  auto out = crypto::SecretBytes::copy_of(*key);
  crypto::wipe(*key);
  return out;
}

server::DmarcReportSettings dmarc_report_settings(const Config& c) {
  server::DmarcReportSettings r;
  r.enabled = c.mailauth_dmarc_reports;
  r.org_name = c.mailauth_report_org.empty() ? c.hostname : c.mailauth_report_org;
  std::string domain = c.hostname.substr(c.hostname.find('.') + 1);
  r.report_from = c.mailauth_report_from.empty() ? "postmaster@" + domain : c.mailauth_report_from;
  r.check_interval = std::chrono::seconds(c.mailauth_report_check_seconds);
  return r;
}

}  // namespace postern::app
