// Feeds arbitrary bytes to the DNS record-data parsers (names, MX, TXT, TLSA, addresses).
// Checks: no crash or sanitizer report; parsed names are lower case and within 253 bytes.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "dns/dns.hpp"

using namespace postern::dns;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::size_t pos = 0;
  if (auto name = parse_name(in, pos)) {
    if (name->size() > 253 || pos > in.size()) std::abort();
    for (char c : *name)
      if (c >= 'A' && c <= 'Z') std::abort();
  }
  if (auto mx = parse_mx(in); mx && mx->exchange.size() > 253) std::abort();
  if (auto txt = parse_txt(in); txt && txt->size() > in.size()) std::abort();
  (void)parse_tlsa(in);
  (void)parse_address(Type::a, in);
  (void)parse_address(Type::aaaa, in);
  return 0;
}
