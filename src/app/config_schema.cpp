// The single declaration of every configuration key.
#include <toml++/toml.h>

#include <functional>
#include <sstream>
#include <variant>

#include "app/config.hpp"
#include "mailauth/mailauth.hpp"

namespace postern::app {

const std::error_category& config_category() {
  static const struct : std::error_category {
    const char* name() const noexcept override { return "config"; }
    std::string message(int e) const override {
      switch (static_cast<ConfigErrc>(e)) {
        case ConfigErrc::parse:
          return "config syntax error";
        case ConfigErrc::unknown_key:
          return "unknown config key";
        case ConfigErrc::bad_type:
          return "config value has the wrong type";
        case ConfigErrc::bad_value:
          return "invalid config value";
        case ConfigErrc::missing:
          return "missing config value";
      }
      return "config error";
    }
  } cat;
  return cat;
}

namespace {

using Member = std::variant<std::string Config::*, int64_t Config::*, bool Config::*,
                            std::vector<std::string> Config::*>;

struct Key {
  const char* table;
  const char* name;
  Member member;
  int64_t min = 0, max = 0;  // for integers
  const char* doc;
};

const std::vector<Key>& schema() {
  static const std::vector<Key> keys = {
      {"server", "hostname", &Config::hostname, 0, 0,
       "Name this server gives in SMTP greetings and Received headers (its MX host name)."},
      {"server", "data_dir", &Config::data_dir, 0, 0,
       "Directory holding the database and the encrypted blobs. Back it up; it holds no "
       "plaintext."},
      {"server", "postmaster", &Config::postmaster, 0, 0,
       "Account address that receives mail for postmaster@ of every local domain."},
      {"server", "run_as_user", &Config::run_as_user, 0, 0,
       "When started as root: the user to switch to after binding the listeners (empty: stay)."},
      {"server", "io_threads", &Config::io_threads, 1, 64, "Threads running network sessions."},
      {"server", "blocking_threads", &Config::blocking_threads, 1, 256,
       "Threads for blocking work: encryption, blob writes, database reads, Argon2id."},
      {"server", "shutdown_grace_seconds", &Config::shutdown_grace_seconds, 0, 3600,
       "On SIGTERM, idle sessions get 421 at once; a message being received may finish for "
       "this long."},
      {"log", "level", &Config::log_level, 0, 0, "One of debug, info, warn, error."},
      {"log", "file", &Config::log_file, 0, 0, "Log file; empty logs to standard error."},
      {"tls", "certificate", &Config::tls_certificate, 0, 0,
       "PEM certificate chain. Empty disables STARTTLS."},
      {"tls", "key", &Config::tls_key, 0, 0, "PEM private key of the certificate."},
      {"smtp", "listen", &Config::smtp_listen, 0, 0,
       "Addresses of the inbound (MX) SMTP listeners, \"IP:port\" or \"[IPv6]:port\"."},
      {"smtp", "max_message_bytes", &Config::smtp_max_message_bytes, 1024, 1ll << 31,
       "Largest message accepted (advertised with SIZE)."},
      {"smtp", "max_recipients", &Config::smtp_max_recipients, 1, 10000,
       "Recipients per message; more get 452 4.5.3."},
      {"smtp", "max_command_line_bytes", &Config::smtp_max_command_line_bytes, 512, 65536,
       "Longest command line, CRLF included (RFC 5321 minimum: 512)."},
      {"smtp", "max_text_line_bytes", &Config::smtp_max_text_line_bytes, 1000, 1 << 20,
       "Longest line in message data, CRLF included (RFC 5321: 1000)."},
      {"smtp", "max_errors", &Config::smtp_max_errors, 1, 1000,
       "Protocol errors in one session before it is closed with 421."},
      {"smtp", "command_timeout_seconds", &Config::smtp_command_timeout_seconds, 1, 3600,
       "Time a client has to send each complete command (RFC 5321 4.5.3.2: 5 minutes)."},
      {"smtp", "data_timeout_seconds", &Config::smtp_data_timeout_seconds, 1, 7200,
       "Time a client may stay silent in the middle of a message (DATA or a BDAT chunk); "
       "restarted by every block received (RFC 5321 4.5.3.2.5)."},
      {"smtp", "max_connections", &Config::smtp_max_connections, 1, 1000000,
       "Concurrent inbound SMTP connections."},
      {"smtp", "max_connections_per_ip", &Config::smtp_max_connections_per_ip, 1, 100000,
       "Concurrent inbound SMTP connections from one IP address; more get 421 4.7.0."},
      {"smtp", "vrfy", &Config::smtp_vrfy, 0, 0,
       "Answer VRFY truthfully. Off: VRFY gets 252 and reveals nothing."},
      {"imap", "listen", &Config::imap_listen, 0, 0,
       "IMAP listeners with STARTTLS (LOGINDISABLED until TLS), \"IP:port\"; usually port "
       "143."},
      {"imap", "tls_listen", &Config::imap_tls_listen, 0, 0,
       "IMAP listeners with implicit TLS, \"IP:port\"; usually port 993."},
      {"imap", "max_line_bytes", &Config::imap_max_line_bytes, 1024, 1 << 24,
       "Longest command line, literals excluded; longer lines end the session. Literals "
       "(APPEND) are bounded by smtp.max_message_bytes."},
      {"imap", "login_timeout_seconds", &Config::imap_login_timeout_seconds, 1, 3600,
       "Time a client has to log in, and to send each line before it has."},
      {"imap", "idle_timeout_seconds", &Config::imap_idle_timeout_seconds, 1800, 86400,
       "Inactivity after which a logged-in session is closed (RFC 9051 5.4: at least 30 "
       "minutes)."},
      {"imap", "max_connections", &Config::imap_max_connections, 1, 1000000,
       "Concurrent IMAP connections."},
      {"imap", "max_connections_per_ip", &Config::imap_max_connections_per_ip, 1, 100000,
       "Concurrent IMAP connections from one IP address (IPv6: one /64)."},
      {"submission", "listen", &Config::submission_listen, 0, 0,
       "Submission listeners with STARTTLS (port 587): mail clients send here after AUTH."},
      {"submission", "tls_listen", &Config::submission_tls_listen, 0, 0,
       "Submission listeners with implicit TLS (port 465, RFC 8314)."},
      {"submission", "dkim_sign", &Config::submission_dkim_sign, 0, 0,
       "Sign submitted mail with the From domain's newest Ed25519 and RSA DKIM keys."},
      {"mailauth", "enabled", &Config::mailauth_enabled, 0, 0,
       "Check SPF, DKIM and DMARC on mail arriving at the MX, enforce DMARC (p=reject is "
       "refused with 550 5.7.1, quarantine goes to Junk) and add Authentication-Results."},
      {"mailauth", "reject_spf_fail", &Config::mailauth_reject_spf_fail, 0, 0,
       "Refuse SPF fail (550 5.7.23) when the author domain has no DMARC policy and no aligned "
       "DKIM signature; with a policy, DMARC decides."},
      {"mailauth", "trusted_forwarders", &Config::mailauth_trusted_forwarders, 0, 0,
       "Client networks (\"192.0.2.0/24\", \"2001:db8::/32\") whose mail is never refused or "
       "filed as junk for DMARC: forwarders and lists you trust. Results are still recorded."},
      {"mailauth", "arc_trusted_sealers", &Config::mailauth_arc_trusted_sealers, 0, 0,
       "ARC sealer domains (mailing lists, forwarders) whose passing ARC chain, with an aligned "
       "pass in their ARC-Authentication-Results, lifts a DMARC failure (RFC 8617)."},
      {"mailauth", "ignore_networks", &Config::mailauth_ignore_networks, 0, 0,
       "Clients whose mail is not checked at all: programs on this machine, as OpenDMARC's "
       "IgnoreHosts. Their messages get no Authentication-Results."},
      {"mailauth", "dkim_accept_partial_body", &Config::mailauth_dkim_accept_partial_body, 0, 0,
       "Count DKIM signatures whose l= leaves part of the body unsigned (by default they "
       "are reported as policy and do not pass)."},
      {"mailauth", "dkim_min_rsa_bits", &Config::mailauth_dkim_min_rsa_bits, 1024, 16384,
       "RSA DKIM keys shorter than this fail (RFC 8301: at least 1024)."},
      {"mailauth", "dkim_max_signatures", &Config::mailauth_dkim_max_signatures, 1, 20,
       "DKIM signatures verified per message; more are reported as policy."},
      {"mailauth", "dmarc_reports", &Config::mailauth_dmarc_reports, 0, 0,
       "Record DMARC results of checked mail and send daily aggregate reports (RFC 7489) to "
       "the domains whose records ask for them (rua=). The records are sealed under an "
       "instance key and deleted once reported."},
      {"mailauth", "report_org", &Config::mailauth_report_org, 0, 0,
       "org_name in our reports (empty: server.hostname)."},
      {"mailauth", "report_from", &Config::mailauth_report_from, 0, 0,
       "Sender of our reports, signed with its domain's DKIM keys (empty: postmaster@ the "
       "host name's parent domain)."},
      {"mailauth", "report_check_seconds", &Config::mailauth_report_check_seconds, 1, 86400,
       "How often the server checks for a finished UTC day to report."},
      {"queue", "lifetime_seconds", &Config::queue_lifetime_seconds, 10, 30 * 86400,
       "How long a message is retried before it is bounced."},
      {"queue", "warn_after_seconds", &Config::queue_warn_after_seconds, 1, 30 * 86400,
       "After this long undelivered, the sender gets one delay notification."},
      {"queue", "first_retry_seconds", &Config::queue_first_retry_seconds, 1, 86400,
       "Delay before the first retry; it doubles after each attempt."},
      {"queue", "max_retry_seconds", &Config::queue_max_retry_seconds, 1, 7 * 86400,
       "Longest delay between two attempts."},
      {"queue", "scan_interval_ms", &Config::queue_scan_interval_ms, 10, 60000,
       "How often the queue is checked for due messages (new messages start at once)."},
      {"outbound", "port", &Config::outbound_port, 1, 65535,
       "Port of remote MX hosts (25; tests use another)."},
      {"outbound", "max_connections", &Config::outbound_max_connections, 1, 10000,
       "Outbound SMTP connections open at once."},
      {"outbound", "max_per_domain", &Config::outbound_max_per_domain, 1, 1000,
       "Outbound connections to one destination domain at once."},
      {"outbound", "ipv6", &Config::outbound_ipv6, 0, 0, "Try IPv6 addresses of MX hosts first."},
      {"outbound", "connect_timeout_seconds", &Config::outbound_connect_timeout_seconds, 1, 600,
       "Time allowed to connect to an MX host."},
      {"outbound", "reply_timeout_seconds", &Config::outbound_reply_timeout_seconds, 1, 3600,
       "Time allowed for each reply of a remote server (the final one gets twice this)."},
      {"outbound", "ca_file", &Config::outbound_ca_file, 0, 0,
       "CA certificates for verified outbound TLS (REQUIRETLS); empty: the system store."},
      {"dns", "trust_anchor", &Config::dns_trust_anchor, 0, 0,
       "DNSSEC trust anchor file (DS or DNSKEY records; Debian's dns-root-data by default); "
       "empty or missing: no answer counts as secure."},
      {"dns", "forwarders", &Config::dns_forwarders, 0, 0,
       "Resolvers to forward to, \"IP\" or \"IP@port\"; empty: recursion from the root."},
      {"dns", "options", &Config::dns_options, 0, 0,
       "unbound options, \"name: value\" (e.g. \"do-not-query-localhost: no\")."},
      {"dns", "resolve_zones", &Config::dns_resolve_zones, 0, 0,
       "Special-use zones (RFC 6761) to look up like any other, e.g. \"test.\" for tests."},
      {"delivery", "max_batch", &Config::delivery_max_batch, 1, 100000,
       "Most messages committed with one fsync (group commit)."},
      {"delivery", "dedupe_window_seconds", &Config::delivery_dedupe_window_seconds, 0, 86400,
       "A message retried by its sender within this time after it was stored (the 250 was "
       "lost to a crash) is acknowledged but not stored again; so is a byte-identical resend "
       "from the same sender. 0 disables."},
      {"crypto", "argon2_ops", &Config::argon2_ops, 1, 100,
       "Argon2id passes for password hashing and key wrapping (new and changed passwords)."},
      {"crypto", "argon2_mem_kib", &Config::argon2_mem_kib, 8, 4 * 1024 * 1024,
       "Argon2id memory in KiB (new and changed passwords)."},
  };
  return keys;
}

std::string where(const std::string& file, const toml::source_region& src) {
  return file + ":" + std::to_string(src.begin.line) + ":" + std::to_string(src.begin.column);
}

std::string toml_string(const std::string& s) {
  std::ostringstream os;
  os << toml::value<std::string>(s);
  return os.str();
}

Result<void> set_value(Config& c, const Key& k, const toml::node& node, const std::string& file) {
  auto at = where(file, node.source()) + ": " + k.table + "." + k.name;
  return std::visit(
      [&](auto member) -> Result<void> {
        using T = std::remove_cvref_t<decltype(c.*member)>;
        if constexpr (std::is_same_v<T, std::string>) {
          auto v = node.value<std::string>();
          if (!node.is_string() || !v) return Error(ConfigErrc::bad_type, at + " must be a string");
          c.*member = *v;
        } else if constexpr (std::is_same_v<T, int64_t>) {
          if (!node.is_integer()) return Error(ConfigErrc::bad_type, at + " must be an integer");
          int64_t v = *node.value<int64_t>();
          if (v < k.min || v > k.max)
            return Error(ConfigErrc::bad_value, at + " must be between " + std::to_string(k.min) +
                                                    " and " + std::to_string(k.max));
          c.*member = v;
        } else if constexpr (std::is_same_v<T, bool>) {
          if (!node.is_boolean()) return Error(ConfigErrc::bad_type, at + " must be true or false");
          c.*member = *node.value<bool>();
        } else {
          auto* arr = node.as_array();
          if (!arr) return Error(ConfigErrc::bad_type, at + " must be an array of strings");
          std::vector<std::string> out;
          for (const auto& el : *arr) {
            auto v = el.value<std::string>();
            if (!el.is_string() || !v)
              return Error(ConfigErrc::bad_type, where(file, el.source()) + ": " + k.table + "." +
                                                     k.name + " must hold strings");
            out.push_back(*v);
          }
          c.*member = std::move(out);
        }
        return {};
      },
      k.member);
}

std::string render_value(const Config& c, const Member& m) {
  return std::visit(
      [&](auto member) -> std::string {
        using T = std::remove_cvref_t<decltype(c.*member)>;
        const T& v = c.*member;
        if constexpr (std::is_same_v<T, std::string>) {
          return toml_string(v);
        } else if constexpr (std::is_same_v<T, int64_t>) {
          return std::to_string(v);
        } else if constexpr (std::is_same_v<T, bool>) {
          return v ? "true" : "false";
        } else {
          std::string s = "[";
          for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + toml_string(v[i]);
          return s + "]";
        }
      },
      m);
}

Result<void> validate(const Config& c, const std::string& file) {
  auto bad = [&](const std::string& what) {
    return Error(ConfigErrc::bad_value, file + ": " + what);
  };
  if (c.data_dir.empty()) return Error(ConfigErrc::missing, file + ": server.data_dir is required");
  if (c.hostname.empty()) return Error(ConfigErrc::missing, file + ": server.hostname is required");
  if (c.log_level != "debug" && c.log_level != "info" && c.log_level != "warn" &&
      c.log_level != "error")
    return bad("log.level must be one of debug, info, warn, error");
  if (c.tls_certificate.empty() != c.tls_key.empty())
    return bad("tls.certificate and tls.key must be set together");
  if (c.smtp_listen.empty()) return bad("smtp.listen needs at least one address");
  // Without a certificate no IMAP client could ever log in (LOGINDISABLED until TLS).
  if ((!c.imap_listen.empty() || !c.imap_tls_listen.empty()) && c.tls_certificate.empty())
    return bad("imap.listen and imap.tls_listen need tls.certificate and tls.key");
  if ((!c.submission_listen.empty() || !c.submission_tls_listen.empty()) &&
      c.tls_certificate.empty())
    return bad("submission.listen and submission.tls_listen need tls.certificate and tls.key");
  for (const auto* list : {&c.mailauth_trusted_forwarders, &c.mailauth_ignore_networks})
    for (const auto& n : *list)
      if (!mailauth::in_network(n.substr(0, n.find('/')), n))
        return bad("mailauth: \"" + n + "\" is not an address or network");
  for (const auto& o : c.dns_options)
    if (o.find(':') == std::string::npos)
      return bad("dns.options: \"" + o + "\" is not name: value");
  return {};
}

}  // namespace

Result<Config> load_config(const std::string& path) {
  toml::table tbl;
  try {
    tbl = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    // toml++ reports parse errors by exception; it ends here.
    const auto& src = e.source();
    std::string f = src.path ? std::string(*src.path) : path;
    return Error(ConfigErrc::parse, where(f, src) + ": " + std::string(e.description()));
  }
  Config c;
  for (const auto& [table_key, table_node] : tbl) {
    auto* t = table_node.as_table();
    if (!t)
      return Error(ConfigErrc::unknown_key, where(path, table_node.source()) + ": '" +
                                                std::string(table_key.str()) +
                                                "' is not a known table");
    for (const auto& [key, node] : *t) {
      const Key* k = nullptr;
      for (const auto& cand : schema())
        if (table_key.str() == cand.table && key.str() == cand.name) k = &cand;
      if (!k)
        return Error(ConfigErrc::unknown_key, where(path, node.source()) + ": unknown key '" +
                                                  std::string(table_key.str()) + "." +
                                                  std::string(key.str()) + "'");
      if (auto r = set_value(c, *k, node, path); !r) return r.error();
    }
  }
  if (auto r = validate(c, path); !r) return r.error();
  return c;
}

std::string render_config(const Config& c) {
  std::string out =
      "# postern configuration. Every key is listed with its documentation;\n"
      "# `postern config-reference` prints the same reference as Markdown.\n";
  std::string table;
  for (const auto& k : schema()) {
    if (table != k.table) {
      table = k.table;
      out += "\n[" + table + "]\n";
    }
    out += "# " + std::string(k.doc) + "\n";
    out += std::string(k.name) + " = " + render_value(c, k.member) + "\n";
  }
  return out;
}

std::string config_reference() {
  Config defaults;
  std::string out =
      "# Configuration reference\n\nGenerated from the key declarations in "
      "`src/app/config_schema.cpp` (`postern config-reference`). Unknown keys are "
      "errors.\n\n| key | default | meaning |\n|---|---|---|\n";
  for (const auto& k : schema())
    out += "| `" + std::string(k.table) + "." + k.name + "` | `" +
           render_value(defaults, k.member) + "` | " + k.doc + " |\n";
  return out;
}

}  // namespace postern::app
