// check_host() (RFC 7208 4-6) as a replayed pure function: every run starts from the sender's
// domain and walks the same path through the Lookups, so the lookup counters and the order of
// evaluation are the same each time; a run stops at the first answer it lacks. Where several
// answers are independent (the addresses of all MX hosts, of all PTR names) they are noted
// together so that one round of lookups brings them all.
#include <algorithm>

#include "base/text.hpp"
#include "mailauth/spf_internal.hpp"

namespace postern::mailauth {
namespace {

using spf::Ip;
using spf::MacroValues;

constexpr int kMaxDnsTerms = 10;          // RFC 7208 4.6.4
constexpr int kMaxVoidLookups = 2;        // RFC 7208 4.6.4
constexpr std::size_t kMaxMxNames = 10;   // per mx mechanism, more is a permerror
constexpr std::size_t kMaxPtrNames = 10;  // per PTR answer, the rest are ignored
// The lookup limit already bounds include/redirect nesting; this guards the recursion on its
// own in case that ever changes.
constexpr int kMaxDepth = kMaxDnsTerms + 2;
// The explanation ends up in an SMTP reply and a log line.
constexpr std::size_t kMaxExplanation = 512;

// What one mechanism did; `failed` leaves the outcome in Evaluator::failure_.
enum class Step { no_match, match, missing, failed };

bool dns_error(const dns::Answer& a) {
  return a.rcode != 0 && a.rcode != 3 && !a.nxdomain;
}
bool void_answer(const dns::Answer& a) {
  return a.nxdomain || a.rcode == 3 || a.rdata.empty();
}

const char* type_name(dns::Type type) {
  switch (type) {
    case dns::Type::a:
      return "A";
    case dns::Type::aaaa:
      return "AAAA";
    case dns::Type::mx:
      return "MX";
    case dns::Type::ptr:
      return "PTR";
    case dns::Type::txt:
      return "TXT";
    default:
      return "?";
  }
}

SpfResult qualifier_result(char q) {
  switch (q) {
    case '-':
      return SpfResult::fail;
    case '~':
      return SpfResult::softfail;
    case '?':
      return SpfResult::neutral;
    default:
      return SpfResult::pass;
  }
}

std::string strip_dot(std::string name) {
  if (!name.empty() && name.back() == '.') name.pop_back();
  return name;
}

// Whether `name` is `domain` or below it (both lower case, no final dot).
bool within(std::string_view name, std::string_view domain) {
  return name == domain || (name.size() > domain.size() && name.ends_with(domain) &&
                            name[name.size() - domain.size() - 1] == '.');
}

void tidy(std::string& s, std::size_t max) {
  if (s.size() > max) s.resize(max);
  for (char& c : s)
    if (c < 0x20 || c > 0x7e) c = '?';
}

class Evaluator {
 public:
  Evaluator(const Ip& ip, MacroValues base, Lookups& lookups)
      : ip_(ip), base_(std::move(base)), lookups_(lookups) {}

  // `explain`: whether a fail needs its explanation (not inside include, whose exp= is never
  // used: RFC 7208 6.2).
  std::optional<SpfOutcome> check_host(const std::string& domain, int depth, bool explain);

 private:
  std::optional<SpfOutcome> evaluate(const std::string& domain, const std::vector<SpfTerm>& terms,
                                     int depth, bool explain);
  Step mechanism(const SpfTerm& term, const MacroValues& values, int depth);
  Step match_include(const SpfTerm& term, const MacroValues& values, int depth);
  Step match_a(const SpfTerm& term, const MacroValues& values);
  Step match_mx(const SpfTerm& term, const MacroValues& values);
  Step match_ptr(const SpfTerm& term, const MacroValues& values);
  Step match_exists(const SpfTerm& term, const MacroValues& values);

