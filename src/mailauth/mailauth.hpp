// Message authentication: DKIM signing and verification (RFC 6376, RFC 8463), SPF (RFC 7208),
// DMARC (RFC 7489), ARC (RFC 8617) and Authentication-Results (RFC 8601).
//
// The checks are pure: no sockets, no clock reads. Each is a function of its input and of the
// DNS answers in a `Lookups`; when it needs an answer that is not there yet it notes the query
// and returns nullopt, the caller resolves every noted query (in parallel) and calls it again.
// Re-running is cheap (the expensive hashing happens only once every key is known) and keeps
// each check a plain function instead of a hand-written state machine.
//
// Security: messages and DNS answers are hostile input; canonicalisation is total and linear
// in the input, every parser is bounded, and the number of lookups a message can cause is
// capped (SPF's 10 + 2 void lookups, a fixed number of DKIM signatures, two DMARC queries,
// the keys of at most 50 ARC instances).
// Signing keys are SecretBytes and never leave this module except as signatures.
#pragma once

#include "base/error.hpp"
#include "crypto/crypto.hpp"
#include "dns/dns.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace postern::mailauth {

enum class Errc { bad_key = 1, bad_message, syntax };
const std::error_category& category();
inline std::error_code make_error_code(Errc e) {
  return {static_cast<int>(e), category()};
}

// RFC 6376 3.4.2: one header field, relaxed ("name:value\r\n").
std::string relaxed_header(std::string_view name, std::string_view raw_value);
// RFC 6376 3.4.4 (relaxed) and 3.4.3 (simple) body canonicalisation.
std::string relaxed_body(std::string_view body);
std::string simple_body(std::string_view body);

enum class DkimAlgorithm { ed25519_sha256, rsa_sha256 };

struct DkimKey {
  DkimAlgorithm algorithm = DkimAlgorithm::ed25519_sha256;
  std::string domain;
  std::string selector;
  crypto::SecretBytes secret;  // Ed25519: libsodium's 64 bytes; RSA: PKCS#8 DER
  std::string public_key;      // Ed25519: 32 bytes; RSA: SubjectPublicKeyInfo DER
};
Result<DkimKey> make_dkim_key(DkimAlgorithm algorithm, std::string domain, std::string selector);
// The TXT record to publish at <selector>._domainkey.<domain>.
std::string dkim_record(const DkimKey& key);

struct DkimOptions {
  // Signed in every occurrence when present.
  std::vector<std::string> headers = {"from",
                                      "to",
                                      "cc",
                                      "subject",
                                      "date",
                                      "message-id",
                                      "reply-to",
                                      "in-reply-to",
                                      "references",
                                      "mime-version",
                                      "content-type",
                                      "content-transfer-encoding",
                                      "content-disposition",
                                      "sender",
                                      "list-id",
                                      "list-unsubscribe",
                                      "list-unsubscribe-post",
                                      "autocrypt"};
  // Signed once more than they occur, so that none can be added after signing.
  std::vector<std::string> oversign = {"from", "to", "subject", "date", "message-id"};
  int64_t timestamp = 0;  // t=; 0 leaves it out
};

// The DKIM-Signature header field (folded, CRLF-terminated) to prepend to `message`
// (CRLF line ends), relaxed/relaxed.
Result<std::string> dkim_sign(std::string_view message, const DkimKey& key,
                              const DkimOptions& options);

// ---------------------------------------------------------------------------------------------
// DNS answers for the checks

struct Query {
  std::string name;  // lower case, no final dot
  dns::Type type = dns::Type::txt;
  bool operator<(const Query& o) const { return std::tie(name, type) < std::tie(o.name, o.type); }
  bool operator==(const Query& o) const { return name == o.name && type == o.type; }
};

class Lookups {
 public:
  // The answer to (name, type), or nullptr when it is not known yet: the query is then noted.
  const Result<dns::Answer>* get(std::string_view name, dns::Type type);
  // A DNSSEC-bogus answer is stored as a failed lookup.
  void add(const Query& query, Result<dns::Answer> answer);
  // The queries noted since the last call, each once.
  std::vector<Query> take_missing();

 private:
  std::map<Query, Result<dns::Answer>> answers_;
  std::set<Query> missing_;
};

// The TXT records of an answer (character-strings joined), skipping malformed ones.
std::vector<std::string> txt_records(const dns::Answer& answer);

// ---------------------------------------------------------------------------------------------
// SPF (RFC 7208)

