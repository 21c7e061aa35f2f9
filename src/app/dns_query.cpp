// `postern dns NAME TYPE`: one lookup through postern's own resolver, with its DNSSEC status;
// what delivery will see, for operators and for the DNS-world tests.
#include <algorithm>
#include <ostream>

#include "app/app.hpp"
#include "dns/dns.hpp"
#include "net/net.hpp"

namespace postern::app {
namespace {

std::string hex(std::string_view bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

}  // namespace

int dns_query(const DnsQueryOptions& q, std::ostream& out, std::ostream& err) {
  static const std::vector<std::pair<std::string, dns::Type>> types = {
      {"A", dns::Type::a},        {"AAAA", dns::Type::aaaa}, {"MX", dns::Type::mx},
      {"TXT", dns::Type::txt},    {"TLSA", dns::Type::tlsa}, {"PTR", dns::Type::ptr},
      {"CNAME", dns::Type::cname}};
  auto it =
      std::find_if(types.begin(), types.end(), [&](const auto& t) { return t.first == q.type; });
  if (it == types.end()) {
    err << "postern dns: unknown type " << q.type << "\n";
    return exit_usage;
  }
  dns::ResolverOptions o;
  o.trust_anchor_file = q.trust_anchor;
  o.forwarders = q.forwarders;
  o.config_file = q.unbound_config;
  o.unblock_zones = q.unblock_zones;
  for (const auto& opt : q.options) {
    auto colon = opt.find(':');
    if (colon == std::string::npos) {
      err << "postern dns: --option needs name:value\n";
      return exit_usage;
    }
    o.options.emplace_back(opt.substr(0, colon + 1), opt.substr(colon + 1));
  }
  auto resolver = dns::Resolver::create(o);
  if (!resolver) {
    err << "postern dns: " << resolver.error().describe() << "\n";
    return exit_failure;
  }
  auto a = (*resolver)->resolve(q.name, it->second);
  if (!a) {
    err << "postern dns: " << a.error().describe() << "\n";
    return exit_failure;
  }
  out << "rcode=" << a->rcode << " security=" << dns::to_string(a->security)
      << " records=" << a->rdata.size();
  if (!a->why_bogus.empty()) out << " why=\"" << a->why_bogus << "\"";
  out << "\n";
  for (const auto& rd : a->rdata) {
    switch (it->second) {
      case dns::Type::mx: {
        auto mx = dns::parse_mx(rd);
        // The null MX (RFC 7505) has the root as exchange.
        out << (mx ? "MX " + std::to_string(mx->preference) + " " +
                         (mx->exchange.empty() ? "." : mx->exchange)
                   : "malformed");
        break;
      }
      case dns::Type::txt: {
        auto t = dns::parse_txt(rd);
        out << (t ? "TXT " + *t : "malformed");
        break;
      }
      case dns::Type::tlsa: {
        auto t = dns::parse_tlsa(rd);
        out << (t ? "TLSA " + std::to_string(t->usage) + " " + std::to_string(t->selector) + " " +
                        std::to_string(t->matching) + " " + hex(t->data)
                  : "malformed");
        break;
      }
      case dns::Type::a:
      case dns::Type::aaaa: {
        auto addr = dns::parse_address(it->second, rd);
        out << (addr ? q.type + " " + *addr : "malformed");
        break;
      }
      default: {
        std::size_t pos = 0;
        auto n = dns::parse_name(rd, pos);
        out << (n ? q.type + " " + *n : "malformed");
      }
    }
    out << "\n";
  }
  return a->rcode == 0 ? exit_ok : exit_not_found;
}

}  // namespace postern::app
