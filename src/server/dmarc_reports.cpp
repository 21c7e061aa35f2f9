#include "server/dmarc_reports.hpp"

#include <charconv>
#include <map>

#include "base/gzip.hpp"
#include "base/log.hpp"
#include "base/random.hpp"
#include "dns/dns.hpp"
#include "queue/queue.hpp"
#include "server/submission.hpp"

namespace postern::server {
namespace {

constexpr std::string_view event_ad = "postern-dmarc-event-v1";

std::string base64_lines(std::string_view data) {
  std::string b64 = crypto::base64(data);
  std::string out;
  for (std::size_t i = 0; i < b64.size(); i += 76) out += b64.substr(i, 76) + "\r\n";
  return out;
}

// RFC 7489 7.1: a report for another organisation's domain goes there only if that domain
// published "<policy domain>._report._dmarc.<its domain> TXT v=DMARC1".
bool authorised(dns::Resolver* resolver, const std::string& policy_domain,
                const std::string& rua_domain) {
  std::string name = mailauth::report_authorization_name(policy_domain, rua_domain);
  if (name.empty()) return true;
  if (!resolver) return false;
  auto a = resolver->resolve(name, dns::Type::txt);
  if (!a || a->rcode != 0 || a->security == dns::Security::bogus) return false;
  for (const auto& rd : a->rdata)
    if (auto t = dns::parse_txt(rd); t && t->starts_with("v=DMARC1")) return true;
  return false;
}

// "mailto:a@b.example!10m" -> "a@b.example" (the size limit is ours to honour: reports are
// far below any sensible one).
std::string mailto_address(std::string_view uri) {
  uri.remove_prefix(std::string_view("mailto:").size());
  uri = uri.substr(0, uri.find('!'));
  std::string out;
  for (std::size_t i = 0; i < uri.size(); ++i) {
    unsigned byte = 0;
    if (uri[i] == '%' && i + 2 < uri.size() &&
        std::from_chars(uri.data() + i + 1, uri.data() + i + 3, byte, 16).ptr ==
            uri.data() + i + 3) {
      out += static_cast<char>(byte);
      i += 2;
    } else {
      out += uri[i];
    }
  }
  return out;
}

std::string report_message(const mailauth::DmarcReport& r, const DmarcReportSettings& settings,
                           const std::vector<std::string>& to, const std::string& date,
                           const std::string& hostname) {
  std::string file = settings.org_name + "!" + r.policy_domain + "!" + std::to_string(r.begin) +
                     "!" + std::to_string(r.end) + ".xml.gz";
  std::string boundary = "=_" + base::system_random().token(12);
  std::string rcpts;
  for (const auto& t : to) rcpts += (rcpts.empty() ? "" : ", ") + t;
  return "From: " + settings.report_from + "\r\nTo: " + rcpts +
         "\r\nSubject: Report Domain: " + r.policy_domain + " Submitter: " + settings.org_name +
         " Report-ID: <" + r.report_id + ">\r\nDate: " + date + "\r\nMessage-ID: <" + r.report_id +
         "@" + hostname + ">\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"" +
         boundary + "\"\r\n\r\n--" + boundary +
         "\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nDMARC aggregate report for " +
         r.policy_domain + " (RFC 7489), from " + settings.org_name + ".\r\n--" + boundary +
         "\r\nContent-Type: application/gzip; name=\"" + file +
         "\"\r\nContent-Disposition: attachment; filename=\"" + file +
         "\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
         base64_lines(base::gzip(mailauth::format_dmarc_report(r))) + "--" + boundary + "--\r\n";
}

}  // namespace

void record_dmarc_event(const Services& svc, const mailauth::DmarcEvent& event) {
  if (!svc.report_key || event.policy.rua.empty()) return;  // nobody asked for reports
  std::string sealed =
      crypto::seal_random_nonce(svc.report_key->view(), event_ad, event.serialize());
  if (auto r = svc.store->add_dmarc_event(event.time, sealed); !r)
    base::log::warn("dmarc.event.lost", {{"error", r.error().describe()}});
}

Result<DmarcReportOutcome> send_dmarc_reports(const Services& svc,
                                              const DmarcReportSettings& settings, int64_t until) {
  DmarcReportOutcome out;
  if (!svc.report_key || !svc.queue) return out;
  auto rows = svc.store->dmarc_events_before(until);
  if (!rows) return rows.error();
  if (rows->empty()) return out;
  std::vector<mailauth::DmarcEvent> events;
  std::vector<int64_t> ids;
  int64_t begin = rows->front().time, end = begin;
  for (const auto& row : *rows) {
    ids.push_back(row.id);
    auto plain = crypto::open_random_nonce(svc.report_key->view(), event_ad, row.sealed);
    if (!plain) continue;  // sealed under a key that is gone: nothing to report
    auto e = mailauth::DmarcEvent::parse(*plain);
    if (!e) continue;
    begin = std::min(begin, e->time);
    end = std::max(end, e->time);
    events.push_back(std::move(*e));
  }
  out.events = events.size();
  std::string from_domain = queue::address_domain(settings.report_from);
  auto reports =
      mailauth::aggregate_dmarc_events(events, settings.org_name, settings.report_from, begin, end);
  for (auto& r : reports) {
    r.report_id = base::system_random().token(12);
    std::vector<std::string> to;
    for (const auto& uri : r.policy.rua) {
      std::string address = mailto_address(uri);
      auto domain = queue::address_domain(address);
      if (domain.empty()) continue;
      if (!authorised(svc.resolver, r.policy_domain, domain)) {
        ++out.unauthorised;
        base::log::info("dmarc.report.unauthorised",
                        {{"domain", r.policy_domain}, {"rua", address}});
        continue;
      }
      to.push_back(address);
    }
    if (to.empty()) continue;
    std::string message =
        report_message(r, settings, to, base::rfc5322_date(svc.clock->now()), settings.org_name);
    auto signatures = dkim_signatures(*svc.store, from_domain, message, svc.clock->unix_seconds());
    if (!signatures) return signatures.error();
    queue::NewMessage m;
    m.sender = settings.report_from;
    m.recipients = to;
    m.content = *signatures + message;
    auto id = svc.queue->enqueue(m);
    if (!id) return id.error();
    ++out.reports;
    base::log::info("dmarc.report.queued", {{"domain", r.policy_domain},
                                            {"id", *id},
                                            {"rows", r.rows.size()},
                                            {"recipients", to.size()}});
  }
  // Only now: a crash before this line reports the same events again, never loses them.
  if (auto r = svc.store->delete_dmarc_events(ids); !r) return r.error();
  return out;
}

}  // namespace postern::server