enum class SpfResult { none, neutral, pass, fail, softfail, temperror, permerror };
const char* to_string(SpfResult r);

struct SpfRequest {
  std::string ip;        // the client, "192.0.2.1" or "2001:db8::1"
  std::string sender;    // "local@domain"; for the HELO identity "postmaster@<helo>"
  std::string helo;      // as the client gave it (%{h})
  std::string receiver;  // our host name (%{r})
  int64_t now = 0;       // %{t}
};

struct SpfOutcome {
  SpfResult result = SpfResult::none;
  std::string domain;       // the domain whose policy decided (after include/redirect)
  std::string mechanism;    // the mechanism that matched, or why there was no match
  std::string explanation;  // exp= text for a fail, expanded; empty otherwise
};

// The SPF result for the sender's domain; nullopt while answers are missing.
std::optional<SpfOutcome> check_spf(const SpfRequest& request, Lookups& lookups);

// The terms of one SPF record, for the evaluator and the fuzz target.
struct SpfTerm {
  enum class Kind { all, include, a, mx, ptr, ip4, ip6, exists, redirect, exp, unknown_modifier };
  Kind kind = Kind::all;
  char qualifier = '+';        // + - ~ ?
  std::string domain_spec;     // unexpanded macro-string, empty when absent
  std::string address;         // ip4/ip6 network, as text
  int cidr4 = -1, cidr6 = -1;  // -1: absent
};
Result<std::vector<SpfTerm>> parse_spf(std::string_view record);

// ---------------------------------------------------------------------------------------------
// DKIM verification (RFC 6376 6, RFC 8463)

// A tag=value list (RFC 6376 3.2); names and values with folding white space removed around
// them. Fails on a syntax error or a repeated tag.
Result<std::vector<std::pair<std::string, std::string>>> parse_tag_list(std::string_view text);

enum class DkimResult { none, pass, fail, neutral, policy, temperror, permerror };
const char* to_string(DkimResult r);

struct DkimOutcome {
  DkimResult result = DkimResult::none;
  std::string domain;            // d=
  std::string selector;          // s=
  std::string identity;          // i= (default "@" + d=)
  std::string algorithm;         // a=
  std::string signature_prefix;  // the first characters of b= (RFC 6008 header.b)
  bool testing = false;          // the key has t=y
  std::string reason;            // why it did not pass
};

struct DkimVerifyOptions {
  std::size_t max_signatures = 5;  // more are reported as policy, not verified
  unsigned min_rsa_bits = 1024;
  // l= that leaves body content unsigned: verified when true, otherwise reported as policy
  // (content could be appended after the signed part).
  bool accept_partial_body = false;
  int64_t now = 0;  // for x=
};

// One outcome per DKIM-Signature field (in message order), empty when there is none; nullopt
// while key records are missing.
std::optional<std::vector<DkimOutcome>> verify_dkim(std::string_view message,
                                                    const DkimVerifyOptions& options,
                                                    Lookups& lookups);

// ---------------------------------------------------------------------------------------------
// ARC (RFC 8617)

enum class ArcResult { none, pass, fail };
const char* to_string(ArcResult r);

// One ARC Set (instance) of a chain whose structure is valid.
struct ArcSet {
  int instance = 0;
  std::string sealer;      // d= of the ARC-Seal
  std::string selector;    // s= of the ARC-Seal
  std::string ams_domain;  // d= of the ARC-Message-Signature
  // The ARC-Authentication-Results after "i=N;", unfolded: "authserv-id; spf=pass ...".
  std::string aar_payload;
};

struct ArcOutcome {
  ArcResult result = ArcResult::none;
  int instances = 0;   // N: the highest instance, 0 without ARC fields
  std::string reason;  // why it did not pass
  // The chain failed only because a key lookup failed (SERVFAIL, DNSSEC bogus): ARC has no
  // temperror (RFC 8617 5.2.1: all failures are permanent), but a retry could pass.
  bool temporary = false;
  // RFC 8617 5.2 step 5 (header.oldest-pass), when asked for and the chain passes: the lowest
  // instance from which every AMS up to N still validates, 0 when all of them do.
  int oldest_pass = 0;
  std::vector<ArcSet> sets;  // sets[k] is instance k + 1; empty unless the structure is valid
  // The set of instance i (1..N), or nullptr.
  const ArcSet* set(int i) const {
    return i >= 1 && i <= static_cast<int>(sets.size()) ? &sets[i - 1] : nullptr;
  }
};

