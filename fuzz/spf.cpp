// Feeds arbitrary bytes to the SPF record parser, and to whole evaluations in which every TXT
// answer is the input (so include, redirect and exp= recurse into it) while the other answers
// mix usable records, garbage RDATA, NXDOMAIN, SERVFAIL and lookup errors.
// Checks: no crash or sanitizer report; parsed CIDR lengths are in range; the replay loop ends
// (every nullopt notes a query, a result notes none) within a bounded number of rounds; the
// outcome's strings stay bounded and printable.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mailauth/mailauth.hpp"

using namespace postern;
using namespace postern::mailauth;

namespace {

Result<dns::Answer> answer(const Query& q, std::string_view in) {
  dns::Answer a;
  if (q.type == dns::Type::txt) {
    a.rdata = {dns::make_txt_rdata(in)};
    return a;
  }
  // Vary the other answers by name, so one input meets several kinds.
  switch ((q.name.size() + in.size()) % 5) {
    case 0:
      a.rcode = 3;
      a.nxdomain = true;
      return a;
    case 1:
      a.rcode = 2;
      return a;
    case 2:
      return Error(dns::Errc::resolve, "timed out");
    default:
      break;
  }
  std::string raw(in.substr(0, 64));
  switch (q.type) {
    case dns::Type::a:
      a.rdata = {std::string("\xc0\x00\x02\x01", 4), raw};
      break;
    case dns::Type::aaaa:
      a.rdata = {std::string("\x20\x01\x0d\xb8", 4) + std::string(11, '\0') + '\x01', raw};
      break;
    case dns::Type::mx:
      a.rdata = {std::string("\x00\x0a\x04mail\x07"
                             "example\x00",
                             16),
                 raw};
      break;
    case dns::Type::ptr:
      a.rdata = {std::string("\x04mail\x07"
                             "example\x00",
                             14),
                 raw};
      break;
    default:
      break;
  }
  return a;
}

bool printable(const std::string& s) {
  for (char c : s)
    if (c < 0x20 || c > 0x7e) return false;
  return true;
}

void evaluate(std::string_view in, const char* ip) {
  // The input also supplies the local-part, for the macros that expand it.
  SpfRequest req{ip, std::string(in.substr(0, 40)) + "@example.com", "helo.example",
                 "mx.receiver.example", 1400000000};
  Lookups lookups;
  for (int round = 0; round < 200; ++round) {
    auto out = check_spf(req, lookups);
    auto missing = lookups.take_missing();
    if (out) {
      if (!missing.empty()) std::abort();
      if (out->explanation.size() > 512 || !printable(out->explanation)) std::abort();
      if (out->domain.size() > 300 || out->mechanism.empty()) std::abort();
      return;
    }
    if (missing.empty()) std::abort();
    for (const auto& q : missing) lookups.add(q, answer(q, in));
  }
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (auto terms = parse_spf(in)) {
    for (const auto& t : *terms)
      if (t.cidr4 < -1 || t.cidr4 > 32 || t.cidr6 < -1 || t.cidr6 > 128) std::abort();
  }
  evaluate(in, "192.0.2.1");
  evaluate(in, "2001:db8::1");
  (void)in_network(in, "192.0.2.0/24");
  (void)in_network("2001:db8::1", in);
  return 0;
}
