// SPF record syntax (RFC 7208 4.5, 4.6.1, 5, 6, 7.1) and macro expansion (RFC 7208 7).
// The whole record is checked before anything is evaluated, so that a syntax error anywhere
// is a permerror however early a mechanism would have matched (RFC 7208 4.6).
#include <algorithm>
#include <charconv>

#include "base/text.hpp"
#include "mailauth/spf_internal.hpp"

namespace postern::mailauth {
namespace spf {
namespace {

// Far above any name (253) or explanation anyone can use, far below what hurts.
constexpr std::size_t kMaxExpansion = std::size_t{64} * 1024;

bool alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool digit(char c) {
  return c >= '0' && c <= '9';
}
bool alnum(char c) {
  return alpha(c) || digit(c);
}
char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}
bool is_delimiter(char c) {
  return std::string_view(".-+,/_=").find(c) != std::string_view::npos;
}
// macro-literal: visible ASCII but "%".
bool literal(char c) {
  return c >= 0x21 && c <= 0x7e && c != '%';
}

Error syntax(std::string detail) {
  return Error(Errc::syntax, std::move(detail));
}

// RFC 3986 unreserved characters stay, everything else is percent-encoded.
std::string url_escape(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    if (alnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += c;
    } else {
      auto b = static_cast<unsigned char>(c);
      out += '%';
      out += kHex[b >> 4];
      out += kHex[b & 0xf];
    }
  }
  return out;
}

// RFC 7208 7.3: split on the delimiters, optionally reverse, keep the `keep` rightmost parts
// (0: all), join with dots.
std::string transform(std::string_view value, std::size_t keep, bool reverse,
                      std::string_view delimiters) {
  if (delimiters.empty()) delimiters = ".";
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= value.size(); ++i) {
    if (i == value.size() || delimiters.find(value[i]) != delimiters.npos) {
      parts.push_back(value.substr(start, i - start));
      start = i + 1;
    }
  }
  if (reverse) std::reverse(parts.begin(), parts.end());
  std::size_t first = keep != 0 && keep < parts.size() ? parts.size() - keep : 0;
  std::string out;
  for (std::size_t i = first; i < parts.size(); ++i) {
    if (i != first) out += '.';
    out += parts[i];
  }
  return out;
}

const std::string* macro_value(char letter, const MacroValues& v) {
  switch (letter) {
    case 's':
      return &v.sender;
    case 'l':
      return &v.local_part;
    case 'o':
      return &v.sender_domain;
    case 'd':
      return &v.domain;
    case 'i':
      return &v.ip_dotted;
    case 'p':
      return &v.validated;
    case 'v':
      return &v.ip_version;
    case 'h':
      return &v.helo;
    case 'c':
      return &v.ip_text;
    case 'r':
      return &v.receiver;
    case 't':
      return &v.timestamp;
  }
  return nullptr;
}

struct Macro {
  char letter = 0;  // lower case
  bool upper = false;
  std::size_t keep = 0;
  bool reverse = false;
  std::string_view delimiters;
};

// The "%{...}" at `pos` (pointing at "{"); `pos` moves past the "}".
Result<Macro> parse_macro(std::string_view s, std::size_t& pos, MacroUse use) {
  Macro m;
  ++pos;
  if (pos >= s.size()) return syntax("unterminated macro");
  char c = s[pos++];
  m.letter = lower(c);
  m.upper = c != m.letter;
  if (std::string_view("slodipvhcrt").find(m.letter) == std::string_view::npos)
    return syntax(std::string("unknown macro letter '") + c + "'");
  if (use == MacroUse::domain && std::string_view("crt").find(m.letter) != std::string_view::npos)
    return syntax(std::string("macro '") + c + "' outside explanation text");
  bool have_digits = false;
  while (pos < s.size() && digit(s[pos])) {
    have_digits = true;
    // Saturate: any count above the number of parts means all of them.
    m.keep = std::min<std::size_t>(m.keep * 10 + static_cast<std::size_t>(s[pos] - '0'), 1000);
    ++pos;
  }
  if (have_digits && m.keep == 0) return syntax("macro digit transformer of zero");
  if (pos < s.size() && lower(s[pos]) == 'r') {
    m.reverse = true;
    ++pos;
  }
  std::size_t delim_start = pos;
  while (pos < s.size() && is_delimiter(s[pos])) ++pos;
  m.delimiters = s.substr(delim_start, pos - delim_start);
  if (pos >= s.size() || s[pos] != '}') return syntax("malformed macro");
  ++pos;
  return m;
}