struct ArcVerifyOptions {
  unsigned min_rsa_bits = 1024;
  int64_t now = 0;  // for x= of the AMS
  // Also validate the older AMSes for oldest_pass: more hashing and up to N more key lookups.
  bool oldest_pass = false;
};

// RFC 8617 5.2: the ARC chain's validation status; nullopt while key records are missing (all
// keys are asked for in one round).
std::optional<ArcOutcome> verify_arc(std::string_view message, const ArcVerifyOptions& options,
                                     Lookups& lookups);

// RFC 8617 5.1: the ARC Set of the next instance (ARC-Seal, ARC-Message-Signature and
// ARC-Authentication-Results, folded, CRLF-terminated) to prepend to `message`. `chain` is the
// cv= to record, what verify_arc said about the message as received (none only when it has no
// ARC fields). `authentication_results` is our result list without the authserv-id
// ("spf=pass smtp.mailfrom=...; dkim=..."), empty for none. `timestamp` is t=, 0 leaves it
// out. The AMS covers DkimOptions' header list plus DKIM-Signature, relaxed/relaxed.
Result<std::string> arc_seal(std::string_view message, const DkimKey& key,
                             std::string_view authserv_id, std::string_view authentication_results,
                             ArcResult chain, int64_t timestamp);

// ---------------------------------------------------------------------------------------------
// DMARC (RFC 7489)

enum class DmarcPolicy { none, quarantine, reject };
const char* to_string(DmarcPolicy p);

struct DmarcRecord {
  DmarcPolicy policy = DmarcPolicy::none;
  std::optional<DmarcPolicy> subdomain_policy;  // sp=
  bool strict_dkim = false;                     // adkim=s
  bool strict_spf = false;                      // aspf=s
  int percent = 100;                            // pct=
  std::vector<std::string> rua, ruf;
  uint32_t report_interval = 86400;  // ri=
};
Result<DmarcRecord> parse_dmarc(std::string_view record);

// The organisational domain (RFC 7489 3.2) from the public suffix list (libpsl).
std::string organizational_domain(std::string_view domain);

// The RFC 5322.From domain: exactly one From field with exactly one address that has a
// domain; anything else is an error whose detail says what was wrong.
Result<std::string> author_domain(std::string_view message);

enum class DmarcResult { none, pass, fail, temperror, permerror };
const char* to_string(DmarcResult r);

struct DmarcOutcome {
  DmarcResult result = DmarcResult::none;
  std::string from_domain;
  std::string policy_domain;  // where the record was found
  std::optional<DmarcRecord> record;
  DmarcPolicy applied = DmarcPolicy::none;  // what to do: the policy after sp= and pct=
  bool sampled_out = false;                 // pct= excluded this message
  bool dkim_aligned = false, spf_aligned = false;
};

struct DmarcRequest {
  std::string from_domain;
  SpfOutcome spf;
  std::string spf_domain;  // the domain SPF checked (MAIL FROM, or HELO for the null sender)
  std::vector<DkimOutcome> dkim;
  unsigned sample = 0;  // 0..99, random per message, compared with pct=
};

std::optional<DmarcOutcome> check_dmarc(const DmarcRequest& request, Lookups& lookups);

// ---------------------------------------------------------------------------------------------
// DMARC aggregate reports (RFC 7489 7.2)

// One checked message as aggregate reports need it (recorded per message, aggregated later).
struct DmarcEvent {
  int64_t time = 0;
  std::string policy_domain, header_from, envelope_from, source_ip;
  DmarcRecord policy;
  DmarcPolicy disposition = DmarcPolicy::none;  // what was done: none, quarantine (Junk), reject
  bool dkim_aligned = false, spf_aligned = false;
  std::vector<std::string> overrides;  // RFC 7489 PolicyOverrideType: sampled_out, ...
  struct Dkim {
    std::string domain, selector, result;
  };
  std::vector<Dkim> dkim;
  std::string spf_domain, spf_scope = "mfrom", spf_result = "none";
  std::string serialize() const;
  static Result<DmarcEvent> parse(std::string_view text);
};

struct DmarcReport {
  std::string org_name, email, report_id;
  int64_t begin = 0, end = 0;
  std::string policy_domain;
  DmarcRecord policy;
  struct Row {
    DmarcEvent event;  // everything but time: the rows group equal events
    uint64_t count = 0;
  };
  std::vector<Row> rows;
};

