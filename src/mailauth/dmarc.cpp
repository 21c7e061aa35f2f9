// DMARC (RFC 7489): the author domain, policy discovery, alignment and the policy to apply.
#include <libpsl.h>

#include <charconv>

#include "base/text.hpp"
#include "mailauth/mailauth.hpp"
#include "mime/mime.hpp"

namespace postern::mailauth {
namespace {

std::optional<DmarcPolicy> policy_from(std::string_view s) {
  std::string v = base::ascii_lower(s);
  if (v == "none") return DmarcPolicy::none;
  if (v == "quarantine") return DmarcPolicy::quarantine;
  if (v == "reject") return DmarcPolicy::reject;
  return std::nullopt;
}

// RFC 7489 6.4: "mailto:addr" with an optional "!size"; commas inside are escaped as %2C.
std::vector<std::string> uri_list(std::string_view s) {
  std::vector<std::string> out;
  while (!s.empty() && out.size() < 10) {
    auto comma = s.find(',');
    std::string_view one = s.substr(0, comma);
    while (!one.empty() && (one.front() == ' ' || one.front() == '\t')) one.remove_prefix(1);
    while (!one.empty() && (one.back() == ' ' || one.back() == '\t')) one.remove_suffix(1);
    if (base::istarts_with(one, "mailto:") && one.size() > 7 && one.find('@') != one.npos)
      out.emplace_back(one);
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  return out;
}

bool aligned(std::string_view a, std::string_view b, bool strict) {
  std::string x = base::ascii_lower(a), y = base::ascii_lower(b);
  if (x == y) return true;
  return !strict && organizational_domain(x) == organizational_domain(y);
}

// The DMARC record at _dmarc.<domain>: nullopt while unanswered; an outcome with result
// none (no usable record), temperror, or with `record` set.
std::optional<DmarcOutcome> discover(const std::string& domain, Lookups& lookups) {
  const auto* answer = lookups.get("_dmarc." + domain, dns::Type::txt);
  if (!answer) return std::nullopt;
  DmarcOutcome o;
  if (!*answer || ((*answer)->rcode != 0 && (*answer)->rcode != 3)) {
    o.result = DmarcResult::temperror;
    return o;
  }
  std::vector<std::string> dmarc;
  for (auto& r : txt_records(**answer))
    if (r.starts_with("v=DMARC1") && (r.size() == 8 || r[8] == ';' || r[8] == ' ' || r[8] == '\t'))
      dmarc.push_back(std::move(r));
  // RFC 7489 6.6.3: several records, like none, mean no DMARC for this message.
  if (dmarc.size() != 1) return o;
  auto record = parse_dmarc(dmarc.front());
  if (!record) return o;
  o.record = std::move(*record);
  o.policy_domain = domain;
  return o;
}

}  // namespace

const char* to_string(DmarcPolicy p) {
  switch (p) {
    case DmarcPolicy::none:
      return "none";
    case DmarcPolicy::quarantine:
      return "quarantine";
    case DmarcPolicy::reject:
      return "reject";
  }
  return "none";
}

const char* to_string(DmarcResult r) {
  switch (r) {
    case DmarcResult::none:
      return "none";
    case DmarcResult::pass:
      return "pass";
    case DmarcResult::fail:
      return "fail";
    case DmarcResult::temperror:
      return "temperror";
    case DmarcResult::permerror:
      return "permerror";
  }
  return "none";
}

Result<DmarcRecord> parse_dmarc(std::string_view text) {
  auto tags = parse_tag_list(text);
  if (!tags) return tags.error();
  if (tags->empty() || (*tags)[0].first != "v" || (*tags)[0].second != "DMARC1")
    return Error(Errc::syntax, "record does not start with v=DMARC1");
  DmarcRecord r;
  bool policy_ok = false, subdomain_ok = true;
  for (const auto& [name, value] : *tags) {
    std::string n = base::ascii_lower(name);
    if (n == "p") {
      auto p = policy_from(value);
      policy_ok = p.has_value();
      r.policy = p.value_or(DmarcPolicy::none);
    } else if (n == "sp") {
      r.subdomain_policy = policy_from(value);
      subdomain_ok = r.subdomain_policy.has_value();
    } else if (n == "adkim" || n == "aspf") {
      std::string v = base::ascii_lower(value);
      if (v != "r" && v != "s") return Error(Errc::syntax, n + "= must be r or s");
      (n == "adkim" ? r.strict_dkim : r.strict_spf) = v == "s";
    } else if (n == "pct") {
      int pct = -1;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), pct);
      if (ec != std::errc() || end != value.data() + value.size() || pct < 0 || pct > 100)
        return Error(Errc::syntax, "pct= must be 0..100");
      r.percent = pct;
    } else if (n == "ri") {
      uint32_t ri = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), ri);
      if (ec == std::errc() && end == value.data() + value.size() && ri > 0) r.report_interval = ri;
    } else if (n == "rua") {
      r.rua = uri_list(value);
    } else if (n == "ruf") {
      r.ruf = uri_list(value);
    }
  }
  // RFC 7489 6.6.3: a bad or missing p= (or bad sp=) still counts as p=none when the domain
  // asks for reports, so that it learns about its mistake; otherwise the record is unusable.
  if (!policy_ok || !subdomain_ok) {
    if (r.rua.empty()) return Error(Errc::syntax, "missing or invalid p=/sp=");
    r.policy = DmarcPolicy::none;
    r.subdomain_policy.reset();
  }
  return r;
}