// Walks a macro-string, expanding into `out` when `values` is given. `ends_with_macro` tells
// whether the last token was a macro-expand (for the domain-end rule).
Result<void> walk(std::string_view s, MacroUse use, const MacroValues* values, std::string* out,
                  bool* ends_with_macro) {
  bool last_macro = false;
  std::size_t pos = 0;
  while (pos < s.size()) {
    char c = s[pos];
    if (c != '%') {
      if (!literal(c) && !(c == ' ' && use == MacroUse::explanation))
        return syntax("character not allowed in a macro-string");
      if (out) *out += c;
      last_macro = false;
      ++pos;
    } else if (pos + 1 >= s.size()) {
      return syntax("'%' at the end of a macro-string");
    } else if (char n = s[pos + 1]; n == '%' || n == '_' || n == '-') {
      if (out) *out += n == '%' ? "%" : n == '_' ? " " : "%20";
      last_macro = true;
      pos += 2;
    } else if (n == '{') {
      ++pos;
      auto m = parse_macro(s, pos, use);
      if (!m) return m.error();
      if (out && values) {
        std::string v =
            transform(*macro_value(m->letter, *values), m->keep, m->reverse, m->delimiters);
        *out += m->upper ? url_escape(v) : v;
      }
      last_macro = true;
    } else {
      return syntax("'%' not followed by '{', '%', '_' or '-'");
    }
    if (out && out->size() > kMaxExpansion) return syntax("macro expansion too long");
  }
  if (ends_with_macro) *ends_with_macro = last_macro;
  return {};
}

// toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum )
bool toplabel(std::string_view s) {
  if (s.empty() || !alnum(s.front()) || !alnum(s.back())) return false;
  bool letter_or_dash = false;
  for (char c : s) {
    if (!alnum(c) && c != '-') return false;
    letter_or_dash = letter_or_dash || alpha(c) || c == '-';
  }
  return letter_or_dash;
}

// A CIDR length: "0" or decimal without leading zeros, at most `max`.
Result<int> cidr(std::string_view s, int max) {
  int n = -1;
  if (s.empty() || s.size() > 3 || (s.size() > 1 && s[0] == '0')) return syntax("CIDR length");
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || end != s.data() + s.size() || n < 0 || n > max)
    return syntax("CIDR length");
  return n;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), digit);
}

// dual-cidr-length at the end of `rest` ("/24", "//64", "/24//64"); `rest` loses it.
Result<void> dual_cidr(std::string_view& rest, SpfTerm& term) {
  auto slash = rest.rfind('/');
  if (slash == rest.npos || !all_digits(rest.substr(slash + 1))) return {};
  std::string_view len = rest.substr(slash + 1);
  if (slash > 0 && rest[slash - 1] == '/') {
    auto n = cidr(len, 128);
    if (!n) return n.error();
    term.cidr6 = *n;
    rest = rest.substr(0, slash - 1);
    slash = rest.rfind('/');
    if (slash == rest.npos || !all_digits(rest.substr(slash + 1))) return {};
    len = rest.substr(slash + 1);
  }
  auto n = cidr(len, 32);
  if (!n) return n.error();
  term.cidr4 = *n;
  rest = rest.substr(0, slash);
  return {};
}

// ":" domain-spec, required or optional.
Result<void> domain_arg(std::string_view rest, bool required, SpfTerm& term) {
  if (rest.empty()) {
    if (required) return syntax("mechanism needs a domain-spec");
    return {};
  }
  if (rest[0] != ':') return syntax("malformed mechanism");
  rest.remove_prefix(1);
  if (auto r = check_domain_spec(rest); !r) return r;
  term.domain_spec = std::string(rest);
  return {};
}

Result<void> network_arg(std::string_view rest, bool v6, SpfTerm& term) {
  if (rest.empty() || rest[0] != ':') return syntax("ip4/ip6 needs a network");
  rest.remove_prefix(1);
  auto slash = rest.find('/');
  std::string_view address = rest.substr(0, slash);
  // The family comes from the mechanism, not from what the text looks like.
  bool looks_v6 = address.find(':') != address.npos;
  if (looks_v6 != v6 || !parse_ip(address, false)) return syntax("malformed IP network");
  term.address = std::string(address);
  if (slash != rest.npos) {
    auto n = cidr(rest.substr(slash + 1), v6 ? 128 : 32);
    if (!n) return n.error();
    (v6 ? term.cidr6 : term.cidr4) = *n;
  }
  return {};
}

