// Mailbox names: modified UTF-7 (RFC 3501 5.1.3) on the wire, UTF-8 in the store, and the
// checks every name passes before it reaches the store.
#include <array>

#include "imap/imap.hpp"

namespace postern::imap {
namespace {

constexpr std::string_view b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

constexpr std::size_t max_name_bytes = 512;
constexpr std::size_t max_name_depth = 16;

void put_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

// Next code point of valid UTF-8 (checked by the caller).
uint32_t next_utf8(std::string_view s, std::size_t& i) {
  auto c = static_cast<unsigned char>(s[i++]);
  if (c < 0x80) return c;
  int extra = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : 1;
  uint32_t cp = c & (0x3f >> extra);
  for (int k = 0; k < extra && i < s.size(); ++k)
    cp = (cp << 6) | (static_cast<unsigned char>(s[i++]) & 0x3f);
  return cp;
}

Result<std::string> decode_utf7(std::string_view in) {
  std::string out;
  for (std::size_t i = 0; i < in.size();) {
    char c = in[i];
    if (c != '&') {
      auto u = static_cast<unsigned char>(c);
      if (u < 0x20 || u > 0x7e) return Error(Errc::bad_mailbox_name, "8-bit in modified UTF-7");
      out += c;
      ++i;
      continue;
    }
    std::size_t end = in.find('-', i + 1);
    if (end == std::string_view::npos) return Error(Errc::bad_mailbox_name, "unterminated '&'");
    if (end == i + 1) {
      out += '&';
      i = end + 1;
      continue;
    }
    uint32_t bits = 0;
    int nbits = 0;
    std::vector<uint16_t> units;
    for (std::size_t k = i + 1; k < end; ++k) {
      auto pos = b64.find(in[k]);
      if (pos == std::string_view::npos) return Error(Errc::bad_mailbox_name, "bad base64");
      bits = (bits << 6) | static_cast<uint32_t>(pos);
      nbits += 6;
      if (nbits >= 16) {
        nbits -= 16;
        units.push_back(static_cast<uint16_t>((bits >> nbits) & 0xffff));
      }
    }
    if (nbits >= 6 || (bits & ((1u << nbits) - 1)) != 0)
      return Error(Errc::bad_mailbox_name, "bad base64 padding");
    for (std::size_t k = 0; k < units.size(); ++k) {
      uint32_t u = units[k];
      if (u >= 0xd800 && u < 0xdc00) {
        if (k + 1 >= units.size() || units[k + 1] < 0xdc00 || units[k + 1] >= 0xe000)
          return Error(Errc::bad_mailbox_name, "bad surrogate");
        u = 0x10000 + ((u - 0xd800) << 10) + (units[++k] - 0xdc00);
      } else if (u >= 0xdc00 && u < 0xe000) {
        return Error(Errc::bad_mailbox_name, "bad surrogate");
      } else if (u < 0x80 && u >= 0x20 && u != 0x7f) {
        // RFC 3501: printable ASCII must represent itself.
        return Error(Errc::bad_mailbox_name, "encoded ASCII");
      }
      put_utf8(out, u);
    }
    i = end + 1;
  }
  return out;
}

}  // namespace

std::string encode_mailbox_name(std::string_view utf8, bool utf8_enabled) {
  if (utf8_enabled) return std::string(utf8);
  std::string out;
  for (std::size_t i = 0; i < utf8.size();) {
    auto c = static_cast<unsigned char>(utf8[i]);
    if (c >= 0x20 && c <= 0x7e) {
      out += c == '&' ? std::string("&-") : std::string(1, static_cast<char>(c));
      ++i;
      continue;
    }
    std::vector<uint16_t> units;
    while (i < utf8.size() && !(static_cast<unsigned char>(utf8[i]) >= 0x20 &&
                                static_cast<unsigned char>(utf8[i]) <= 0x7e)) {
      uint32_t cp = next_utf8(utf8, i);
      if (cp >= 0x10000) {
        cp -= 0x10000;
        units.push_back(static_cast<uint16_t>(0xd800 + (cp >> 10)));
        units.push_back(static_cast<uint16_t>(0xdc00 + (cp & 0x3ff)));
      } else {
        units.push_back(static_cast<uint16_t>(cp));
      }
    }
    out += '&';
    uint32_t bits = 0;
    int nbits = 0;
    for (uint16_t u : units) {
      bits = (bits << 16) | u;
      nbits += 16;
      while (nbits >= 6) {
        nbits -= 6;
        out += b64[(bits >> nbits) & 0x3f];
      }
    }
    if (nbits > 0) out += b64[(bits << (6 - nbits)) & 0x3f];
    out += '-';
  }
  return out;
}

Result<std::string> normalise_mailbox_name(std::string_view name) {
  if (name.empty()) return Error(Errc::bad_mailbox_name, "empty name");
  if (name.size() > max_name_bytes) return Error(Errc::bad_mailbox_name, "name too long");
  if (!mime::valid_utf8(name)) return Error(Errc::bad_mailbox_name, "invalid UTF-8");
  std::size_t depth = 0;
  std::size_t start = 0;
  while (true) {
    std::size_t slash = name.find(delimiter, start);
    std::string_view part =
        name.substr(start, slash == std::string_view::npos ? name.npos : slash - start);
    if (part.empty() || part == "." || part == "..")
      return Error(Errc::bad_mailbox_name, "empty or dot component");
    if (++depth > max_name_depth) return Error(Errc::bad_mailbox_name, "too deep");
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  for (char c : name) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '*' || c == '%')
      return Error(Errc::bad_mailbox_name, "control or wildcard character");
  }
  std::string out(name);
  // RFC 9051 5.1: INBOX is case-insensitive, and so is its use as a parent.
  auto is_inbox = [](std::string_view s) {
    return s.size() == 5 && (s[0] | 0x20) == 'i' && (s[1] | 0x20) == 'n' && (s[2] | 0x20) == 'b' &&
           (s[3] | 0x20) == 'o' && (s[4] | 0x20) == 'x';
  };
  std::string_view first = std::string_view(out).substr(0, out.find(delimiter));
  if (is_inbox(first)) out.replace(0, 5, "INBOX");
  return out;
}

Result<std::string> decode_mailbox_name(std::string_view wire, bool utf8_enabled) {
  if (utf8_enabled) return normalise_mailbox_name(wire);
  auto decoded = decode_utf7(wire);
  if (!decoded) return decoded.error();
  return normalise_mailbox_name(*decoded);
}

bool list_match(std::string_view pattern, std::string_view name) {
  // Iterative wildcard match with backtracking to the last '*' or '%'.
  std::size_t p = 0, n = 0, star_p = std::string_view::npos, star_n = 0;
  bool star_is_percent = false;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '*' || pattern[p] == '%')) {
      star_is_percent = pattern[p] == '%';
      star_p = p++;
      star_n = n;
    } else if (p < pattern.size() && pattern[p] == name[n]) {
      ++p;
      ++n;
    } else if (star_p != std::string_view::npos &&
               !(star_is_percent && name[star_n] == delimiter)) {
      p = star_p + 1;
      n = ++star_n;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && (pattern[p] == '*' || pattern[p] == '%')) ++p;
  return p == pattern.size();
}

}  // namespace postern::imap
