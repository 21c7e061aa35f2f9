// `postern reports dmarc send|show`: sending the aggregate reports now (what the server does
// once a day), and reading the reports other receivers sent to one of our accounts.
#include <ostream>

#include "app/app.hpp"
#include "app/cli_support.hpp"
#include "app/services.hpp"
#include "base/clock.hpp"
#include "base/gzip.hpp"
#include "base/text.hpp"
#include "keys/keys.hpp"
#include "mailauth/mailauth.hpp"
#include "mime/mime.hpp"
#include "queue/queue.hpp"
#include "server/dmarc_reports.hpp"

namespace postern::app {
namespace {

constexpr std::size_t max_inflated = std::size_t{32} << 20;

std::string header_value(std::string_view headers, std::string_view name) {
  auto hs = mime::parse_header_section(headers, mime::HeaderLimits{});
  if (!hs) return {};
  const auto* h = hs->find(name);
  return h ? base::ascii_lower(mime::unfold(h->raw_value)) : std::string();
}

// The DMARC report in one MIME part, if it holds one (gzip or plain XML; zip is not read).
std::optional<mailauth::DmarcReport> report_in(std::string_view headers, std::string_view body) {
  std::string type = header_value(headers, "Content-Type");
  bool gz = type.starts_with("application/gzip") || type.starts_with("application/x-gzip");
  bool xml = type.starts_with("text/xml") || type.starts_with("application/xml");
  if (!gz && !xml) return std::nullopt;
  std::string data(body);
  if (header_value(headers, "Content-Transfer-Encoding") == "base64") {
    std::string compact;
    for (char c : body)
      if (c != '\r' && c != '\n' && c != ' ' && c != '\t') compact += c;
    auto decoded = mime::decode_base64(compact);
    if (!decoded) return std::nullopt;
    data = std::move(*decoded);
  }
  if (gz) {
    auto inflated = base::gunzip(data, max_inflated);
    if (!inflated) return std::nullopt;
    data = std::move(*inflated);
  }
  auto r = mailauth::parse_dmarc_report(data);
  if (!r) return std::nullopt;
  return std::move(*r);
}

void print(const mailauth::DmarcReport& r, std::ostream& out) {
  out << "report " << r.org_name << " " << r.report_id << " domain=" << r.policy_domain
      << " p=" << mailauth::to_string(r.policy.policy) << " " << r.begin << "-" << r.end << "\n";
  for (const auto& row : r.rows) {
    const auto& e = row.event;
    out << "  " << e.source_ip << " count=" << row.count
        << " disposition=" << mailauth::to_string(e.disposition)
        << " dkim=" << (e.dkim_aligned ? "pass" : "fail")
        << " spf=" << (e.spf_aligned ? "pass" : "fail") << " header_from=" << e.header_from << "\n";
  }
}

}  // namespace

int dmarc_reports_send(const std::string& config_path, bool all, std::ostream& out,
                       std::ostream& err) {
  int code = exit_ok;
  auto o = open(config_path, err, code);
  if (!o) return code;
  const Config& c = o->config;
  store::BlobStore blobs(c.blob_dir());
  if (auto r = blobs.open(); !r) return report(r.error(), err);
  auto queue_key = instance_key(*o->store, "queue-key");
  auto report_key = instance_key(*o->store, "dmarc-report-key");
  if (!queue_key) return report(queue_key.error(), err);
  if (!report_key) return report(report_key.error(), err);
  auto resolver = make_resolver(c);
  if (!resolver) return report(resolver.error(), err);
  base::SystemClock clock;
  queue::Queue q(*o->store, blobs, std::move(*queue_key), clock, queue_policy(c), c.hostname);
  server::Services svc;
  svc.store = o->store.get();
  svc.blobs = &blobs;
  svc.clock = &clock;
  svc.queue = &q;
  svc.resolver = resolver->get();
  svc.report_key = &*report_key;
  int64_t now = clock.unix_seconds();
  // Without --all only finished UTC days, as the server does.
  int64_t until = all ? now + 1 : now - now % 86400;
  auto sent = server::send_dmarc_reports(svc, dmarc_report_settings(c), until);
  if (!sent) return report(sent.error(), err);
  out << "events " << sent->events << " reports " << sent->reports << " unauthorised "
      << sent->unauthorised << "\n";
  return exit_ok;
}

int dmarc_reports_show(const std::string& config_path, const std::string& address,
                       const std::string& mailbox, std::istream& password_in, std::ostream& out,
                       std::ostream& err) {
  int code = exit_ok;
  auto o = open(config_path, err, code);
  if (!o) return code;
  auto found = find_with_keyring(*o->store, address);
  if (!found) return report(found.error(), err);
  std::string password = read_secret_line(password_in);
  auto unlocked = keys::unlock_with_password(found->account.address, found->keyring, password);
  crypto::wipe(password);
  if (!unlocked) return report(unlocked.error(), err);
  auto box = o->store->find_mailbox(found->account.id, mailbox);
  if (!box) return report(box.error(), err);
  if (!*box) return report(Error(store::Errc::not_found, mailbox), err);
  auto msgs = o->store->messages((*box)->id);
  if (!msgs) return report(msgs.error(), err);
  store::BlobStore blobs(o->config.blob_dir());
  std::size_t reports = 0;
  uint64_t messages = 0;
  for (const auto& m : *msgs) {
    auto key = keys::open_content_key(*unlocked, m.sealed_key);
    if (!key) return report(key.error(), err);
    auto blob = blobs.get(m.blob_id);
    if (!blob) return report(blob.error(), err);
    auto content = keys::open_blob(*key, *blob);
    if (!content) return report(content.error(), err);
    mime::HeaderLimits limits;
    limits.max_headers = 10000;
    limits.max_header_bytes = content->size();
    auto summary = mime::summarize(*content, limits);
    if (!summary) continue;
    std::string_view all = *content;
    std::vector<std::optional<mailauth::DmarcReport>> found_reports;
    found_reports.push_back(
        report_in(summary->header_section, all.substr(std::min(summary->body_offset, all.size()))));
    for (const auto& part : summary->parts)
      found_reports.push_back(
          report_in(part.headers, all.substr(part.body_offset, part.body_size)));
    for (const auto& r : found_reports) {
      if (!r) continue;
      print(*r, out);
      ++reports;
      for (const auto& row : r->rows) messages += row.count;
    }
    crypto::wipe(*content);
  }
  out << "reports " << reports << " messages " << messages << "\n";
  return exit_ok;
}

}  // namespace postern::app