Result<SpfTerm> parse_modifier(std::string_view name, std::string_view value) {
  SpfTerm t;
  if (base::iequals(name, "redirect") || base::iequals(name, "exp")) {
    t.kind = base::iequals(name, "exp") ? SpfTerm::Kind::exp : SpfTerm::Kind::redirect;
    if (auto r = check_domain_spec(value); !r) return r.error();
  } else {
    t.kind = SpfTerm::Kind::unknown_modifier;
    if (auto r = walk(value, MacroUse::modifier, nullptr, nullptr, nullptr); !r) return r.error();
  }
  t.domain_spec = std::string(value);
  return t;
}

struct MechanismName {
  std::string_view name;
  SpfTerm::Kind kind;
};
constexpr MechanismName kMechanisms[] = {
    {"all", SpfTerm::Kind::all}, {"include", SpfTerm::Kind::include}, {"a", SpfTerm::Kind::a},
    {"mx", SpfTerm::Kind::mx},   {"ptr", SpfTerm::Kind::ptr},         {"ip4", SpfTerm::Kind::ip4},
    {"ip6", SpfTerm::Kind::ip6}, {"exists", SpfTerm::Kind::exists},
};

Result<SpfTerm> parse_mechanism(std::string_view text) {
  SpfTerm t;
  if (!text.empty() && std::string_view("+-~?").find(text[0]) != std::string_view::npos) {
    t.qualifier = text[0];
    text.remove_prefix(1);
  }
  std::size_t end = std::min(text.find(':'), text.find('/'));
  std::string_view name = text.substr(0, end);
  std::string_view rest = end == text.npos ? std::string_view() : text.substr(end);
  auto known = std::find_if(std::begin(kMechanisms), std::end(kMechanisms),
                            [&](const MechanismName& m) { return base::iequals(m.name, name); });
  if (known == std::end(kMechanisms)) return syntax("unknown mechanism");
  t.kind = known->kind;
  Result<void> r;
  switch (t.kind) {
    case SpfTerm::Kind::all:
      if (!rest.empty()) r = syntax("'all' takes no argument");
      break;
    case SpfTerm::Kind::include:
    case SpfTerm::Kind::exists:
      r = domain_arg(rest, true, t);
      break;
    case SpfTerm::Kind::ptr:
      r = domain_arg(rest, false, t);
      break;
    case SpfTerm::Kind::a:
    case SpfTerm::Kind::mx:
      r = dual_cidr(rest, t);
      if (r) r = domain_arg(rest, false, t);
      break;
    case SpfTerm::Kind::ip4:
    case SpfTerm::Kind::ip6:
      r = network_arg(rest, t.kind == SpfTerm::Kind::ip6, t);
      break;
    default:
      break;
  }
  if (!r) return r.error();
  return t;
}

// A modifier is name "=" with a name that starts with a letter; anything else is a directive
// (RFC 7208 4.6.1: "=" right after the name, before any ":" or "/").
Result<SpfTerm> parse_term(std::string_view text) {
  std::size_t n = 0;
  while (n < text.size() && (alnum(text[n]) || text[n] == '-' || text[n] == '_' || text[n] == '.'))
    ++n;
  if (n > 0 && n < text.size() && text[n] == '=' && alpha(text[0]))
    return parse_modifier(text.substr(0, n), text.substr(n + 1));
  return parse_mechanism(text);
}

// A bounded, printable copy of hostile text for an error message.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 64)) out += c >= 0x20 && c < 0x7f && c != '"' ? c : '?';
  return out;
}

const char* kind_name(SpfTerm::Kind kind) {
  switch (kind) {
    case SpfTerm::Kind::all:
      return "all";
    case SpfTerm::Kind::include:
      return "include";
    case SpfTerm::Kind::a:
      return "a";
    case SpfTerm::Kind::mx:
      return "mx";
    case SpfTerm::Kind::ptr:
      return "ptr";
    case SpfTerm::Kind::ip4:
      return "ip4";
    case SpfTerm::Kind::ip6:
      return "ip6";
    case SpfTerm::Kind::exists:
      return "exists";
    case SpfTerm::Kind::redirect:
      return "redirect";
    case SpfTerm::Kind::exp:
      return "exp";
    case SpfTerm::Kind::unknown_modifier:
      return "modifier";
  }
  return "?";
}

}  // namespace

Result<std::string> expand_macros(std::string_view text, const MacroValues& values, MacroUse use) {
  std::string out;
  if (auto r = walk(text, use, &values, &out, nullptr); !r) return r.error();
  return out;
}

