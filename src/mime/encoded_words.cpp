// RFC 2047 encoded-words and charset conversion to UTF-8, for searching what users see.
//
// Security: input is hostile. Conversion goes through glibc iconv with bounded output; an
// unknown charset or malformed word leaves the text as it was.
#include <iconv.h>

#include <cctype>

#include "base/text.hpp"
#include "mime/mime.hpp"

namespace postern::mime {
namespace {

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::optional<std::string> base64(std::string_view in) {
  static constexpr std::string_view alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t bits = 0;
  int n = 0;
  for (char c : in) {
    if (c == '=') break;
    auto v = alphabet.find(c);
    if (v == std::string_view::npos) return std::nullopt;
    bits = (bits << 6) | static_cast<uint32_t>(v);
    n += 6;
    if (n >= 8) {
      n -= 8;
      out += static_cast<char>((bits >> n) & 0xff);
    }
  }
  return out;
}

std::optional<std::string> q_decode(std::string_view in) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '_') {
      out += ' ';
    } else if (in[i] == '=' && i + 2 < in.size() && hex(in[i + 1]) >= 0 && hex(in[i + 2]) >= 0) {
      out += static_cast<char>(hex(in[i + 1]) * 16 + hex(in[i + 2]));
      i += 2;
    } else {
      out += in[i];
    }
  }
  return out;
}

// One "=?charset?enc?text?=" starting at `pos`; returns its decoded text and end.
std::optional<std::pair<std::string, std::size_t>> encoded_word(std::string_view s,
                                                                std::size_t pos) {
  if (s.substr(pos, 2) != "=?") return std::nullopt;
  std::size_t q1 = s.find('?', pos + 2);
  if (q1 == std::string_view::npos || q1 + 2 >= s.size() || s[q1 + 2] != '?') return std::nullopt;
  std::size_t end = s.find("?=", q1 + 3);
  if (end == std::string_view::npos || end - pos > 1000) return std::nullopt;
  std::string_view charset = s.substr(pos + 2, q1 - pos - 2);
  charset = charset.substr(0, charset.find('*'));  // RFC 2231 language suffix
  char enc = static_cast<char>(std::toupper(static_cast<unsigned char>(s[q1 + 1])));
  std::string_view text = s.substr(q1 + 3, end - q1 - 3);
  auto bytes = enc == 'B' ? base64(text) : enc == 'Q' ? q_decode(text) : std::nullopt;
  if (!bytes) return std::nullopt;
  auto utf8 = to_utf8(charset, *bytes);
  if (!utf8) return std::nullopt;
  return std::make_pair(std::move(*utf8), end + 2);
}

}  // namespace

std::optional<std::string> decode_base64(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::size_t pad = 0;
  while (pad < 2 && pad < text.size() && text[text.size() - 1 - pad] == '=') ++pad;
  auto out = base64(text.substr(0, text.size() - pad));
  if (!out || out->size() != text.size() / 4 * 3 - pad) return std::nullopt;
  return out;
}

std::optional<std::string> to_utf8(std::string_view charset, std::string_view bytes) {
  std::string cs = base::ascii_lower(charset);
  if (cs.empty() || cs == "utf-8" || cs == "us-ascii" || cs == "utf8") {
    if (!valid_utf8(bytes)) return std::nullopt;
    return std::string(bytes);
  }
  if (cs.size() > 40) return std::nullopt;
  iconv_t cd = iconv_open("UTF-8", cs.c_str());
  // iconv_open reports failure as (iconv_t)-1.
  // NOLINTNEXTLINE(performance-no-int-to-ptr)
  if (cd == reinterpret_cast<iconv_t>(-1)) return std::nullopt;
  std::string out(bytes.size() * 4 + 16, '\0');
  char* in = const_cast<char*>(bytes.data());
  std::size_t in_left = bytes.size();
  char* o = out.data();
  std::size_t out_left = out.size();
  std::size_t r = iconv(cd, &in, &in_left, &o, &out_left);
  iconv_close(cd);
  if (r == static_cast<std::size_t>(-1)) return std::nullopt;
  out.resize(out.size() - out_left);
  return out;
}

std::string decode_header_value(std::string_view value) {
  std::string out;
  std::size_t pos = 0;
  bool last_was_word = false;
  std::string pending_space;
  while (pos < value.size()) {
    if (auto w = encoded_word(value, pos)) {
      // White space between two encoded-words is not part of the text (RFC 2047 6.2).
      if (!last_was_word) out += pending_space;
      pending_space.clear();
      out += w->first;
      pos = w->second;
      last_was_word = true;
      continue;
    }
    char c = value[pos++];
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      pending_space += c;
      continue;
    }
    out += pending_space;
    pending_space.clear();
    out += c;
    last_was_word = false;
  }
  out += pending_space;
  return out;
}

}  // namespace postern::mime
