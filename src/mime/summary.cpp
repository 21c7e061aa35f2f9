// The per-message summary delivery encrypts: "PSUM3", sizes, the header section, the parts,
// the cached IMAP responses.
// Every length is checked against what remains, so a corrupt summary is an error, never a
// read past the end.
#include <algorithm>

#include "mime/mime.hpp"

namespace postern::mime {
namespace {

constexpr std::string_view tag_v1 = "PSUM1";  // no parts
constexpr std::string_view tag_v2 = "PSUM2";  // no cached responses
constexpr std::string_view tag_v3 = "PSUM3";

void put_u64(std::string& out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out += static_cast<char>((v >> (i * 8)) & 0xff);
}
void put_bytes(std::string& out, std::string_view b) {
  put_u64(out, b.size());
  out += b;
}

struct Reader {
  std::string_view in;
  bool ok = true;
  uint64_t u64() {
    if (in.size() < 8) {
      ok = false;
      return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(in[i]);
    in.remove_prefix(8);
    return v;
  }
  std::string bytes() {
    uint64_t n = u64();
    if (!ok || n > in.size()) {
      ok = false;
      return {};
    }
    std::string out(in.substr(0, n));
    in.remove_prefix(n);
    return out;
  }
};

}  // namespace

std::string Summary::serialize() const {
  std::string out(tag_v3);
  put_u64(out, size);
  put_u64(out, body_offset);
  put_u64(out, body_lines);
  put_bytes(out, header_section);
  put_u64(out, parts.size());
  for (const auto& p : parts) {
    put_bytes(out, p.path);
    put_bytes(out, p.headers);
    put_u64(out, p.body_offset);
    put_u64(out, p.body_size);
    put_u64(out, p.body_lines);
    put_u64(out, p.children);
  }
  put_bytes(out, envelope_cache);
  put_bytes(out, structure_cache);
  return out;
}

Result<Summary> Summary::parse(std::string_view bytes) {
  std::string_view tag = bytes.substr(0, tag_v2.size());
  if (tag != tag_v1 && tag != tag_v2 && tag != tag_v3) return Error(Errc::syntax, "summary tag");
  Reader r{bytes.substr(tag.size())};
  Summary s;
  s.size = r.u64();
  s.body_offset = r.u64();
  s.body_lines = r.u64();
  s.header_section = r.bytes();
  if (tag != tag_v1) {
    uint64_t n = r.u64();
    // Each part takes at least 48 bytes: refuse counts the input cannot hold.
    if (!r.ok || n > r.in.size() / 48) return Error(Errc::syntax, "summary parts");
    s.parts.reserve(n);
    for (uint64_t i = 0; i < n && r.ok; ++i) {
      Part p;
      p.path = r.bytes();
      p.headers = r.bytes();
      p.body_offset = r.u64();
      p.body_size = r.u64();
      p.body_lines = r.u64();
      p.children = static_cast<uint32_t>(r.u64());
      s.parts.push_back(std::move(p));
    }
  }
  if (tag == tag_v3) {
    s.envelope_cache = r.bytes();
    s.structure_cache = r.bytes();
  }
  if (!r.ok || !r.in.empty()) return Error(Errc::syntax, "summary length");
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
  uint64_t lines = static_cast<uint64_t>(std::count(body.begin(), body.end(), '\n'));
  if (!body.empty() && body.back() != '\n') ++lines;
  s.body_lines = lines;
  parse_structure(message, message.substr(0, hs->body_offset), body, "", StructureLimits{},
                  s.parts);
  return s;
}

}  // namespace postern::mime
