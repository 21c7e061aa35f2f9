// DMARC aggregate reports (RFC 7489 7.2 and Appendix C): the per-message event, aggregation,
// the XML report, parsing received reports (libxml2), and the external destination check.
#include <libxml/parser.h>
#include <libxml/tree.h>

#include <charconv>
#include <map>
#include <tuple>

#include "base/text.hpp"
#include "mailauth/mailauth.hpp"

namespace postern::mailauth {
namespace {

constexpr std::size_t max_report_bytes = std::size_t{32} << 20;
constexpr std::size_t max_records = 100000;

// Event fields are tab-separated and lists use ',' and ';': keep those (and anything that is
// not printable ASCII, which XML or the fields cannot carry safely) out of the values.
std::string clean(std::string_view s, std::size_t max = 255) {
  std::string out;
  for (char c : s.substr(0, max)) {
    auto u = static_cast<unsigned char>(c);
    out += (u < 0x21 || u > 0x7e || c == ',' || c == ';') ? '_' : c;
  }
  return out;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  if (s.empty()) return out;
  std::size_t pos = 0;
  while (true) {
    auto next = s.find(sep, pos);
    out.push_back(s.substr(pos, next == std::string_view::npos ? s.npos : next - pos));
    if (next == std::string_view::npos) break;
    pos = next + 1;
  }
  return out;
}

std::optional<int64_t> integer(std::string_view s) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<DmarcPolicy> policy_of(std::string_view s) {
  if (s == "none") return DmarcPolicy::none;
  if (s == "quarantine") return DmarcPolicy::quarantine;
  if (s == "reject") return DmarcPolicy::reject;
  return std::nullopt;
}

std::string xml_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// RFC 7489's schema matches only the full eight-group form of an IPv6 address.
std::string report_ip(const std::string& ip) {
  if (ip.find(':') == std::string::npos) return ip;
  std::vector<std::string> head, tail;
  auto gap = ip.find("::");
  auto groups = [](std::string_view s) {
    std::vector<std::string> g;
    for (auto part : split(s, ':')) g.emplace_back(part);
    return g;
  };
  if (gap == std::string::npos) {
    head = groups(ip);
  } else {
    head = groups(std::string_view(ip).substr(0, gap));
    tail = groups(std::string_view(ip).substr(gap + 2));
  }
  if (!tail.empty() && tail.back().find('.') != std::string::npos) return ip;  // v4-mapped
  std::vector<std::string> all = head;
  for (std::size_t i = head.size() + tail.size(); i < 8; ++i) all.emplace_back("0");
  all.insert(all.end(), tail.begin(), tail.end());
  std::string out;
  for (const auto& g : all) out += (out.empty() ? "" : ":") + (g.empty() ? "0" : g);
  return out;
}

std::string element(std::string_view name, std::string_view text) {
  return "<" + std::string(name) + ">" + xml_escape(text) + "</" + std::string(name) + ">";
}

// The key that makes two events one report row.
auto row_key(const DmarcEvent& e) {
  std::string dkim;
  for (const auto& d : e.dkim) dkim += d.domain + "," + d.selector + "," + d.result + ";";
  std::string overrides;
  for (const auto& o : e.overrides) overrides += o + ",";
  return std::make_tuple(e.source_ip, e.header_from, e.envelope_from,
                         static_cast<int>(e.disposition), e.dkim_aligned, e.spf_aligned, overrides,
                         dkim, e.spf_domain, e.spf_scope, e.spf_result);
}

// libxml2 tree helpers: children by local name (namespaces ignored, as report senders vary).
std::vector<xmlNode*> children(xmlNode* parent, const char* name) {
  std::vector<xmlNode*> out;
  for (xmlNode* c = parent ? parent->children : nullptr; c; c = c->next)
    if (c->type == XML_ELEMENT_NODE && xmlStrcmp(c->name, BAD_CAST name) == 0) out.push_back(c);
  return out;
}
xmlNode* child(xmlNode* parent, const char* name) {
  auto all = children(parent, name);
  return all.empty() ? nullptr : all.front();
}
std::string text_of(xmlNode* node) {
  if (!node) return {};
  xmlChar* t = xmlNodeGetContent(node);
  std::string out = t ? reinterpret_cast<const char*>(t) : "";
  xmlFree(t);
  auto b = out.find_first_not_of(" \t\r\n");
  auto e = out.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? std::string() : out.substr(b, e - b + 1);
}

}  // namespace

std::string DmarcEvent::serialize() const {
  std::string dk;
  for (const auto& d : dkim)
    dk +=
        (dk.empty() ? "" : ";") + clean(d.domain) + "," + clean(d.selector) + "," + clean(d.result);
  std::string rua;
  for (const auto& r : policy.rua) rua += (rua.empty() ? "" : ";") + clean(r, 1000);
  std::string ov;
  for (const auto& o : overrides) ov += (ov.empty() ? "" : ";") + clean(o);
  std::vector<std::string> f = {"E1",
                                std::to_string(time),
                                clean(policy_domain),
                                clean(header_from),
                                clean(envelope_from),
                                clean(source_ip),
                                to_string(policy.policy),
                                policy.subdomain_policy ? to_string(*policy.subdomain_policy) : "",
                                std::to_string(policy.percent),
                                policy.strict_dkim ? "s" : "r",
                                policy.strict_spf ? "s" : "r",
                                rua,
                                to_string(disposition),
                                dkim_aligned ? "1" : "0",
                                spf_aligned ? "1" : "0",
                                ov,
                                dk,
                                clean(spf_domain),
                                clean(spf_scope),
                                clean(spf_result)};
  std::string out;
  for (const auto& x : f) out += (out.empty() ? "" : "\t") + x;
  return out;
}

Result<DmarcEvent> DmarcEvent::parse(std::string_view text) {
  auto bad = [] { return Error(Errc::syntax, "malformed DMARC event"); };
  auto f = split(text, '\t');
  if (f.size() != 20 || f[0] != "E1") return bad();
  DmarcEvent e;
  auto time = integer(f[1]);
  auto pct = integer(f[8]);
  auto p = policy_of(f[6]);
  auto disposition = policy_of(f[12]);
  if (!time || !pct || !p || !disposition) return bad();
  e.time = *time;
  e.policy_domain = f[2];
  e.header_from = f[3];
  e.envelope_from = f[4];
  e.source_ip = f[5];
  e.policy.policy = *p;
  if (!f[7].empty()) e.policy.subdomain_policy = policy_of(f[7]);
  e.policy.percent = static_cast<int>(*pct);
  e.policy.strict_dkim = f[9] == "s";
  e.policy.strict_spf = f[10] == "s";
  for (auto r : split(f[11], ';')) e.policy.rua.emplace_back(r);
  e.disposition = *disposition;
  e.dkim_aligned = f[13] == "1";
  e.spf_aligned = f[14] == "1";
  for (auto o : split(f[15], ';')) e.overrides.emplace_back(o);
  for (auto d : split(f[16], ';')) {
    auto parts = split(d, ',');
    if (parts.size() != 3) return bad();
    e.dkim.push_back({std::string(parts[0]), std::string(parts[1]), std::string(parts[2])});
  }
  e.spf_domain = f[17];
  e.spf_scope = f[18];
  e.spf_result = f[19];
  return e;
}

std::optional<DmarcEvent> dmarc_event(const InboundRequest& request,
                                      const InboundVerdict& verdict) {
  const DmarcOutcome& d = verdict.dmarc;
  if (!d.record || (d.result != DmarcResult::pass && d.result != DmarcResult::fail))
    return std::nullopt;
  DmarcEvent e;
  e.time = request.now;
  e.policy_domain = d.policy_domain;
  e.header_from = d.from_domain;
  e.envelope_from = verdict.spf_domain;
  e.source_ip = request.ip;
  e.policy = *d.record;
  e.dkim_aligned = d.dkim_aligned;
  e.spf_aligned = d.spf_aligned;
  using Action = InboundVerdict::Action;
  e.disposition = verdict.action == Action::reject ? DmarcPolicy::reject
                  : verdict.action == Action::junk ? DmarcPolicy::quarantine
                                                   : DmarcPolicy::none;
  if (d.sampled_out) e.overrides.emplace_back("sampled_out");
  // A failing policy not applied: lifted by a trusted sealer's ARC chain, or a trusted
  // forwarder's address.
  if (d.result == DmarcResult::fail && e.disposition == DmarcPolicy::none &&
      d.applied != DmarcPolicy::none)
    e.overrides.emplace_back(verdict.arc_override.empty() ? "trusted_forwarder" : "forwarded");
  for (const auto& k : verdict.dkim)
    if (!k.domain.empty()) e.dkim.push_back({k.domain, k.selector, to_string(k.result)});
  e.spf_domain = verdict.spf_domain;
  e.spf_scope = verdict.spf_helo ? "helo" : "mfrom";
  e.spf_result = to_string(verdict.spf.result);
  return e;
}

std::vector<DmarcReport> aggregate_dmarc_events(const std::vector<DmarcEvent>& events,
                                                const std::string& org_name,
                                                const std::string& email, int64_t begin,
                                                int64_t end) {
  std::map<std::string, DmarcReport> reports;
  std::map<std::string, std::map<decltype(row_key(events.front())), std::size_t>> index;
  for (const auto& e : events) {
    auto [it, fresh] = reports.try_emplace(e.policy_domain);
    DmarcReport& r = it->second;
    if (fresh) {
      r.org_name = org_name;
      r.email = email;
      r.begin = begin;
      r.end = end;
      r.policy_domain = e.policy_domain;
    }
    r.policy = e.policy;  // the newest policy seen wins
    auto& rows = index[e.policy_domain];
    auto [row, added] = rows.try_emplace(row_key(e), r.rows.size());
    if (added) {
      DmarcReport::Row fresh_row{e, 0};
      fresh_row.event.time = 0;
      r.rows.push_back(std::move(fresh_row));
    }
    ++r.rows[row->second].count;
  }
  std::vector<DmarcReport> out;
  out.reserve(reports.size());
  for (auto& [domain, r] : reports) out.push_back(std::move(r));
  return out;
}

std::string format_dmarc_report(const DmarcReport& r) {
  std::string x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback>\n";
  x += "  " + element("version", "1.0") + "\n";
  x += "  <report_metadata>" + element("org_name", r.org_name) + element("email", r.email) +
       element("report_id", r.report_id) + "<date_range>" +
       element("begin", std::to_string(r.begin)) + element("end", std::to_string(r.end)) +
       "</date_range></report_metadata>\n";
  const DmarcRecord& p = r.policy;
  x += "  <policy_published>" + element("domain", r.policy_domain) +
       element("adkim", p.strict_dkim ? "s" : "r") + element("aspf", p.strict_spf ? "s" : "r") +
       element("p", to_string(p.policy)) +
       element("sp", to_string(p.subdomain_policy.value_or(p.policy))) +
       element("pct", std::to_string(p.percent)) + element("fo", "0") + "</policy_published>\n";
  for (const auto& row : r.rows) {
    const DmarcEvent& e = row.event;
    x += "  <record>\n    <row>" + element("source_ip", report_ip(e.source_ip)) +
         element("count", std::to_string(row.count)) + "<policy_evaluated>" +
         element("disposition", to_string(e.disposition)) +
         element("dkim", e.dkim_aligned ? "pass" : "fail") +
         element("spf", e.spf_aligned ? "pass" : "fail");
    for (const auto& o : e.overrides) x += "<reason>" + element("type", o) + "</reason>";
    x += "</policy_evaluated></row>\n    <identifiers>" +
         element("envelope_from", e.envelope_from) + element("header_from", e.header_from) +
         "</identifiers>\n    <auth_results>";
    for (const auto& d : e.dkim)
      x += "<dkim>" + element("domain", d.domain) + element("selector", d.selector) +
           element("result", d.result) + "</dkim>";
    x += "<spf>" + element("domain", e.spf_domain) + element("scope", e.spf_scope) +
         element("result", e.spf_result) + "</spf></auth_results>\n  </record>\n";
  }
  return x + "</feedback>\n";
}

Result<DmarcReport> parse_dmarc_report(std::string_view xml) {
  auto bad = [](const char* why) { return Error(Errc::syntax, why); };
  if (xml.size() > max_report_bytes) return bad("report too large");
  xmlDoc* doc = xmlReadMemory(xml.data(), static_cast<int>(xml.size()), "report.xml", nullptr,
                              XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  if (!doc) return bad("not well-formed XML");
  std::unique_ptr<xmlDoc, void (*)(xmlDoc*)> guard(doc, xmlFreeDoc);
  // A report has no business declaring a DTD; refusing them rules out entity tricks.
  if (doc->intSubset || doc->extSubset) return bad("DTD in report");
  xmlNode* root = xmlDocGetRootElement(doc);
  if (!root || xmlStrcmp(root->name, BAD_CAST "feedback") != 0) return bad("not a feedback");
  DmarcReport r;
  xmlNode* meta = child(root, "report_metadata");
  xmlNode* published = child(root, "policy_published");
  if (!meta || !published) return bad("report_metadata or policy_published missing");
  r.org_name = text_of(child(meta, "org_name"));
  r.email = text_of(child(meta, "email"));
  r.report_id = text_of(child(meta, "report_id"));
  xmlNode* range = child(meta, "date_range");
  auto begin = integer(text_of(child(range, "begin")));
  auto end = integer(text_of(child(range, "end")));
  if (!begin || !end) return bad("bad date_range");
  r.begin = *begin;
  r.end = *end;
  r.policy_domain = base::ascii_lower(text_of(child(published, "domain")));
  r.policy.policy = policy_of(text_of(child(published, "p"))).value_or(DmarcPolicy::none);
  if (auto sp = policy_of(text_of(child(published, "sp")))) r.policy.subdomain_policy = sp;
  r.policy.strict_dkim = text_of(child(published, "adkim")) == "s";
  r.policy.strict_spf = text_of(child(published, "aspf")) == "s";
  if (auto pct = integer(text_of(child(published, "pct"))); pct && *pct >= 0 && *pct <= 100)
    r.policy.percent = static_cast<int>(*pct);
  auto records = children(root, "record");
  if (records.size() > max_records) return bad("too many records");
  for (xmlNode* rec : records) {
    xmlNode* row = child(rec, "row");
    xmlNode* evaluated = child(row, "policy_evaluated");
    auto count = integer(text_of(child(row, "count")));
    if (!row || !count || *count < 0) return bad("bad record row");
    DmarcReport::Row out{{}, static_cast<uint64_t>(*count)};
    DmarcEvent& e = out.event;
    e.policy_domain = r.policy_domain;
    e.source_ip = clean(text_of(child(row, "source_ip")), 64);
    e.disposition = policy_of(text_of(child(evaluated, "disposition"))).value_or(DmarcPolicy::none);
    e.dkim_aligned = text_of(child(evaluated, "dkim")) == "pass";
    e.spf_aligned = text_of(child(evaluated, "spf")) == "pass";
    for (xmlNode* reason : children(evaluated, "reason"))
      e.overrides.push_back(clean(text_of(child(reason, "type"))));
    xmlNode* ids = child(rec, "identifiers");
    e.header_from = clean(base::ascii_lower(text_of(child(ids, "header_from"))));
    e.envelope_from = clean(base::ascii_lower(text_of(child(ids, "envelope_from"))));
    xmlNode* auth = child(rec, "auth_results");
    for (xmlNode* d : children(auth, "dkim"))
      e.dkim.push_back({clean(text_of(child(d, "domain"))), clean(text_of(child(d, "selector"))),
                        clean(text_of(child(d, "result")))});
    if (xmlNode* spf = child(auth, "spf")) {
      e.spf_domain = clean(text_of(child(spf, "domain")));
      e.spf_scope = clean(text_of(child(spf, "scope")));
      e.spf_result = clean(text_of(child(spf, "result")));
    }
    r.rows.push_back(std::move(out));
  }
  return r;
}

std::string report_authorization_name(std::string_view policy_domain, std::string_view rua_domain) {
  if (organizational_domain(policy_domain) == organizational_domain(rua_domain)) return {};
  return base::ascii_lower(policy_domain) + "._report._dmarc." + base::ascii_lower(rua_domain);
}

}  // namespace postern::mailauth
