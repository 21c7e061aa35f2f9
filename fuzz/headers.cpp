// Header sections, MIME structure and the serialised summary: offsets stay inside the input,
// parse(serialize()) round-trips, and arbitrary bytes never crash Summary::parse.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "mime/mime.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace postern::mime;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  HeaderLimits limits;
  limits.max_headers = 64;
  limits.max_header_bytes = 1024;
  auto hs = parse_header_section(in, limits);
  if (hs) {
    if (hs->body_offset > in.size()) std::abort();
    for (const auto& h : hs->headers) {
      if (h.name.data() < in.data() ||
          h.raw_value.data() + h.raw_value.size() > in.data() + in.size())
        std::abort();
      (void)unfold(h.raw_value);
    }
    auto s = summarize(in, limits);
    if (!s) std::abort();
    for (const auto& p : s->parts)
      if (p.body_offset > in.size() || p.body_size > in.size() - p.body_offset) std::abort();
    auto back = Summary::parse(s->serialize());
    if (!back || back->header_section != s->header_section || back->size != s->size ||
        back->parts.size() != s->parts.size())
      std::abort();
  }
  (void)Summary::parse(in);
  return 0;
}
