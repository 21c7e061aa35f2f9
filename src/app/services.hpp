// Internal to app/: opening the store and account helpers shared by the subcommands.
#pragma once

#include <memory>
#include <string>

#include "app/config.hpp"
#include "crypto/crypto.hpp"
#include "dns/dns.hpp"
#include "queue/queue.hpp"
#include "server/server.hpp"
#include "store/store.hpp"

namespace postern::app {

Result<std::unique_ptr<store::Store>> open_store(const Config& c);
crypto::Argon2Params argon2_params(const Config& c);
// Lowercases and validates "local@domain"; the domain must be local.
Result<std::string> normalise_address(store::Store& s, const std::string& address);
// Creates keys and the account with its standard mailboxes; returns the recovery key.
Result<std::string> create_account(store::Store& s, const Config& c, const std::string& address,
                                   const std::string& password);
// Blobs on disk that no message row points to: left by a crash between the blob write and
// the commit. Unreadable without the account key, but they take space. With `remove`, deletes
// them (only safe while no delivery is in flight: at start-up).
Result<std::size_t> unreferenced_blobs(store::Store& s, store::BlobStore& blobs, bool remove);
std::string json_string(const std::string& s);
// A new Ed25519 and a new RSA-2048 DKIM key for the domain (selectors named after the date);
// returns the DNS records to publish, one line each.
Result<std::vector<std::string>> create_dkim_keys(store::Store& s, const std::string& domain,
                                                  int64_t now);
// "<selector>._domainkey.<domain>. IN TXT ..." for a stored key, split into 255-byte strings.
std::string dkim_dns_line(const store::DkimKeyRecord& key);
std::string read_secret_line(std::istream& in);
queue::Policy queue_policy(const Config& c);
// The validating resolver as [dns] configures it.
Result<std::unique_ptr<dns::Resolver>> make_resolver(const Config& c);
// A 32-byte instance secret, made and stored on first use.
Result<crypto::SecretBytes> instance_key(store::Store& s, std::string_view name);
// mailauth.report_* with their defaults (org: the host name; from: postmaster@ its domain).
server::DmarcReportSettings dmarc_report_settings(const Config& c);

}  // namespace postern::app
