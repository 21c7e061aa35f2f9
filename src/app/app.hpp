// The composition root: turns a config into running services, and implements each CLI
// subcommand as a function returning an exit code (see docs/operations.md "Exit codes").
#pragma once

#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "app/config.hpp"

namespace postern::app {

enum ExitCode : int {
  exit_ok = 0,
  exit_failure = 1,    // runtime failure (I/O, database, bind)
  exit_usage = 2,      // bad command line or configuration
  exit_denied = 3,     // wrong password or recovery key
  exit_not_found = 4,  // no such account or domain
};

struct QuickstartOptions {
  std::string domain;
  std::string data_dir;
  std::string hostname;  // default: mail.<domain>
  std::string user = "demo";
  std::vector<std::string> smtp_listen;         // default 127.0.0.1:2525
  std::vector<std::string> imap_listen;         // default 127.0.0.1:1143
  std::vector<std::string> imaps_listen;        // default 127.0.0.1:1993
  std::vector<std::string> submission_listen;   // default 127.0.0.1:1587
  std::vector<std::string> submissions_listen;  // default 127.0.0.1:1465
  bool json = false;
  // Lighter Argon2id for tests; the written config keeps what is given here.
  std::optional<int64_t> argon2_mem_kib;
  std::optional<int64_t> argon2_ops;
};
int quickstart(const QuickstartOptions& o, std::ostream& out, std::ostream& err);

int serve(const std::string& config_path, std::ostream& err);

// Passwords come from `password_in` (first line), so they never appear in argv or the shell
// history.
int user_add(const std::string& config_path, const std::string& address, std::istream& password_in,
             std::ostream& out, std::ostream& err);
int user_passwd(const std::string& config_path, const std::string& address,
                std::istream& secrets_in, bool with_recovery, std::ostream& out, std::ostream& err);
int user_list(const std::string& config_path, std::ostream& out, std::ostream& err);

struct DnsQueryOptions {
  std::string name, type;
  std::string trust_anchor;                // DS/DNSKEY file; empty: no validation
  std::vector<std::string> forwarders;     // "IP@port"
  std::vector<std::string> options;        // unbound "name:value"
  std::string unbound_config;              // an unbound.conf to read first
  std::vector<std::string> unblock_zones;  // special-use zones to resolve normally (test.)
};
// postern's DKIM verifier on message files, keys from `keys_file` (lines NAME<TAB>RECORD,
// NAME "<selector>._domainkey.<domain>") instead of DNS; a line per signature. Exit 0 when
// every message has signatures and all pass.
int verify_dkim(const std::string& keys_file, const std::vector<std::string>& messages,
                std::ostream& out, std::ostream& err);
// Sends the DMARC aggregate reports of finished UTC days now (`all`: every recorded event).
int dmarc_reports_send(const std::string& config_path, bool all, std::ostream& out,
                       std::ostream& err);
// Decrypts `mailbox` of the account (password on stdin) and prints the DMARC aggregate reports
// found in it (gzip or XML attachments), a line per source IP, then the totals.
int dmarc_reports_show(const std::string& config_path, const std::string& address,
                       const std::string& mailbox, std::istream& password_in, std::ostream& out,
                       std::ostream& err);
// One lookup; prints the rcode, DNSSEC status and records. Exit 0 NOERROR, 4 otherwise.
int dns_query(const DnsQueryOptions& q, std::ostream& out, std::ostream& err);
// DNS records of the DKIM keys of one domain (all local domains when empty); a new key pair.
// action: list, show, retry, delete, hold, release (all but list take a queue id).
int queue_command(const std::string& config_path, const std::string& action, const std::string& id,
                  std::ostream& out, std::ostream& err);
int dkim_show(const std::string& config_path, const std::string& domain, std::ostream& out,
              std::ostream& err);
int dkim_rotate(const std::string& config_path, const std::string& domain, std::ostream& out,
                std::ostream& err);
// Sets the account's storage quota in bytes (0: none).
int user_quota(const std::string& config_path, const std::string& address, int64_t bytes,
               std::ostream& out, std::ostream& err);
int user_delete(const std::string& config_path, const std::string& address, std::ostream& out,
                std::ostream& err);
int domain_add(const std::string& config_path, const std::string& domain, std::ostream& out,
               std::ostream& err);
int alias_add(const std::string& config_path, const std::string& alias, const std::string& target,
              std::ostream& out, std::ostream& err);

// Decrypts a mailbox of an account with its password: one line per message (uid, size,
// subject, message-id), or with `uid` the whole message. For operators helping a user and
// for tests.
int mail_list(const std::string& config_path, const std::string& address,
              const std::string& mailbox, std::istream& password_in, std::optional<uint32_t> uid,
              std::ostream& out, std::ostream& err);

// Opens the store and checks it (SQLite integrity_check, every message row has its blob).
int check(const std::string& config_path, std::ostream& out, std::ostream& err);

}  // namespace postern::app