  // The expanded domain-spec (the current domain when there is none), lower case, ready for
  // a query; nullopt while %{p} waits for answers.
  std::optional<Result<std::string>> target(std::string_view spec, const MacroValues& values);
  // The expanded domain of a DNS-causing mechanism, counted against the 10-lookup limit;
  // nullopt with `step` set (missing, or failed) when there is none to query.
  std::optional<std::string> mechanism_target(const SpfTerm& term, const MacroValues& values,
                                              Step& step);
  std::optional<Result<std::string>> expand(std::string_view text, const MacroValues& values,
                                            spf::MacroUse use);
  // An answer for a mechanism of `domain`'s policy: nullptr while missing (Step::missing), or
  // when it ends the evaluation (a DNS error, too many void lookups: Step::failed). `is_void`
  // is set for an empty answer, which is then counted.
  const dns::Answer* answer(const std::string& domain, const std::string& name, dns::Type type,
                            Step& step, bool& is_void);
  bool count_lookup(const std::string& domain);
  Step fail(SpfResult result, std::string domain, std::string why);
  // RFC 7208 5.5: the PTR names of the client whose addresses include it (first 10 names);
  // nullptr while answers are missing. Cached: %{p} and ptr share it.
  const std::vector<std::string>* validated_names();
  std::optional<std::string> validated_name(const std::string& domain);
  std::optional<std::string> explanation(const SpfTerm* exp, const MacroValues& values);
  bool has_address(const dns::Answer& answer, int bits) const;