// Reports per policy domain over `events`, rows grouping equal results from one source IP.
std::vector<DmarcReport> aggregate_dmarc_events(const std::vector<DmarcEvent>& events,
                                                const std::string& org_name,
                                                const std::string& email, int64_t begin,
                                                int64_t end);
// The XML document (RFC 7489 Appendix C, no namespace, as reports are sent in practice).
std::string format_dmarc_report(const DmarcReport& report);
// A received report; bounded (records, sizes), no DTD, no network, no entities.
Result<DmarcReport> parse_dmarc_report(std::string_view xml);
// RFC 7489 7.1: where `policy_domain`'s reports may go to `rua_domain` only if
// "<policy_domain>._report._dmarc.<rua_domain>" has a v=DMARC1 TXT record; empty when both
// are in one organisational domain and no check is needed.
std::string report_authorization_name(std::string_view policy_domain, std::string_view rua_domain);

// ---------------------------------------------------------------------------------------------
// Authentication-Results (RFC 8601)

struct AuthResult {
  std::string method;  // "spf", "dkim", ...
  std::string result;  // "pass", ...
  std::string reason;
  std::vector<std::pair<std::string, std::string>> properties;  // "smtp.mailfrom" -> value
};
struct AuthResultsHeader {
  std::string authserv_id;
  std::vector<AuthResult> results;  // empty for "none"
};
Result<AuthResultsHeader> parse_authentication_results(std::string_view value);
// The header field, folded, CRLF-terminated.
std::string format_authentication_results(const AuthResultsHeader& header);

// ---------------------------------------------------------------------------------------------
// The inbound decision: SPF, DKIM and DMARC together

struct InboundRequest {
  std::string ip, helo, mail_from;  // mail_from empty for the null sender
  std::string receiver;             // our host name, also the authserv-id
  std::string_view message;         // as received
  int64_t now = 0;
  unsigned sample = 0;  // 0..99
};

struct InboundOptions {
  DkimVerifyOptions dkim;
  // Client networks ("192.0.2.0/24", "2001:db8::/32") whose mail is not refused for DMARC
  // (forwarders and mailing lists the operator trusts); the results are still recorded.
  std::vector<std::string> trusted_forwarders;
  // Without a DMARC policy, refuse SPF fail (RFC 7208 8.4) instead of filing it as junk.
  bool reject_spf_fail = true;
  // ARC sealer domains (d= of the ARC-Seal) trusted to report authentication results: mail
  // failing DMARC is delivered when its chain passes, the newest seal is by one of these and
  // that seal's ARC-Authentication-Results show an aligned pass for the From domain.
  std::vector<std::string> arc_trusted_sealers;
  ArcVerifyOptions arc;  // min_rsa_bits and now are taken from `dkim` and the request
};

struct InboundVerdict {
  enum class Action { deliver, junk, reject, defer };
  Action action = Action::deliver;
  int code = 250;
  std::string enhanced, text;  // the SMTP reply for reject and defer
  SpfOutcome spf;
  bool spf_helo = false;  // the null sender: SPF checked postmaster@<helo>
  // Otherwise the HELO identity on its own (RFC 7208 2.3), when it is a domain: recorded in
  // Authentication-Results, not enforced.
  std::optional<SpfOutcome> helo_spf;
  std::string spf_domain;
  std::vector<DkimOutcome> dkim;
  DmarcOutcome dmarc;
  ArcOutcome arc;
  // The trusted sealer whose chain lifted a failing DMARC policy (the message was delivered,
  // disposition none), empty otherwise.
  std::string arc_override;
  std::string authentication_results;  // the field to prepend
};

std::optional<InboundVerdict> check_inbound(const InboundRequest& request,
                                            const InboundOptions& options, Lookups& lookups);

// What aggregate reports record of a checked message; nullopt when no DMARC record applied.
std::optional<DmarcEvent> dmarc_event(const InboundRequest& request, const InboundVerdict& verdict);

// `message` without the Authentication-Results fields that claim `authserv_id` (RFC 8601 5),
// which only this server may write.
std::string remove_forged_results(std::string_view message, std::string_view authserv_id);

// Whether `ip` is inside `network` ("192.0.2.0/24", "2001:db8::/32", or a bare address).
bool in_network(std::string_view ip, std::string_view network);

}  // namespace postern::mailauth

template <>
struct std::is_error_code_enum<postern::mailauth::Errc> : std::true_type {};
