// The inbound decision: SPF, DKIM, ARC and DMARC for one message, the reply or mailbox it leads
// to, and the Authentication-Results field that records why.
#include "base/text.hpp"
#include "mailauth/mailauth.hpp"
#include "mime/mime.hpp"

namespace postern::mailauth {
namespace {

bool aligned_dkim_pass(const std::vector<DkimOutcome>& dkim, const std::string& from) {
  std::string org = organizational_domain(from);
  for (const auto& d : dkim)
    if (d.result == DkimResult::pass && organizational_domain(d.domain) == org) return true;
  return false;
}

bool trusted(const std::string& ip, const std::vector<std::string>& networks) {
  for (const auto& n : networks)
    if (in_network(ip, n)) return true;
  return false;
}

std::string bare_domain(std::string_view d) {
  std::string out = base::ascii_lower(d);
  while (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

// RFC 7489 3.1: an identifier's domain aligned with the From domain, strictly or relaxed.
bool aligned(std::string_view domain, const std::string& from, bool strict) {
  std::string d = bare_domain(domain);
  if (d.empty()) return false;
  return strict ? d == from : organizational_domain(d) == organizational_domain(from);
}

// The newest ARC Set's sealer, when it is one of `sealers`; nullptr otherwise.
const ArcSet* trusted_newest_set(const ArcOutcome& arc, const std::vector<std::string>& sealers) {
  const ArcSet* newest = arc.set(arc.instances);
  if (!newest) return nullptr;
  for (const auto& s : sealers)
    if (bare_domain(s) == newest->sealer) return newest;
  return nullptr;
}

// Whether a sealer's ARC-Authentication-Results (RFC 8617 4.1.1) record what DMARC would have
// passed on: dmarc=pass for the From domain, or an SPF or DKIM pass aligned with it (as the
// policy's adkim=/aspf= ask).
bool arc_results_pass(const ArcSet& set, const std::string& from, const DmarcOutcome& dmarc) {
  auto parsed = parse_authentication_results(set.aar_payload);
  if (!parsed) return false;
  bool strict_dkim = dmarc.record && dmarc.record->strict_dkim;
  bool strict_spf = dmarc.record && dmarc.record->strict_spf;
  for (const auto& r : parsed->results) {
    if (r.result != "pass") continue;
    for (const auto& [name, value] : r.properties) {
      if (r.method == "dmarc" && name == "header.from" && bare_domain(value) == from) return true;
      if (r.method == "dkim" && name == "header.d" && aligned(value, from, strict_dkim))
        return true;
      if (r.method == "spf" && name == "smtp.mailfrom" &&
          aligned(std::string_view(value).substr(value.rfind('@') + 1), from, strict_spf))
        return true;
    }
  }
  return false;
}

AuthResultsHeader results_of(const InboundRequest& req, const InboundVerdict& v,
                             const ArcVerifyOptions& arc_options, const std::string& from_domain) {
  AuthResultsHeader h;
  h.authserv_id = req.receiver;
  AuthResult spf{"spf", to_string(v.spf.result), {}, {}};
  if (v.spf_helo)
    spf.properties.emplace_back("smtp.helo", req.helo);
  else
    spf.properties.emplace_back("smtp.mailfrom", req.mail_from);
  h.results.push_back(std::move(spf));
  if (v.helo_spf)
    h.results.push_back({"spf", to_string(v.helo_spf->result), {}, {{"smtp.helo", req.helo}}});
  if (v.dkim.empty()) h.results.push_back({"dkim", "none", {}, {}});
  for (const auto& d : v.dkim) {
    AuthResult r{"dkim", to_string(d.result), d.reason, {}};
    if (!d.domain.empty()) r.properties.emplace_back("header.d", d.domain);
    if (!d.selector.empty()) r.properties.emplace_back("header.s", d.selector);
    if (!d.algorithm.empty()) r.properties.emplace_back("header.a", d.algorithm);
    if (!d.signature_prefix.empty()) r.properties.emplace_back("header.b", d.signature_prefix);
    h.results.push_back(std::move(r));
  }
  // The "arc" method RFC 8617 registers, with header.oldest-pass when it was determined.
  AuthResult arc{"arc", to_string(v.arc.result), v.arc.reason, {}};
  if (v.arc.result == ArcResult::pass && arc_options.oldest_pass)
    arc.properties.emplace_back("header.oldest-pass", std::to_string(v.arc.oldest_pass));
  h.results.push_back(std::move(arc));
  AuthResult dmarc{"dmarc", to_string(v.dmarc.result), {}, {}};
  if (v.dmarc.record)
    dmarc.reason = std::string("p=") + to_string(v.dmarc.record->policy) + " dis=" +
                   to_string(v.arc_override.empty() ? v.dmarc.applied : DmarcPolicy::none) +
                   (v.dmarc.sampled_out ? " (pct)" : "") +
                   (v.arc_override.empty() ? "" : " arc override from " + v.arc_override);
  if (!from_domain.empty()) dmarc.properties.emplace_back("header.from", from_domain);
  h.results.push_back(std::move(dmarc));
  return h;
}

void refuse(InboundVerdict& v, int code, const char* enhanced, std::string text) {
  v.action = code >= 500 ? InboundVerdict::Action::reject : InboundVerdict::Action::defer;
  v.code = code;
  v.enhanced = enhanced;
  v.text = std::move(text);
}

}  // namespace

std::optional<InboundVerdict> check_inbound(const InboundRequest& req,
                                            const InboundOptions& options, Lookups& lookups) {
  InboundVerdict v;
  auto from = author_domain(req.message);
  if (!from) {
    // RFC 7489 6.6.1: without exactly one author domain DMARC cannot be applied, and a message
    // that cannot be held to its author's policy is a way around it.
    refuse(v, 550, "5.7.1",
           "Message must have exactly one From address (" + from.error().detail() + ")");
    return v;
  }

  v.spf_helo = req.mail_from.empty();
  SpfRequest spf_req{req.ip, v.spf_helo ? "postmaster@" + req.helo : req.mail_from, req.helo,
                     req.receiver, req.now};
  v.spf_domain = spf_req.sender.substr(spf_req.sender.rfind('@') + 1);
  auto spf = check_spf(spf_req, lookups);
  bool check_helo =
      !v.spf_helo && req.helo.find('.') != std::string::npos && mime::valid_domain(req.helo, false);
  std::optional<SpfOutcome> helo_spf;
  if (check_helo)
    helo_spf =
        check_spf({req.ip, "postmaster@" + req.helo, req.helo, req.receiver, req.now}, lookups);
  DkimVerifyOptions dkim_options = options.dkim;
  dkim_options.now = req.now;
  auto dkim = verify_dkim(req.message, dkim_options, lookups);
  ArcVerifyOptions arc_options = options.arc;
  arc_options.min_rsa_bits = options.dkim.min_rsa_bits;
  arc_options.now = req.now;
  auto arc = verify_arc(req.message, arc_options, lookups);
  // Policy discovery needs neither SPF nor DKIM: running it now, with whatever they have so
  // far, asks for the _dmarc records in the same round as their first queries.
  DmarcRequest dreq{*from, spf.value_or(SpfOutcome{}), v.spf_domain,
                    dkim.value_or(std::vector<DkimOutcome>{}), req.sample};
  auto dmarc = check_dmarc(dreq, lookups);
  if (!spf || !dkim || !arc || !dmarc || (check_helo && !helo_spf)) return std::nullopt;
  dreq.spf = *spf;
  dreq.dkim = *dkim;
  dmarc = check_dmarc(dreq, lookups);
  if (!dmarc) return std::nullopt;
  v.spf = std::move(*spf);
  v.helo_spf = std::move(helo_spf);
  v.dkim = std::move(*dkim);
  v.dmarc = std::move(*dmarc);
  v.arc = std::move(*arc);

  bool forwarder = trusted(req.ip, options.trusted_forwarders);
  const DmarcOutcome& d = v.dmarc;
  bool temporary = v.spf.result == SpfResult::temperror;
  for (const auto& k : v.dkim) temporary = temporary || k.result == DkimResult::temperror;
  // A local policy override (RFC 7489 6.7): a forwarder that breaks SPF and DKIM can still
  // vouch for what it received through its ARC Set; only the newest sealer, and only if trusted.
  const ArcSet* sealer = trusted_newest_set(v.arc, options.arc_trusted_sealers);
  if (sealer && v.arc.temporary) temporary = true;  // its seal could not be checked yet
  bool arc_rescue =
      sealer && v.arc.result == ArcResult::pass && arc_results_pass(*sealer, *from, d);
  if (d.result == DmarcResult::temperror) {
    refuse(v, 451, "4.4.3", "Temporary DNS failure looking up the DMARC policy of " + *from);
  } else if (d.result == DmarcResult::fail && !forwarder && arc_rescue) {
    if (d.applied != DmarcPolicy::none) v.arc_override = sealer->sealer;
  } else if (d.result == DmarcResult::fail && !forwarder) {
    if (d.applied == DmarcPolicy::reject) {
      if (temporary)
        refuse(v, 451, "4.4.3", "Temporary DNS failure authenticating mail from " + *from);
      else
        refuse(v, 550, "5.7.1",
               "Unauthenticated mail from " + *from + " is refused by its DMARC policy");
    } else if (d.applied == DmarcPolicy::quarantine) {
      v.action = InboundVerdict::Action::junk;
    }
  } else if (d.result == DmarcResult::none && v.spf.result == SpfResult::fail &&
             options.reject_spf_fail && !forwarder && !aligned_dkim_pass(v.dkim, *from)) {
    // RFC 7208 8.4; with a DMARC policy present the policy decides instead (RFC 7489 10.1).
    std::string text = "SPF check failed for " + v.spf_domain;
    if (!v.spf.explanation.empty()) text += ": " + v.spf.explanation.substr(0, 200);
    refuse(v, 550, "5.7.23", std::move(text));
  }
  v.authentication_results = format_authentication_results(results_of(req, v, arc_options, *from));
  return v;
}

std::string remove_forged_results(std::string_view message, std::string_view authserv_id) {
  mime::HeaderLimits limits;
  limits.max_headers = 10000;
  limits.max_header_bytes = message.size();
  auto hs = mime::parse_header_section(message, limits);
  if (!hs) return std::string(message);
  std::string out;
  out.reserve(message.size());
  std::size_t copied = 0;
  for (const auto& h : hs->headers) {
    if (!base::iequals(h.name, "Authentication-Results")) continue;
    auto parsed = parse_authentication_results(h.raw_value);
    // An unparsable field still claims an id if its first word is ours.
    std::string id;
    if (parsed) {
      id = parsed->authserv_id;
    } else {
      std::string_view v = h.raw_value;
      while (!v.empty() &&
             (v.front() == ' ' || v.front() == '\t' || v.front() == '\r' || v.front() == '\n'))
        v.remove_prefix(1);
      id = v.substr(0, v.find_first_of(" \t\r\n;("));
    }
    if (!base::iequals(id, authserv_id)) continue;
    auto start = static_cast<std::size_t>(h.name.data() - message.data());
    auto end = static_cast<std::size_t>(h.raw_value.data() + h.raw_value.size() - message.data());
    if (end + 2 <= message.size() && message.substr(end, 2) == "\r\n") end += 2;
    out.append(message.substr(copied, start - copied));
    copied = end;
  }
  out.append(message.substr(copied));
  return out;
}

}  // namespace postern::mailauth