bool uses_macro(std::string_view text, char letter) {
  for (std::size_t pos = 0; pos + 2 < text.size(); ++pos) {
    if (text[pos] != '%') continue;
    if (text[pos + 1] == '{' && lower(text[pos + 2]) == letter) return true;
    ++pos;  // "%%{p}" is the literal "%{p}"
  }
  return false;
}

Result<void> check_domain_spec(std::string_view spec) {
  if (spec.empty()) return syntax("empty domain-spec");
  bool ends_with_macro = false;
  if (auto r = walk(spec, MacroUse::domain, nullptr, nullptr, &ends_with_macro); !r) return r;
  if (ends_with_macro) return {};
  if (spec.back() == '.') spec.remove_suffix(1);
  auto dot = spec.rfind('.');
  if (dot == spec.npos || !toplabel(spec.substr(dot + 1)))
    return syntax("domain-spec does not end in a top-level label");
  return {};
}

std::string truncate_domain(std::string_view expanded) {
  if (!expanded.empty() && expanded.back() == '.') expanded.remove_suffix(1);
  while (expanded.size() > 253) {
    auto dot = expanded.find('.');
    if (dot == expanded.npos) break;
    expanded.remove_prefix(dot + 1);
  }
  return std::string(expanded);
}

bool valid_domain(std::string_view name, bool multi_label) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > 253 || name.front() == '[') return false;
  std::size_t labels = 0, label = 0;
  for (char c : name) {
    if (c == '.') {
      if (label == 0) return false;
      ++labels;
      label = 0;
    } else if (c < 0x20 || c >= 0x7f || c == '\\' || (c == ' ' && multi_label) || ++label > 63) {
      return false;
    }
  }
  if (label == 0) return false;
  return !multi_label || labels >= 1;
}

bool is_spf_record(std::string_view txt) {
  return base::istarts_with(txt, "v=spf1") && (txt.size() == 6 || txt[6] == ' ');
}

std::string term_text(const SpfTerm& t) {
  std::string out = kind_name(t.kind);
  switch (t.kind) {
    case SpfTerm::Kind::ip4:
    case SpfTerm::Kind::ip6:
      out += ':' + t.address;
      if (int len = t.kind == SpfTerm::Kind::ip4 ? t.cidr4 : t.cidr6; len >= 0)
        out += '/' + std::to_string(len);
      return out;
    case SpfTerm::Kind::redirect:
    case SpfTerm::Kind::exp:
    case SpfTerm::Kind::unknown_modifier:
      return out + '=' + t.domain_spec;
    default:
      break;
  }
  if (!t.domain_spec.empty()) out += ':' + t.domain_spec;
  if (t.cidr4 >= 0) out += '/' + std::to_string(t.cidr4);
  if (t.cidr6 >= 0) out += "//" + std::to_string(t.cidr6);
  return out;
}

}  // namespace spf

const char* to_string(SpfResult r) {
  switch (r) {
    case SpfResult::none:
      return "none";
    case SpfResult::neutral:
      return "neutral";
    case SpfResult::pass:
      return "pass";
    case SpfResult::fail:
      return "fail";
    case SpfResult::softfail:
      return "softfail";
    case SpfResult::temperror:
      return "temperror";
    case SpfResult::permerror:
      return "permerror";
  }
  return "none";
}

Result<std::vector<SpfTerm>> parse_spf(std::string_view record) {
  if (!spf::is_spf_record(record)) return spf::syntax("not an SPF record");
  record.remove_prefix(6);
  std::vector<SpfTerm> terms;
  bool redirect = false, exp = false;
  std::size_t pos = 0;
  while (pos < record.size()) {
    if (record[pos] == ' ') {
      ++pos;
      continue;
    }
    std::size_t end = std::min(record.find(' ', pos), record.size());
    std::string_view text = record.substr(pos, end - pos);
    auto term = spf::parse_term(text);
    if (!term)
      return Error(Errc::syntax, term.error().detail() + " in \"" + spf::printable(text) + "\"");
    bool& seen = term->kind == SpfTerm::Kind::exp ? exp : redirect;
    if (term->kind == SpfTerm::Kind::exp || term->kind == SpfTerm::Kind::redirect) {
      if (seen) return spf::syntax(std::string(spf::kind_name(term->kind)) + "= twice");
      seen = true;
    }
    terms.push_back(std::move(*term));
    pos = end;
  }
  return terms;
}

}  // namespace postern::mailauth
