// Authentication-Results (RFC 8601): parsing (to find fields that claim our authserv-id) and
// formatting the field postern adds.
#include "base/text.hpp"
#include "mailauth/mailauth.hpp"

namespace postern::mailauth {
namespace {

constexpr std::size_t max_comment_depth = 8;
constexpr std::size_t max_results = 64;
constexpr std::size_t max_properties = 32;

// RFC 2045 token characters.
bool token_char(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u <= 0x20 || u >= 0x7f) return u >= 0x80;  // UTF-8 (RFC 6532) passes through
  return std::string_view("()<>@,;:\\\"/[]?=").find(c) == std::string_view::npos;
}

// A cursor over the field value that skips CFWS; every read is bounded by the value.
class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}

  // Skips white space and comments; false on an unbalanced or too deep comment.
  bool skip_cfws() {
    while (pos_ < s_.size()) {
      char c = s_[pos_];
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
        ++pos_;
      } else if (c == '(') {
        std::size_t depth = 0;
        do {
          if (pos_ >= s_.size()) return false;
          char d = s_[pos_++];
          if (d == '\\') {
            ++pos_;
          } else if (d == '(') {
            if (++depth > max_comment_depth) return false;
          } else if (d == ')') {
            --depth;
          }
        } while (depth > 0);
        if (pos_ > s_.size()) return false;
      } else {
        break;
      }
    }
    return true;
  }
  bool at_end() const { return pos_ >= s_.size(); }
  bool eat(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  // token, or a quoted-string's content; nullopt when neither is here.
  std::optional<std::string> value() {
    if (eat('"')) {
      std::string out;
      while (pos_ < s_.size()) {
        char c = s_[pos_++];
        if (c == '"') return out;
        if (c == '\\') {
          if (pos_ >= s_.size()) return std::nullopt;
          c = s_[pos_++];
        }
        // The value is unfolded first: a line end or control character left is malformed.
        if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) return std::nullopt;
        out += c;
      }
      return std::nullopt;
    }
    return token("");
  }
  // A run of token characters plus those in `also` (for "@" and "." in property values).
  std::optional<std::string> token(std::string_view also) {
    std::size_t start = pos_;
    while (pos_ < s_.size() && (token_char(s_[pos_]) || also.find(s_[pos_]) != also.npos)) ++pos_;
    if (pos_ == start) return std::nullopt;
    return std::string(s_.substr(start, pos_ - start));
  }

 private:
  std::string_view s_;
  std::size_t pos_ = 0;
};

// RFC 8601 keyword: a token without "." (dots separate ptype and property).
bool keyword(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
  return true;
}

std::string quoted_if_needed(std::string_view v, bool allow_at) {
  bool plain = !v.empty();
  for (char c : v)
    if (!(token_char(c) && static_cast<unsigned char>(c) < 0x80) && !(allow_at && c == '@'))
      plain = false;
  if (plain) return std::string(v);
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\r' || c == '\n') continue;
    out += c;
  }
  return out + "\"";
}

}  // namespace

Result<AuthResultsHeader> parse_authentication_results(std::string_view text) {
  auto bad = [](const char* why) { return Error(Errc::syntax, why); };
  std::string unfolded;
  unfolded.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r' && i + 2 < text.size() && text[i + 1] == '\n' &&
        (text[i + 2] == ' ' || text[i + 2] == '\t')) {
      ++i;  // CRLF before white space is folding
      continue;
    }
    unfolded += text[i];
  }
  Reader r(unfolded);
  AuthResultsHeader out;
  if (!r.skip_cfws()) return bad("bad comment");
  auto id = r.value();
  if (!id) return bad("no authserv-id");
  out.authserv_id = std::move(*id);
  if (!r.skip_cfws()) return bad("bad comment");
  if (std::isdigit(static_cast<unsigned char>(r.peek()))) {  // authres-version
    auto version = r.token("");
    if (!version || *version != "1") return bad("unknown version");
    if (!r.skip_cfws()) return bad("bad comment");
  }
  while (true) {
    if (!r.skip_cfws()) return bad("bad comment");
    if (r.at_end()) break;
    if (!r.eat(';')) return bad("expected ';'");
    if (!r.skip_cfws()) return bad("bad comment");
    if (r.at_end()) break;  // a trailing ';' is seen in the wild
    auto method = r.token("");
    if (!method) return bad("expected a method");
    if (!r.skip_cfws()) return bad("bad comment");
    if (out.results.empty() && r.at_end() && base::iequals(*method, "none")) break;  // no-result
    AuthResult res;
    res.method = base::ascii_lower(*method);
    if (r.eat('/')) {  // method-version
      if (!r.skip_cfws() || !r.token("")) return bad("bad method version");
      if (!r.skip_cfws()) return bad("bad comment");
    }
    if (!keyword(res.method)) return bad("bad method");
    if (!r.eat('=')) return bad("expected '=' after the method");
    if (!r.skip_cfws()) return bad("bad comment");
    auto result = r.token("");
    if (!result || !keyword(*result)) return bad("expected a result");
    res.result = base::ascii_lower(*result);
    while (true) {
      if (!r.skip_cfws()) return bad("bad comment");
      if (r.at_end() || r.peek() == ';') break;
      auto name = r.token(".");
      if (!name) return bad("expected a property");
      if (!r.skip_cfws()) return bad("bad comment");
      if (!r.eat('=')) return bad("expected '='");
      if (!r.skip_cfws()) return bad("bad comment");
      std::optional<std::string> value =
          r.peek() == '"' ? r.value() : r.token("@/");  // an addr-spec, a domain, base64
      if (!value) {
        if (r.peek() != ';' && !r.at_end()) return bad("bad property value");
        value = "";
      }
      std::string lname = base::ascii_lower(*name);
      if (lname == "reason") {
        res.reason = std::move(*value);
        continue;
      }
      auto dot = lname.find('.');
      if (dot == std::string::npos || dot == 0 || dot + 1 == lname.size())
        return bad("property without ptype");
      if (res.properties.size() >= max_properties) return bad("too many properties");
      res.properties.emplace_back(std::move(lname), std::move(*value));
    }
    if (out.results.size() >= max_results) return bad("too many results");
    out.results.push_back(std::move(res));
  }
  return out;
}

std::string format_authentication_results(const AuthResultsHeader& header) {
  std::string out = "Authentication-Results: " + quoted_if_needed(header.authserv_id, false);
  if (header.results.empty()) return out + "; none\r\n";
  for (const auto& res : header.results) {
    out += ";\r\n\t" + res.method + "=" + res.result;
    if (!res.reason.empty()) out += " reason=" + quoted_if_needed(res.reason, false);
    for (const auto& [name, value] : res.properties)
      out += " " + name + "=" + quoted_if_needed(value, true);
  }
  return out + "\r\n";
}

}  // namespace postern::mailauth
