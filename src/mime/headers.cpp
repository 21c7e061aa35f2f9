// RFC 5322 2.2 header fields and 2.2.3 folding; the encrypted per-message summary.
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

namespace {
void put_u64(std::string& out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out += static_cast<char>((v >> (i * 8)) & 0xff);
}
uint64_t get_u64(std::string_view in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(in[i]);
  return v;
}
constexpr std::string_view summary_tag = "PSUM1";
}  // namespace

std::string Summary::serialize() const {
  std::string out(summary_tag);
  put_u64(out, size);
  put_u64(out, body_offset);
  put_u64(out, body_lines);
  put_u64(out, header_section.size());
  out += header_section;
  return out;
}

Result<Summary> Summary::parse(std::string_view in) {
  constexpr std::size_t fixed = summary_tag.size() + 32;
  if (in.size() < fixed || in.substr(0, summary_tag.size()) != summary_tag)
    return Error(Errc::syntax, "summary");
  Summary s;
  in.remove_prefix(summary_tag.size());
  s.size = get_u64(in);
  s.body_offset = get_u64(in.substr(8));
  s.body_lines = get_u64(in.substr(16));
  uint64_t hlen = get_u64(in.substr(24));
  in.remove_prefix(32);
  if (hlen != in.size()) return Error(Errc::syntax, "summary length");
  s.header_section = std::string(in);
  return s;
}

Result<Summary> summarize(std::string_view message, const HeaderLimits& limits) {
  auto hs = parse_header_section(message, limits);
  if (!hs) return hs.error();
  Summary s;
  s.size = message.size();
  s.body_offset = hs->body_offset;
  s.header_section = std::string(message.substr(0, hs->body_offset));
  std::string_view body = message.substr(hs->body_offset);
  uint64_t lines = 0;
  for (std::size_t p = body.find("\r\n"); p != std::string_view::npos; p = body.find("\r\n", p + 2))
    ++lines;
  if (!body.empty() && body.size() >= 2 && body.substr(body.size() - 2) != "\r\n") ++lines;
  s.body_lines = lines;
  return s;
}

}  // namespace postern::mime
