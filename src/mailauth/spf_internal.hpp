// The parts of the SPF evaluator (RFC 7208) that are worth testing on their own: client
// addresses, macro expansion and the domain-spec rules. Not part of the module's interface.
#pragma once

#include "mailauth/mailauth.hpp"

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace postern::mailauth::spf {

// An IPv4 address uses the first 4 bytes.
struct Ip {
  bool v6 = false;
  std::array<unsigned char, 16> bytes{};
};

// A bare address (no brackets, no zone index). With `map_v4`, an IPv4-mapped IPv6 address
// becomes the IPv4 address, as RFC 7208 5 requires for the client.
std::optional<Ip> parse_ip(std::string_view text, bool map_v4 = true);
// Whether `a` and `b` are of one family and agree in their first `bits` bits.
bool same_prefix(const Ip& a, const Ip& b, int bits);
std::string ip_text(const Ip& ip);       // %{c}: "192.0.2.3", "2001:db8::cb01"
std::string ip_dotted(const Ip& ip);     // %{i}: "192.0.2.3", "2.0.0.1.0.d.b.8...."
std::string reverse_name(const Ip& ip);  // "3.2.0.192.in-addr.arpa", "...ip6.arpa"

// The values the macro letters stand for (RFC 7208 7.2).
struct MacroValues {
  std::string sender;         // s: local-part "@" domain
  std::string local_part;     // l
  std::string sender_domain;  // o
  std::string domain;         // d: the domain being checked
  std::string ip_dotted;      // i
  std::string validated;      // p: filled in by the evaluator when a string uses it
  std::string ip_version;     // v: "in-addr" or "ip6"
  std::string helo;           // h
  std::string ip_text;        // c
  std::string receiver;       // r
  std::string timestamp;      // t
};

// Where a macro-string appears: c, r and t are allowed only in explanation text (RFC 7208
// 7.1), and only explanation text may contain spaces.
enum class MacroUse { domain, explanation, modifier };

// The macro-string expanded (RFC 7208 7). Syntax errors are errors; so is a result longer
// than a bound far above any usable name or explanation.
Result<std::string> expand_macros(std::string_view text, const MacroValues& values, MacroUse use);
// Whether `text` has a macro-expand with `letter` (lower case).
bool uses_macro(std::string_view text, char letter);
// RFC 7208 7.1 domain-spec: a valid macro-string that ends in a macro-expand or in
// "." toplabel ["."].
Result<void> check_domain_spec(std::string_view spec);

// An expanded name made fit for a query: the final dot dropped, then whole labels removed
// from the left until it is at most 253 bytes (RFC 7208 7.3).
std::string truncate_domain(std::string_view expanded);
// Whether `name` can be looked up: labels of 1 to 63 bytes, at most 253 in all, printable
// ASCII without backslash (the resolver's escape character), not an address literal. A final
// dot is allowed. Macros can put spaces in a target name (%_), which DNS allows; the domain
// whose policy is checked (`multi_label`) must be a plain multi-label name (RFC 7208 4.3).
bool valid_domain(std::string_view name, bool multi_label);

// "v=spf1" (in any case) followed by a space or the end of the record (RFC 7208 4.5).
bool is_spf_record(std::string_view txt);
// The term as a Received-SPF or log "mechanism": "ip4:192.0.2.0/24", "mx//64", "all".
std::string term_text(const SpfTerm& term);

}  // namespace postern::mailauth::spf
