// RFC 5321 4.1.2 (Mailbox, Local-part, Domain, address-literal), RFC 6531 3.3 (UTF-8 forms).
#include "base/text.hpp"
#include "mime/mime.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>

namespace postern::mime {
namespace {

bool is_atext(unsigned char c) {
  if (std::isalnum(c)) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '/':
    case '=':
    case '?':
    case '^':
    case '_':
    case '`':
    case '{':
    case '|':
    case '}':
    case '~':
      return true;
    default:
      return false;
  }
}

bool is_let_dig(unsigned char c) {
  return std::isalnum(c) != 0;
}

}  // namespace

const std::error_category& category() {
  static const struct : std::error_category {
    const char* name() const noexcept override { return "mime"; }
    std::string message(int e) const override {
      switch (static_cast<Errc>(e)) {
        case Errc::empty:
          return "empty address";
        case Errc::syntax:
          return "address syntax error";
        case Errc::local_part_too_long:
          return "local part longer than 64 octets";
        case Errc::domain_too_long:
          return "domain longer than 255 octets";
        case Errc::non_ascii:
          return "non-ASCII address without SMTPUTF8";
        case Errc::bad_utf8:
          return "invalid UTF-8";
        case Errc::too_many_headers:
          return "too many header fields";
        case Errc::header_too_long:
          return "header field too long";
      }
      return "mime error";
    }
  } cat;
  return cat;
}

bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    std::size_t n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      n = 1, cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2, cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    for (std::size_t k = 1; k <= n; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    // Overlong forms, surrogates and code points past U+10FFFF.
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += n + 1;
  }
  return true;
}

bool valid_address_literal(std::string_view lit) {
  // inet_pton reads a C string: an embedded NUL would hide trailing garbage.
  if (lit.find('\0') != std::string_view::npos || lit.size() > 64) return false;
  unsigned char buf[16];
  if (lit.size() > 5 && lit.substr(0, 5) == "IPv6:")
    return inet_pton(AF_INET6, std::string(lit.substr(5)).c_str(), buf) == 1;
  return inet_pton(AF_INET, std::string(lit).c_str(), buf) == 1;
}

bool valid_domain(std::string_view domain, bool allow_utf8) {
  if (domain.empty() || domain.size() > max_domain_bytes) return false;
  std::size_t start = 0;
  while (true) {
    auto dot = domain.find('.', start);
    auto label = domain.substr(start, dot == std::string_view::npos ? domain.npos : dot - start);
    if (label.empty() || label.size() > 63) return false;
    bool has_utf8 = false;
    for (std::size_t i = 0; i < label.size(); ++i) {
      auto c = static_cast<unsigned char>(label[i]);
      if (c >= 0x80) {
        has_utf8 = true;
        continue;
      }
      bool edge = i == 0 || i + 1 == label.size();
      if (!(is_let_dig(c) || (c == '-' && !edge))) return false;
    }
    if (has_utf8 && (!allow_utf8 || !valid_utf8(label))) return false;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return true;
}

std::string Mailbox::str() const {
  bool dot_string = !local.empty() && local.front() != '.' && local.back() != '.' &&
                    local.find("..") == std::string::npos;
  for (unsigned char c : local)
    if (!(is_atext(c) || c == '.' || c >= 0x80)) dot_string = false;
  std::string out;
  if (dot_string) {
    out = local;
  } else {
    out = "\"";
    for (char c : local) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "@" + domain;
}

std::string Mailbox::lookup_key() const {
  return base::ascii_lower(local) + "@" + domain;
}

Result<Mailbox> parse_mailbox(std::string_view text, bool allow_utf8) {
  if (text.empty()) return Error(Errc::empty);
  Mailbox mb;
  std::size_t i = 0;
  if (text[0] == '"') {
    // Quoted-string: qtextSMTP / quoted-pairSMTP, plus UTF-8 under RFC 6531.
    ++i;
    bool closed = false;
    while (i < text.size()) {
      auto c = static_cast<unsigned char>(text[i]);
      if (c == '"') {
        closed = true;
        ++i;
        break;
      }
      if (c == '\\') {
        if (i + 1 >= text.size()) return Error(Errc::syntax);
        auto q = static_cast<unsigned char>(text[i + 1]);
        if (q < 32 || q > 126) return Error(Errc::syntax);
        mb.local += static_cast<char>(q);
        i += 2;
        continue;
      }
      if (c >= 0x80) {
        mb.utf8 = true;
      } else if (c < 32 || c > 126) {
        return Error(Errc::syntax);
      }
      mb.local += static_cast<char>(c);
      ++i;
    }
    if (!closed) return Error(Errc::syntax);
  } else {
    // Dot-string: Atom *("." Atom).
    std::size_t start = i;
    bool last_dot = true;
    while (i < text.size() && text[i] != '@') {
      auto c = static_cast<unsigned char>(text[i]);
      if (c == '.') {
        if (last_dot) return Error(Errc::syntax);
        last_dot = true;
      } else if (is_atext(c)) {
        last_dot = false;
      } else if (c >= 0x80) {
        mb.utf8 = true;
        last_dot = false;
      } else {
        return Error(Errc::syntax);
      }
      ++i;
    }
    if (last_dot) return Error(Errc::syntax);
    mb.local = std::string(text.substr(start, i - start));
  }
  if (mb.utf8) {
    if (!valid_utf8(mb.local)) return Error(Errc::bad_utf8);
    if (!allow_utf8) return Error(Errc::non_ascii);
  }
  if (mb.local.size() > max_local_part_bytes) return Error(Errc::local_part_too_long);
  if (i >= text.size() || text[i] != '@') return Error(Errc::syntax);
  ++i;
  std::string_view domain = text.substr(i);
  if (domain.size() > max_domain_bytes) return Error(Errc::domain_too_long);
  if (!domain.empty() && domain.front() == '[') {
    if (domain.size() < 3 || domain.back() != ']' ||
        !valid_address_literal(domain.substr(1, domain.size() - 2)))
      return Error(Errc::syntax);
    mb.domain = std::string(domain);
    return mb;
  }
  bool domain_utf8 = std::any_of(domain.begin(), domain.end(),
                                 [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
  if (domain_utf8 && !allow_utf8) return Error(Errc::non_ascii);
  if (!valid_domain(domain, allow_utf8)) return Error(Errc::syntax);
  mb.utf8 = mb.utf8 || domain_utf8;
  mb.domain = base::ascii_lower(domain);
  return mb;
}

}  // namespace postern::mime
