// RFC 5322 2.2 header fields and 2.2.3 folding.
#include "mime/mime.hpp"

#include <strings.h>

#include <cstring>

namespace postern::mime {

const Header* HeaderSection::find(std::string_view name) const {
  for (const auto& h : headers)
    if (h.name.size() == name.size() && strncasecmp(h.name.data(), name.data(), name.size()) == 0)
      return &h;
  return nullptr;
}

std::string unfold(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\r' && i + 1 < raw.size() && raw[i + 1] == '\n') {
      ++i;
      continue;
    }
    out += raw[i];
  }
  auto b = out.find_first_not_of(" \t");
  auto e = out.find_last_not_of(" \t");
  return b == std::string::npos ? std::string() : out.substr(b, e - b + 1);
}

Result<HeaderSection> parse_header_section(std::string_view msg, const HeaderLimits& limits) {
  HeaderSection hs;
  std::size_t pos = 0;
  while (pos < msg.size()) {
    auto eol = msg.find("\r\n", pos);
    std::size_t line_end = eol == std::string_view::npos ? msg.size() : eol;
    if (line_end == pos) {  // the empty line separating header and body
      hs.body_offset = eol == std::string_view::npos ? msg.size() : eol + 2;
      return hs;
    }
    char first = msg[pos];
    if (first == ' ' || first == '\t') {
      // A continuation with no field before it: not a header section (RFC 5322 has none),
      // so treat the rest as body, as other MTAs do.
      if (hs.headers.empty()) break;
    }
    auto colon = msg.substr(pos, line_end - pos).find(':');
    bool valid_name = colon != std::string_view::npos && colon > 0;
    if (valid_name)
      for (std::size_t k = 0; k < colon; ++k) {
        auto c = static_cast<unsigned char>(msg[pos + k]);
        if (c < 33 || c > 126) valid_name = false;
      }
    if (!valid_name) break;  // the body begins without the empty line
    // Collect folded continuation lines.
    std::size_t field_end = line_end;
    while (field_end + 2 < msg.size() && field_end < msg.size() &&
           (msg[field_end + 2] == ' ' || msg[field_end + 2] == '\t')) {
      auto next = msg.find("\r\n", field_end + 2);
      field_end = next == std::string_view::npos ? msg.size() : next;
      if (field_end - pos > limits.max_header_bytes) return Error(Errc::header_too_long);
    }
    if (field_end - pos > limits.max_header_bytes) return Error(Errc::header_too_long);
    if (hs.headers.size() >= limits.max_headers) return Error(Errc::too_many_headers);
    hs.headers.push_back(
        Header{msg.substr(pos, colon), msg.substr(pos + colon + 1, field_end - pos - colon - 1)});
    pos = field_end == msg.size() ? msg.size() : field_end + 2;
  }
  hs.body_offset = pos;
  return hs;
}

}  // namespace postern::mime
