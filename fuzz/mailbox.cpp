// RFC 5321 mailbox parsing, with and without SMTPUTF8. A parsed address must re-serialise to
// something that parses to the same lookup key.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "mime/mime.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  for (bool utf8 : {false, true}) {
    auto mb = postern::mime::parse_mailbox(in, utf8);
    if (!mb) continue;
    if (mb->local.size() > postern::mime::max_local_part_bytes) std::abort();
    if (!utf8 && mb->utf8) std::abort();
    auto again = postern::mime::parse_mailbox(mb->str(), utf8);
    if (!again || again->lookup_key() != mb->lookup_key()) std::abort();
  }
  (void)postern::mime::valid_domain(in, true);
  return 0;
}
