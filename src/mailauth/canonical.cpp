// DKIM canonicalisation (RFC 6376 3.4), written here because no library fits; checked against
// dkimpy and mailauth by the signing tests.
#include "mailauth/mailauth.hpp"

namespace postern::mailauth {
namespace {

bool wsp(char c) {
  return c == ' ' || c == '\t';
}

// One line's relaxed form: white-space runs become one space, trailing white space goes.
void relaxed_line(std::string_view line, std::string& out) {
  bool in_space = false;
  for (char c : line) {
    if (wsp(c)) {
      in_space = true;
      continue;
    }
    if (in_space) out += ' ';
    in_space = false;
    out += c;
  }
}

}  // namespace

const std::error_category& category() {
  static const struct : std::error_category {
    const char* name() const noexcept override { return "mailauth"; }
    std::string message(int e) const override {
      switch (static_cast<Errc>(e)) {
        case Errc::bad_key:
          return "unusable key";
        case Errc::bad_message:
          return "message cannot be signed";
        case Errc::syntax:
          return "syntax error";
      }
      return "mailauth error";
    }
  } cat;
  return cat;
}

std::string relaxed_header(std::string_view name, std::string_view raw_value) {
  std::string out;
  out.reserve(name.size() + raw_value.size() + 3);
  while (!name.empty() && wsp(name.back())) name.remove_suffix(1);
  for (char c : name) out += static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  out += ':';
  // Unfold, collapse white space, and drop it at both ends of the value.
  bool in_space = false;
  bool any = false;
  for (std::size_t i = 0; i < raw_value.size(); ++i) {
    char c = raw_value[i];
    if (c == '\r' || c == '\n' || wsp(c)) {
      in_space = true;
      continue;
    }
    if (in_space && any) out += ' ';
    in_space = false;
    any = true;
    out += c;
  }
  out += "\r\n";
  return out;
}

std::string relaxed_body(std::string_view body) {
  std::string out;
  out.reserve(body.size());
  std::size_t pending_empty = 0;  // empty lines held back: at the end they are dropped
  std::size_t pos = 0;
  while (pos < body.size()) {
    std::size_t eol = body.find("\r\n", pos);
    std::string_view line = body.substr(pos, eol == std::string_view::npos ? body.npos : eol - pos);
    bool blank = line.find_first_not_of(" \t") == std::string_view::npos;
    if (blank) {
      ++pending_empty;
    } else {
      for (; pending_empty > 0; --pending_empty) out += "\r\n";
      relaxed_line(line, out);
      out += "\r\n";
    }
    if (eol == std::string_view::npos) break;
    pos = eol + 2;
  }
  return out;
}

std::string simple_body(std::string_view body) {
  // Trailing empty lines reduce to none; an empty body is one CRLF.
  std::size_t end = body.size();
  while (end >= 2 && body.substr(end - 2, 2) == "\r\n") end -= 2;
  if (end == 0) return "\r\n";
  std::string out(body.substr(0, end));
  out += "\r\n";
  return out;
}

}  // namespace postern::mailauth
