// DMARC aggregate reports over hostile input: the XML parser (libxml2 underneath), gunzip
// with its bound, and a format/parse round trip of what was accepted.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "base/gzip.hpp"
#include "mailauth/mailauth.hpp"

using namespace postern;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (auto inflated = base::gunzip(in, 1 << 20); inflated && inflated->size() > (1 << 20))
    std::abort();
  auto r = mailauth::parse_dmarc_report(in);
  if (!r) return 0;
  auto again = mailauth::parse_dmarc_report(mailauth::format_dmarc_report(*r));
  if (!again || again->rows.size() != r->rows.size()) std::abort();
  for (std::size_t i = 0; i < r->rows.size(); ++i)
    if (again->rows[i].count != r->rows[i].count) std::abort();
  return 0;
}
