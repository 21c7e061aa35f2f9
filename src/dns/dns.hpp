// DNS lookups with their DNSSEC status, on libunbound (validating, with a configurable trust
// anchor and forwarders, so tests can point it at tests/world's signed zones), and parsers
// for the record data postern reads (MX, A/AAAA, TXT, TLSA, names).
//
// Security: answers come from the network; every parser is bounded by the RDATA it is given
// and rejects anything malformed.
#pragma once

#include "base/error.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace postern::dns {

enum class Errc { setup = 1, resolve, malformed };
const std::error_category& category();
inline std::error_code make_error_code(Errc e) {
  return {static_cast<int>(e), category()};
}

enum class Security { secure, insecure, bogus, indeterminate };
const char* to_string(Security s);

enum class Type : uint16_t { a = 1, cname = 5, ptr = 12, mx = 15, txt = 16, aaaa = 28, tlsa = 52 };

struct Answer {
  int rcode = 0;  // 0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN
  bool nxdomain = false;
  Security security = Security::indeterminate;
  std::string why_bogus;
  uint32_t ttl = 0;
  std::string canonical_name;      // after CNAMEs
  std::vector<std::string> rdata;  // wire format, one per record
};

struct ResolverOptions {
  std::string config_file;              // an unbound.conf to read first (tests/world writes one)
  std::string trust_anchor_file;        // DS or DNSKEY records; empty: nothing is secure
  std::vector<std::string> forwarders;  // "127.0.0.1@5353"; empty: recursion from the roots
  // unbound options, "name:" -> value (e.g. {"do-not-query-localhost:", "no"}).
  std::vector<std::pair<std::string, std::string>> options;
  // Special-use zones unbound answers itself (RFC 6761: test., invalid., ...) to look up
  // like any other; the test world lives under test.
  std::vector<std::string> unblock_zones;
};

class Resolver {
 public:
  static Result<std::unique_ptr<Resolver>> create(const ResolverOptions& options);
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;
  // Blocking; may be called from several threads at once.
  Result<Answer> resolve(std::string_view name, Type type);

  // Asynchronous use from an event loop: start lookups, wait until fd() is readable, then call
  // process(), which runs the callbacks of the lookups that finished (on its own thread).
  using Callback = std::function<void(Result<Answer>)>;
  Result<void> resolve_async(std::string_view name, Type type, Callback done);
  int fd() const;
  Result<void> process();

 private:
  Resolver() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// RDATA parsers.
struct Mx {
  uint16_t preference = 0;
  std::string exchange;  // lower case, no final dot; "" for the null MX (RFC 7505)
};
Result<Mx> parse_mx(std::string_view rdata);
Result<std::string> parse_txt(std::string_view rdata);  // character-strings concatenated
// The inverse: `text` as TXT rdata, in 255-byte character-strings (tests, fixed key records).
std::string make_txt_rdata(std::string_view text);
struct Tlsa {
  uint8_t usage = 0, selector = 0, matching = 0;
  std::string data;
};
Result<Tlsa> parse_tlsa(std::string_view rdata);
Result<std::string> parse_address(Type type, std::string_view rdata);  // A/AAAA as text
// An uncompressed domain name at `pos` in `wire`; `pos` moves past it.
Result<std::string> parse_name(std::string_view wire, std::size_t& pos);

}  // namespace postern::dns

template <>
struct std::is_error_code_enum<postern::dns::Errc> : std::true_type {};