  Ip ip_;
  MacroValues base_;
  Lookups& lookups_;
  int lookups_used_ = 0;
  int voids_ = 0;
  std::optional<std::vector<std::string>> validated_;
  bool ptr_void_ = false;
  SpfOutcome failure_;
};

Step Evaluator::fail(SpfResult result, std::string domain, std::string why) {
  failure_ = SpfOutcome{result, std::move(domain), std::move(why), {}};
  return Step::failed;
}

bool Evaluator::count_lookup(const std::string& domain) {
  if (++lookups_used_ <= kMaxDnsTerms) return true;
  fail(SpfResult::permerror, domain, "more than 10 DNS lookups");
  return false;
}

const dns::Answer* Evaluator::answer(const std::string& domain, const std::string& name,
                                     dns::Type type, Step& step, bool& is_void) {
  is_void = false;
  const Result<dns::Answer>* a = lookups_.get(name, type);
  if (!a) {
    step = Step::missing;
    return nullptr;
  }
  if (!*a || dns_error(**a)) {
    step = fail(SpfResult::temperror, domain,
                std::string("DNS error looking up ") + type_name(type) + " " + name);
    return nullptr;
  }
  if (void_answer(**a)) {
    is_void = true;
    if (++voids_ > kMaxVoidLookups) {
      step = fail(SpfResult::permerror, domain, "more than 2 void lookups");
      return nullptr;
    }
  }
  return &**a;
}

bool Evaluator::has_address(const dns::Answer& answer, int bits) const {
  std::size_t size = ip_.v6 ? 16 : 4;
  for (const auto& rd : answer.rdata) {
    if (rd.size() != size) continue;
    Ip addr;
    addr.v6 = ip_.v6;
    std::copy(rd.begin(), rd.end(), addr.bytes.begin());
    if (spf::same_prefix(ip_, addr, bits)) return true;
  }
  return false;
}

std::optional<Result<std::string>> Evaluator::expand(std::string_view text,
                                                     const MacroValues& values, spf::MacroUse use) {
  if (!spf::uses_macro(text, 'p')) return spf::expand_macros(text, values, use);
  auto p = validated_name(values.domain);
  if (!p) return std::nullopt;
  MacroValues with_p = values;
  with_p.validated = std::move(*p);
  return spf::expand_macros(text, with_p, use);
}

std::optional<Result<std::string>> Evaluator::target(std::string_view spec,
                                                     const MacroValues& values) {
  if (spec.empty()) return Result<std::string>(values.domain);
  auto expanded = expand(spec, values, spf::MacroUse::domain);
  if (!expanded) return std::nullopt;
  if (!*expanded) return *expanded;
  return Result<std::string>(base::ascii_lower(spf::truncate_domain(**expanded)));
}

const std::vector<std::string>* Evaluator::validated_names() {
  if (validated_) return &*validated_;
  const Result<dns::Answer>* ptr = lookups_.get(spf::reverse_name(ip_), dns::Type::ptr);
  if (!ptr) return nullptr;
  std::vector<std::string> names;
  // RFC 7208 5.5: a DNS error on the PTR lookup makes the mechanism not match.
  if (*ptr && !dns_error(**ptr)) {
    ptr_void_ = void_answer(**ptr);
    for (const auto& rd : (*ptr)->rdata) {
      if (names.size() == kMaxPtrNames) break;
      std::size_t pos = 0;
      auto name = dns::parse_name(rd, pos);
      if (name && spf::valid_domain(*name, false)) names.push_back(std::move(*name));
    }
  }
  // Forward confirmation, all names at once; a name whose lookup fails is skipped.
  dns::Type type = ip_.v6 ? dns::Type::aaaa : dns::Type::a;
  std::vector<const Result<dns::Answer>*> forward;
  bool missing = false;
  for (const auto& n : names) {
    forward.push_back(lookups_.get(n, type));
    missing = missing || !forward.back();
  }
  if (missing) return nullptr;
  std::vector<std::string> confirmed;
  for (std::size_t i = 0; i < names.size(); ++i)
    if (*forward[i] && !dns_error(**forward[i]) && has_address(**forward[i], -1))
      confirmed.push_back(std::move(names[i]));
  validated_ = std::move(confirmed);
  return &*validated_;
}

std::optional<std::string> Evaluator::validated_name(const std::string& domain) {
  const auto* names = validated_names();
  if (!names) return std::nullopt;
  if (names->empty()) return "unknown";
  // RFC 7208 7.3: the domain itself, else a name below it, else any.
  std::string d = base::ascii_lower(strip_dot(domain));
  for (const auto& n : *names)
    if (n == d) return n;
  for (const auto& n : *names)
    if (within(n, d)) return n;
  return names->front();
}

std::optional<std::string> Evaluator::mechanism_target(const SpfTerm& term,
                                                       const MacroValues& values, Step& step) {
  if (!count_lookup(values.domain)) {
    step = Step::failed;
    return std::nullopt;
  }
  auto t = target(term.domain_spec, values);
  if (!t) {
    step = Step::missing;
    return std::nullopt;
  }
  if (!*t) {
    step = fail(SpfResult::permerror, values.domain, t->error().detail());
    return std::nullopt;
  }
  return std::move(**t);
}

Step Evaluator::match_include(const SpfTerm& term, const MacroValues& values, int depth) {
  Step step = Step::no_match;
  auto t = mechanism_target(term, values, step);
  if (!t) return step;
  auto sub = check_host(*t, depth + 1, false);
  if (!sub) return Step::missing;
  switch (sub->result) {
    case SpfResult::pass:
      return Step::match;
    case SpfResult::fail:
    case SpfResult::softfail:
    case SpfResult::neutral:
      return Step::no_match;
    case SpfResult::none:
      return fail(SpfResult::permerror, values.domain, "include:" + *t + " has no SPF record");
    default:
      failure_ = std::move(*sub);
      return Step::failed;
  }
}

Step Evaluator::match_a(const SpfTerm& term, const MacroValues& values) {
  Step step = Step::no_match;
  auto t = mechanism_target(term, values, step);
  if (!t) return step;
  // A name no query can be made for does not exist (RFC 7208 4.3 by analogy).
  if (!spf::valid_domain(*t, false)) return Step::no_match;
  bool is_void = false;
  const dns::Answer* a =
      answer(values.domain, *t, ip_.v6 ? dns::Type::aaaa : dns::Type::a, step, is_void);
  if (!a) return step;
  return has_address(*a, ip_.v6 ? term.cidr6 : term.cidr4) ? Step::match : Step::no_match;
}

Step Evaluator::match_mx(const SpfTerm& term, const MacroValues& values) {
  Step step = Step::no_match;
  auto t = mechanism_target(term, values, step);
  if (!t) return step;
  if (!spf::valid_domain(*t, false)) return Step::no_match;
  bool is_void = false;
  const dns::Answer* mx = answer(values.domain, *t, dns::Type::mx, step, is_void);
  if (!mx) return step;
  std::vector<std::string> hosts;
  for (const auto& rd : mx->rdata) {
    auto m = dns::parse_mx(rd);
    // The null MX (RFC 7505) names no host.
    if (m && !m->exchange.empty()) hosts.push_back(std::move(m->exchange));
  }
  if (hosts.size() > kMaxMxNames)
    return fail(SpfResult::permerror, values.domain, "more than 10 MX records at " + *t);
  dns::Type type = ip_.v6 ? dns::Type::aaaa : dns::Type::a;
  std::vector<const Result<dns::Answer>*> addrs;
  bool missing = false;
  for (const auto& h : hosts) {
    // A host name no query can be made for has no addresses.
    bool usable = spf::valid_domain(h, false);
    addrs.push_back(usable ? lookups_.get(h, type) : nullptr);
    missing = missing || (usable && !addrs.back());
  }
  if (missing) return Step::missing;
  int bits = ip_.v6 ? term.cidr6 : term.cidr4;
  for (std::size_t i = 0; i < hosts.size(); ++i) {
    if (!addrs[i]) continue;
    if (!*addrs[i] || dns_error(**addrs[i]))
      return fail(SpfResult::temperror, values.domain,
                  std::string("DNS error looking up ") + type_name(type) + " " + hosts[i]);
    if (has_address(**addrs[i], bits)) return Step::match;
  }
  return Step::no_match;
}

Step Evaluator::match_ptr(const SpfTerm& term, const MacroValues& values) {
  Step step = Step::no_match;
  auto t = mechanism_target(term, values, step);
  if (!t) return step;
  const auto* names = validated_names();
  if (!names) return Step::missing;
  if (ptr_void_ && ++voids_ > kMaxVoidLookups)
    return fail(SpfResult::permerror, values.domain, "more than 2 void lookups");
  for (const auto& n : *names)
    if (within(n, *t)) return Step::match;
  return Step::no_match;
}

Step Evaluator::match_exists(const SpfTerm& term, const MacroValues& values) {
  Step step = Step::no_match;
  auto t = mechanism_target(term, values, step);
  if (!t) return step;
  if (!spf::valid_domain(*t, false)) return Step::no_match;
  bool is_void = false;
  // Always A, whatever the client's family (RFC 7208 5.7).
  const dns::Answer* a = answer(values.domain, *t, dns::Type::a, step, is_void);
  if (!a) return step;
  return is_void ? Step::no_match : Step::match;
}

Step Evaluator::mechanism(const SpfTerm& term, const MacroValues& values, int depth) {
  switch (term.kind) {
    case SpfTerm::Kind::all:
      return Step::match;
    case SpfTerm::Kind::ip4:
    case SpfTerm::Kind::ip6: {
      bool v6 = term.kind == SpfTerm::Kind::ip6;
      auto net = spf::parse_ip(term.address, false);
      if (!net || ip_.v6 != v6) return Step::no_match;
      return spf::same_prefix(ip_, *net, v6 ? term.cidr6 : term.cidr4) ? Step::match
                                                                       : Step::no_match;
    }
    case SpfTerm::Kind::include:
      return match_include(term, values, depth);
    case SpfTerm::Kind::a:
      return match_a(term, values);
    case SpfTerm::Kind::mx:
      return match_mx(term, values);
    case SpfTerm::Kind::ptr:
      return match_ptr(term, values);
    case SpfTerm::Kind::exists:
      return match_exists(term, values);
    default:
      return Step::no_match;
  }
}

std::optional<std::string> Evaluator::explanation(const SpfTerm* exp, const MacroValues& values) {
  if (!exp) return "";
  auto t = target(exp->domain_spec, values);
  if (!t) return std::nullopt;
  // RFC 7208 6.2: any trouble with the explanation leaves it out.
  if (!*t || !spf::valid_domain(**t, false)) return "";
  const Result<dns::Answer>* a = lookups_.get(**t, dns::Type::txt);
  if (!a) return std::nullopt;
  if (!*a || (*a)->rcode != 0 || (*a)->nxdomain) return "";
  auto records = txt_records(**a);
  if (records.size() != 1) return "";
  auto text = expand(records[0], values, spf::MacroUse::explanation);
  if (!text) return std::nullopt;
  if (!*text) return "";
  return std::move(**text);
}

std::optional<SpfOutcome> Evaluator::evaluate(const std::string& domain,
                                              const std::vector<SpfTerm>& terms, int depth,
                                              bool explain) {
  MacroValues values = base_;
  values.domain = domain;
  const SpfTerm* redirect = nullptr;
  const SpfTerm* exp = nullptr;
  bool has_all = false;
  for (const auto& t : terms) {
    if (t.kind == SpfTerm::Kind::redirect) redirect = &t;
    if (t.kind == SpfTerm::Kind::exp) exp = &t;
    has_all = has_all || t.kind == SpfTerm::Kind::all;
  }
  // RFC 7208 6.1: redirect is ignored when the record has an "all".
  if (has_all) redirect = nullptr;
  for (const auto& t : terms) {
    switch (mechanism(t, values, depth)) {
      case Step::no_match:
        continue;
      case Step::missing:
        return std::nullopt;
      case Step::failed:
        return failure_;
      case Step::match:
        break;
    }
    SpfOutcome out{qualifier_result(t.qualifier), domain, spf::term_text(t), {}};
    if (out.result == SpfResult::fail && explain) {
      auto e = explanation(exp, values);
      if (!e) return std::nullopt;
      out.explanation = std::move(*e);
    }
    return out;
  }
  if (!redirect) return SpfOutcome{SpfResult::neutral, domain, "default", {}};
  // The redirected domain's outcome replaces this one, explanation included (RFC 7208 6.2).
  if (!count_lookup(domain)) return failure_;
  auto t = target(redirect->domain_spec, values);
  if (!t) return std::nullopt;
  if (!*t) return SpfOutcome{SpfResult::permerror, domain, t->error().detail(), {}};
  auto sub = check_host(**t, depth + 1, explain);
  if (sub && sub->result == SpfResult::none)
    return SpfOutcome{SpfResult::permerror, domain, "redirect=" + **t + " has no SPF record", {}};
  return sub;
}

std::optional<SpfOutcome> Evaluator::check_host(const std::string& domain, int depth,
                                                bool explain) {
  if (depth > kMaxDepth)
    return SpfOutcome{SpfResult::permerror, domain, "include/redirect nested too deep", {}};
  // RFC 7208 4.3: a malformed or single-label domain has no policy.
  if (!spf::valid_domain(domain, true))
    return SpfOutcome{SpfResult::none, domain, "not a valid domain", {}};
  const Result<dns::Answer>* a = lookups_.get(domain, dns::Type::txt);
  if (!a) return std::nullopt;
  if (!*a || dns_error(**a))
    return SpfOutcome{SpfResult::temperror, domain, "DNS error looking up TXT " + domain, {}};
  if ((*a)->nxdomain || (*a)->rcode == 3)
    return SpfOutcome{SpfResult::none, domain, "no such domain", {}};
  std::optional<std::string> record;
  for (auto& txt : txt_records(**a)) {
    if (!spf::is_spf_record(txt)) continue;
    if (record) return SpfOutcome{SpfResult::permerror, domain, "more than one SPF record", {}};
    record = std::move(txt);
  }
  if (!record) return SpfOutcome{SpfResult::none, domain, "no SPF record", {}};
  auto terms = parse_spf(*record);
  if (!terms) return SpfOutcome{SpfResult::permerror, domain, terms.error().detail(), {}};
  return evaluate(domain, *terms, depth, explain);
}

}  // namespace

std::optional<SpfOutcome> check_spf(const SpfRequest& request, Lookups& lookups) {
  std::string_view sender = request.sender;
  auto at = sender.rfind('@');
  std::string local(at == sender.npos ? std::string_view() : sender.substr(0, at));
  // RFC 7208 4.3: no local-part means "postmaster".
  if (local.empty()) local = "postmaster";
  std::string domain =
      strip_dot(base::ascii_lower(at == sender.npos ? sender : sender.substr(at + 1)));
  auto ip = spf::parse_ip(request.ip);
  if (!ip) return SpfOutcome{SpfResult::none, domain, "unusable client address", {}};

  MacroValues values;
  values.local_part = local;
  values.sender = local + "@" + domain;
  values.sender_domain = domain;
  values.ip_dotted = spf::ip_dotted(*ip);
  values.ip_text = spf::ip_text(*ip);
  values.ip_version = ip->v6 ? "ip6" : "in-addr";
  values.helo = request.helo;
  values.receiver = request.receiver.empty() ? "unknown" : request.receiver;
  values.timestamp = std::to_string(request.now);
  Evaluator evaluator(*ip, std::move(values), lookups);
  auto out = evaluator.check_host(domain, 0, true);
  if (out) {
    // Macros copy the client's local-part into names and explanations: keep what reaches
    // SMTP replies, headers and logs printable and short.
    tidy(out->domain, 255);
    tidy(out->mechanism, 300);
    tidy(out->explanation, kMaxExplanation);
  }
  return out;
}

}  // namespace postern::mailauth