std::string organizational_domain(std::string_view domain) {
  std::string d = base::ascii_lower(domain);
  while (!d.empty() && d.back() == '.') d.pop_back();
  static const psl_ctx_t* psl = [] {
    const psl_ctx_t* p = psl_builtin();
    return p ? p : psl_latest(nullptr);
  }();
  if (!psl) return d;
  const char* registrable = psl_registrable_domain(psl, d.c_str());
  return registrable ? std::string(registrable) : d;
}

Result<std::string> author_domain(std::string_view message) {
  mime::HeaderLimits limits;
  limits.max_headers = 10000;
  limits.max_header_bytes = message.size();
  auto hs = mime::parse_header_section(message, limits);
  if (!hs) return Error(Errc::bad_message, "header section cannot be parsed");
  const mime::Header* from = nullptr;
  for (const auto& h : hs->headers) {
    if (!base::iequals(h.name, "From")) continue;
    if (from) return Error(Errc::bad_message, "more than one From field");
    from = &h;
  }
  if (!from) return Error(Errc::bad_message, "no From field");
  auto list = mime::parse_address_list(mime::unfold(from->raw_value));
  const mime::ListedAddress* only = nullptr;
  for (const auto& a : list) {
    if (a.kind != mime::ListedAddress::Kind::address) continue;
    if (only) return Error(Errc::bad_message, "more than one From address");
    only = &a;
  }
  if (!only || !only->host || !only->mailbox || only->mailbox->empty())
    return Error(Errc::bad_message, "From has no address");
  std::string domain = base::ascii_lower(*only->host);
  while (!domain.empty() && domain.back() == '.') domain.pop_back();
  if (!mime::valid_domain(domain, true) || domain.find('.') == std::string::npos)
    return Error(Errc::bad_message, "From domain is not valid");
  return domain;
}

std::optional<DmarcOutcome> check_dmarc(const DmarcRequest& request, Lookups& lookups) {
  const std::string& from = request.from_domain;
  auto found = discover(from, lookups);
  if (!found) return std::nullopt;
  std::string org = organizational_domain(from);
  if (found->result == DmarcResult::none && !found->record && org != from) {
    found = discover(org, lookups);
    if (!found) return std::nullopt;
  }
  DmarcOutcome o = std::move(*found);
  o.from_domain = from;
  if (!o.record) return o;  // none or temperror

  const DmarcRecord& r = *o.record;
  for (const auto& d : request.dkim)
    if (d.result == DkimResult::pass && !d.testing && aligned(d.domain, from, r.strict_dkim))
      o.dkim_aligned = true;
  o.spf_aligned = request.spf.result == SpfResult::pass && !request.spf_domain.empty() &&
                  aligned(request.spf_domain, from, r.strict_spf);
  if (o.dkim_aligned || o.spf_aligned) {
    o.result = DmarcResult::pass;
    return o;
  }
  o.result = DmarcResult::fail;
  // sp= governs subdomains when the record was found at the organisational domain.
  DmarcPolicy policy = r.policy;
  if (o.policy_domain != from && r.subdomain_policy) policy = *r.subdomain_policy;
  if (static_cast<int>(request.sample) >= r.percent && policy != DmarcPolicy::none) {
    // RFC 7489 6.6.4: messages outside the sample get the next weaker policy.
    o.sampled_out = true;
    policy = policy == DmarcPolicy::reject ? DmarcPolicy::quarantine : DmarcPolicy::none;
  }
  o.applied = policy;
  return o;
}

}  // namespace postern::mailauth
