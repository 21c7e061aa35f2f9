// `postern quickstart`: a working server from nothing, on loopback, for trying postern out.
#include <cstdlib>
#include <ostream>

#include "app/app.hpp"
#include "app/services.hpp"
#include "base/clock.hpp"
#include "base/fs.hpp"
#include "base/random.hpp"
#include "mime/mime.hpp"

namespace postern::app {

int quickstart(const QuickstartOptions& o, std::ostream& out, std::ostream& err) {
  if (!mime::valid_domain(o.domain, false)) {
    err << "postern quickstart: --domain: '" << o.domain << "' is not a valid domain name\n";
    return exit_usage;
  }
  if (o.data_dir.empty()) {
    err << "postern quickstart: --data is required\n";
    return exit_usage;
  }
  if (auto r = base::fs::make_dirs(o.data_dir); !r) {
    err << "postern quickstart: " << r.error().describe() << "\n";
    return exit_failure;
  }
  char* real = ::realpath(o.data_dir.c_str(), nullptr);
  std::string data_dir = real ? real : o.data_dir;
  std::free(real);
  std::string config_path = data_dir + "/postern.toml";
  if (base::fs::exists(config_path)) {
    err << "postern quickstart: " << config_path
        << " exists already; start it with: postern serve --config " << config_path << "\n";
    return exit_usage;
  }

  Config c;
  c.hostname = o.hostname.empty() ? "mail." + o.domain : o.hostname;
  c.data_dir = data_dir;
  std::string address = o.user + "@" + o.domain;
  c.postmaster = address;
  c.smtp_listen =
      o.smtp_listen.empty() ? std::vector<std::string>{"127.0.0.1:2525"} : o.smtp_listen;
  c.imap_listen =
      o.imap_listen.empty() ? std::vector<std::string>{"127.0.0.1:1143"} : o.imap_listen;
  c.imap_tls_listen =
      o.imaps_listen.empty() ? std::vector<std::string>{"127.0.0.1:1993"} : o.imaps_listen;
  c.submission_listen = o.submission_listen.empty() ? std::vector<std::string>{"127.0.0.1:1587"}
                                                    : o.submission_listen;
  c.submission_tls_listen = o.submissions_listen.empty()
                                ? std::vector<std::string>{"127.0.0.1:1465"}
                                : o.submissions_listen;
  c.tls_certificate = data_dir + "/tls/cert.pem";
  c.tls_key = data_dir + "/tls/key.pem";
  if (o.argon2_mem_kib) c.argon2_mem_kib = *o.argon2_mem_kib;
  if (o.argon2_ops) c.argon2_ops = *o.argon2_ops;

  auto fail = [&](const Error& e) {
    err << "postern quickstart: " << e.describe() << "\n";
    return exit_failure;
  };
  auto cert = crypto::make_self_signed(c.hostname, 825);
  if (!cert) return fail(cert.error());
  if (auto r = base::fs::make_dirs(data_dir + "/tls"); !r) return fail(r.error());
  if (auto r = base::fs::write_file_durable(c.tls_certificate, cert->cert_pem, 0644); !r)
    return fail(r.error());
  if (auto r = base::fs::write_file_durable(c.tls_key, cert->key_pem, 0600); !r)
    return fail(r.error());
  crypto::wipe(cert->key_pem);

  auto store = open_store(c);
  if (!store) return fail(store.error());
  if (auto r = (*store)->add_domain(o.domain); !r) return fail(r.error());
  std::string password = base::system_random().token(15);
  auto recovery = create_account(**store, c, address, password);
  if (!recovery) return fail(recovery.error());
  auto dkim = create_dkim_keys(**store, o.domain, base::SystemClock().unix_seconds());
  if (!dkim) return fail(dkim.error());
  if (auto r = base::fs::write_file_durable(config_path, render_config(c), 0600); !r)
    return fail(r.error());

  if (o.json) {
    out << "{\"config\":" << json_string(config_path) << ",\"data_dir\":" << json_string(data_dir)
        << ",\"domain\":" << json_string(o.domain) << ",\"hostname\":" << json_string(c.hostname)
        << ",\"listeners\":[";
    bool first = true;
    auto listener = [&](const std::string& l, const char* protocol, bool starttls) {
      auto colon = l.rfind(':');
      std::string host = l.substr(0, colon);
      if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
      out << (first ? "" : ",") << "{\"protocol\":\"" << protocol
          << "\",\"address\":" << json_string(host) << ",\"port\":" << l.substr(colon + 1)
          << ",\"starttls\":" << (starttls ? "true" : "false") << "}";
      first = false;
    };
    for (const auto& l : c.smtp_listen) listener(l, "smtp", true);
    for (const auto& l : c.imap_listen) listener(l, "imap", true);
    for (const auto& l : c.imap_tls_listen) listener(l, "imaps", false);
    for (const auto& l : c.submission_listen) listener(l, "submission", true);
    for (const auto& l : c.submission_tls_listen) listener(l, "submissions", false);
    out << "],\"account\":" << json_string(address) << ",\"password\":" << json_string(password)
        << ",\"recovery_key\":" << json_string(*recovery) << ",\"dkim\":[";
    for (std::size_t i = 0; i < dkim->size(); ++i) out << (i ? "," : "") << json_string((*dkim)[i]);
    out << "]}\n";
  } else {
    out << "postern quickstart: created a server for " << o.domain << "\n\n"
        << "  config         " << config_path << "\n"
        << "  data           " << data_dir << " (SQLite + encrypted blobs)\n"
        << "  certificate    " << c.tls_certificate << " (self-signed for " << c.hostname << ")\n";
    for (const auto& l : c.smtp_listen) out << "  SMTP (MX)      " << l << " with STARTTLS\n";
    for (const auto& l : c.imap_listen) out << "  IMAP           " << l << " with STARTTLS\n";
    for (const auto& l : c.imap_tls_listen) out << "  IMAPS          " << l << " (implicit TLS)\n";
    for (const auto& l : c.submission_listen)
      out << "  Submission     " << l << " with STARTTLS, AUTH required\n";
    for (const auto& l : c.submission_tls_listen)
      out << "  Submissions    " << l << " (implicit TLS), AUTH required\n";
    out << "  account        " << address << " (also receives postmaster@" << o.domain << ")\n"
        << "  password       " << password << "\n"
        << "  recovery key   " << *recovery << "\n\n"
        << "The password and the recovery key are shown only this once. Stored mail is\n"
        << "encrypted to this account: without one of them nobody, the operator included,\n"
        << "can read it.\n\n"
        << "DKIM keys (publish these TXT records before sending mail to the world):\n";
    for (const auto& line : *dkim) out << "  " << line << "\n";
    out << "\n"
        << "Start the server:  postern serve --config " << config_path << "\n"
        << "Send a test mail:  swaks --server " << c.smtp_listen.front() << " --to " << address
        << "\n";
  }
  crypto::wipe(password);
  return exit_ok;
}

}  // namespace postern::app
