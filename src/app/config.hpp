// postern's configuration: one TOML file. Every key is declared once in config_schema.cpp (key,
// type, default, documentation); loading, validation, the commented file quickstart writes and
// docs/config.md are all generated from that declaration.
#pragma once

#include "base/error.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace postern::app {

enum class ConfigErrc { parse = 1, unknown_key, bad_type, bad_value, missing };
const std::error_category& config_category();
inline std::error_code make_error_code(ConfigErrc e) {
  return {static_cast<int>(e), config_category()};
}

struct Config {
  // [server]
  std::string hostname = "localhost";
  std::string data_dir;
  std::string postmaster;  // account that receives postmaster@ of every local domain
  std::string run_as_user;
  int64_t io_threads = 2;
  int64_t blocking_threads = 4;
  int64_t shutdown_grace_seconds = 10;
  // [log]
  std::string log_level = "info";
  std::string log_file;
  // [tls]
  std::string tls_certificate;
  std::string tls_key;
  // [smtp]
  std::vector<std::string> smtp_listen{"127.0.0.1:25"};
  int64_t smtp_max_message_bytes = 50ll << 20;
  int64_t smtp_max_recipients = 100;
  int64_t smtp_max_command_line_bytes = 1024;
  int64_t smtp_max_text_line_bytes = 1000;
  int64_t smtp_max_errors = 10;
  int64_t smtp_command_timeout_seconds = 300;
  int64_t smtp_data_timeout_seconds = 300;
  int64_t smtp_max_connections = 1000;
  int64_t smtp_max_connections_per_ip = 20;
  bool smtp_vrfy = false;
  // [imap]
  std::vector<std::string> imap_listen;
  std::vector<std::string> imap_tls_listen;
  int64_t imap_max_line_bytes = 65536;
  int64_t imap_login_timeout_seconds = 60;
  int64_t imap_idle_timeout_seconds = 1800;
  int64_t imap_max_connections = 10000;
  int64_t imap_max_connections_per_ip = 50;
  // [submission]
  std::vector<std::string> submission_listen;
  std::vector<std::string> submission_tls_listen;
  bool submission_dkim_sign = true;
  // [queue]
  int64_t queue_lifetime_seconds = 5 * 86400;
  int64_t queue_warn_after_seconds = 4 * 3600;
  int64_t queue_first_retry_seconds = 300;
  int64_t queue_max_retry_seconds = 4 * 3600;
  int64_t queue_scan_interval_ms = 1000;
  // [outbound]
  int64_t outbound_port = 25;
  int64_t outbound_max_connections = 100;
  int64_t outbound_max_per_domain = 10;
  bool outbound_ipv6 = true;
  int64_t outbound_connect_timeout_seconds = 30;
  int64_t outbound_reply_timeout_seconds = 300;
  std::string outbound_ca_file;
  // [dns]
  std::string dns_trust_anchor = "/usr/share/dns/root.key";
  std::vector<std::string> dns_forwarders;
  std::vector<std::string> dns_options;
  std::vector<std::string> dns_resolve_zones;
  // [mailauth]
  bool mailauth_enabled = true;
  bool mailauth_reject_spf_fail = true;
  std::vector<std::string> mailauth_trusted_forwarders;
  std::vector<std::string> mailauth_arc_trusted_sealers;
  std::vector<std::string> mailauth_ignore_networks = {"127.0.0.0/8", "::1"};
  bool mailauth_dkim_accept_partial_body = false;
  int64_t mailauth_dkim_min_rsa_bits = 1024;
  int64_t mailauth_dkim_max_signatures = 5;
  bool mailauth_dmarc_reports = true;
  std::string mailauth_report_org;
  std::string mailauth_report_from;
  int64_t mailauth_report_check_seconds = 3600;
  // [delivery]
  int64_t delivery_max_batch = 512;
  int64_t delivery_dedupe_window_seconds = 600;
  // [crypto]
  int64_t argon2_ops = 3;
  int64_t argon2_mem_kib = 65536;

  std::string database_path() const { return data_dir + "/postern.db"; }
  std::string blob_dir() const { return data_dir + "/blobs"; }
};

// Parses and validates; errors read "FILE:LINE:COL: problem".
Result<Config> load_config(const std::string& path);
// The commented TOML for `c` (every key, with its documentation).
std::string render_config(const Config& c);
// Markdown reference of every key (docs/config.md).
std::string config_reference();

}  // namespace postern::app

template <>
struct std::is_error_code_enum<postern::app::ConfigErrc> : std::true_type {};
