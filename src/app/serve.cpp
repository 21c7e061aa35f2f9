// `postern serve`: config -> services -> listeners.
#include <ostream>

#include "app/app.hpp"
#include "app/services.hpp"
#include "base/fs.hpp"
#include "base/log.hpp"
#include "dns/dns.hpp"
#include "net/net.hpp"
#include "queue/queue.hpp"
#include "server/server.hpp"

namespace postern::app {
namespace {
base::log::Level parse_level(const std::string& s) {
  if (s == "debug") return base::log::Level::debug;
  if (s == "warn") return base::log::Level::warn;
  if (s == "error") return base::log::Level::error;
  return base::log::Level::info;
}
}  // namespace

queue::Policy queue_policy(const Config& c) {
  queue::Policy p;
  p.lifetime = std::chrono::seconds(c.queue_lifetime_seconds);
  p.warn_after = std::chrono::seconds(c.queue_warn_after_seconds);
  p.first_retry = std::chrono::seconds(c.queue_first_retry_seconds);
  p.max_retry = std::chrono::seconds(c.queue_max_retry_seconds);
  return p;
}

int serve(const std::string& config_path, std::ostream& err) {
  auto cfg = load_config(config_path);
  if (!cfg) {
    err << "postern: " << cfg.error().detail() << " (" << cfg.error().code().message() << ")\n";
    return exit_usage;
  }
  const Config& c = *cfg;
  base::log::init(parse_level(c.log_level), c.log_file);
  crypto::init();

  server::ServerOptions opt;
  opt.smtp_listen = c.smtp_listen;
  opt.io_threads = static_cast<std::size_t>(c.io_threads);
  opt.blocking_threads = static_cast<std::size_t>(c.blocking_threads);
  opt.run_as_user = c.run_as_user;
  opt.shutdown_grace = std::chrono::seconds(c.shutdown_grace_seconds);
  auto& s = opt.smtp;
  s.protocol.hostname = c.hostname;
  s.protocol.vrfy_enabled = c.smtp_vrfy;
  s.protocol.limits.max_message_bytes = static_cast<uint64_t>(c.smtp_max_message_bytes);
  s.protocol.limits.max_recipients = static_cast<std::size_t>(c.smtp_max_recipients);
  s.protocol.limits.max_command_line_bytes =
      static_cast<std::size_t>(c.smtp_max_command_line_bytes);
  s.protocol.limits.max_text_line_bytes = static_cast<std::size_t>(c.smtp_max_text_line_bytes);
  s.protocol.limits.max_errors = static_cast<std::size_t>(c.smtp_max_errors);
  s.command_timeout = std::chrono::seconds(c.smtp_command_timeout_seconds);
  s.data_timeout = std::chrono::seconds(c.smtp_data_timeout_seconds);
  s.max_connections = static_cast<std::size_t>(c.smtp_max_connections);
  s.max_connections_per_ip = static_cast<std::size_t>(c.smtp_max_connections_per_ip);
  s.postmaster = c.postmaster;
  opt.imap_listen = c.imap_listen;
  opt.imaps_listen = c.imap_tls_listen;
  opt.imap.hostname = c.hostname;
  opt.imap.limits.max_line = static_cast<std::size_t>(c.imap_max_line_bytes);
  opt.imap.limits.max_literal = static_cast<std::size_t>(c.smtp_max_message_bytes);
  opt.imap.login_timeout = std::chrono::seconds(c.imap_login_timeout_seconds);
  opt.imap.idle_timeout = std::chrono::seconds(c.imap_idle_timeout_seconds);
  opt.imap.max_connections = static_cast<std::size_t>(c.imap_max_connections);
  opt.imap.max_connections_per_ip = static_cast<std::size_t>(c.imap_max_connections_per_ip);
  opt.imap.argon2 = argon2_params(c);
  s.argon2 = opt.imap.argon2;
  s.dkim_sign = c.submission_dkim_sign;
  s.authenticate = c.mailauth_enabled;
  s.authentication.reject_spf_fail = c.mailauth_reject_spf_fail;
  s.authentication.trusted_forwarders = c.mailauth_trusted_forwarders;
  s.authentication.arc_trusted_sealers = c.mailauth_arc_trusted_sealers;
  s.authenticate_skip = c.mailauth_ignore_networks;
  opt.dmarc_reports = dmarc_report_settings(c);
  s.authentication.dkim.accept_partial_body = c.mailauth_dkim_accept_partial_body;
  s.authentication.dkim.min_rsa_bits = static_cast<unsigned>(c.mailauth_dkim_min_rsa_bits);
  s.authentication.dkim.max_signatures = static_cast<std::size_t>(c.mailauth_dkim_max_signatures);
  opt.submission_listen = c.submission_listen;
  opt.submissions_listen = c.submission_tls_listen;
  auto& ob = opt.outbound;
  ob.hostname = c.hostname;
  ob.remote_port = static_cast<uint16_t>(c.outbound_port);
  ob.max_connections = static_cast<std::size_t>(c.outbound_max_connections);
  ob.max_per_domain = static_cast<std::size_t>(c.outbound_max_per_domain);
  ob.ipv6 = c.outbound_ipv6;
  ob.connect_timeout = std::chrono::seconds(c.outbound_connect_timeout_seconds);
  ob.command_timeout = std::chrono::seconds(c.outbound_reply_timeout_seconds);
  ob.data_timeout = 2 * ob.command_timeout;
  ob.scan_interval = std::chrono::milliseconds(c.queue_scan_interval_ms);
  ob.postmaster = c.postmaster;

  // TLS keys are read and ports bound before the privilege drop; every data file is opened
  // after it.
  server::Services services;
  if (!c.tls_certificate.empty()) {
    auto tls = net::make_server_tls_context(c.tls_certificate, c.tls_key);
    if (!tls) {
      err << "postern: tls: " << tls.error().describe() << "\n";
      return exit_failure;
    }
    services.tls = *tls;
  }
  auto client_tls = net::make_client_tls_context(c.outbound_ca_file);
  if (!client_tls) {
    err << "postern: outbound tls: " << client_tls.error().describe() << "\n";
    return exit_failure;
  }
  services.client_tls = *client_tls;
  auto resolver = make_resolver(c);
  if (!resolver) {
    err << "postern: dns: " << resolver.error().describe() << "\n";
    return exit_failure;
  }
  services.resolver = resolver->get();
  server::Server srv(opt);
  if (auto r = srv.bind(); !r) {
    err << "postern: " << r.error().describe() << "\n";
    return exit_failure;
  }

  auto store = open_store(c);
  if (!store) {
    err << "postern: database " << c.database_path() << ": " << store.error().describe() << "\n";
    return exit_failure;
  }
  store::BlobStore blobs(c.blob_dir());
  if (auto r = blobs.open(); !r) {
    err << "postern: blobs " << c.blob_dir() << ": " << r.error().describe() << "\n";
    return exit_failure;
  }
  if (auto swept = unreferenced_blobs(**store, blobs, true); !swept) {
    err << "postern: blobs " << c.blob_dir() << ": " << swept.error().describe() << "\n";
    return exit_failure;
  } else if (*swept > 0) {
    base::log::info("store.blobs.swept", {{"unreferenced", *swept}});
  }
  base::SystemClock clock;
  crypto::SecretBytes dedupe_key;
  if (c.delivery_dedupe_window_seconds > 0) {
    auto key = instance_key(**store, "delivery-dedupe-key");
    if (!key) {
      err << "postern: database: " << key.error().describe() << "\n";
      return exit_failure;
    }
    dedupe_key = std::move(*key);
    services.dedupe_key = &dedupe_key;
  }
  server::Committer committer(**store, blobs, static_cast<std::size_t>(c.delivery_max_batch), clock,
                              std::chrono::seconds(c.delivery_dedupe_window_seconds));
  services.store = store->get();
  services.blobs = &blobs;
  services.committer = &committer;
  services.clock = &clock;
  server::ChangeBus changes;
  services.changes = &changes;
  auto queue_key = instance_key(**store, "queue-key");
  auto report_key = instance_key(**store, "dmarc-report-key");
  if (!queue_key || !report_key) {
    err << "postern: database: " << (queue_key ? report_key : queue_key).error().describe() << "\n";
    return exit_failure;
  }
  queue::Queue outbound_queue(**store, blobs, std::move(*queue_key), clock, queue_policy(c),
                              c.hostname);
  services.queue = &outbound_queue;
  if (c.mailauth_dmarc_reports) services.report_key = &*report_key;

  base::log::info("server.ready", {{"version", POSTERN_VERSION}, {"hostname", c.hostname}});
  auto r = srv.run(services);
  committer.stop();
  base::log::info("server.stopped");
  return r ? exit_ok : exit_failure;
}

}  // namespace postern::app
