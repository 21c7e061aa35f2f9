// Tokenising commands (RFC 9051 9: atoms, quoted strings, literals, lists) and sequence sets.
//
// Security: recursion depth, token count and range count are bounded by Limits.
#include <algorithm>
#include <charconv>

#include "imap/imap.hpp"

namespace postern::imap {

const std::error_category& category() {
  static const struct : std::error_category {
    const char* name() const noexcept override { return "imap"; }
    std::string message(int e) const override {
      switch (static_cast<Errc>(e)) {
        case Errc::syntax:
          return "syntax error";
        case Errc::too_long:
          return "too long";
        case Errc::too_deep:
          return "nested too deeply";
        case Errc::too_many:
          return "too many items";
        case Errc::bad_mailbox_name:
          return "invalid mailbox name";
        case Errc::bad_sequence:
          return "invalid sequence set";
        case Errc::unknown_search_key:
          return "unknown search key";
      }
      return "imap error";
    }
  } cat;
  return cat;
}

bool Token::is_nil() const {
  return kind == Kind::atom && text.size() == 3 && (text[0] | 0x20) == 'n' &&
         (text[1] | 0x20) == 'i' && (text[2] | 0x20) == 'l';
}

namespace {

class Tokenizer {
 public:
  Tokenizer(std::string_view s, const Limits& l) : s_(s), limits_(l) {}

  // Tokens up to the end of the command (the final CRLF), or up to ')' when depth > 0.
  Result<void> tokens(std::vector<Token>& out, std::size_t depth) {
    if (depth > limits_.max_depth) return Error(Errc::too_deep, "list nesting");
    bool first = true;
    while (true) {
      if (at_end()) {
        if (depth > 0) return Error(Errc::syntax, "unclosed list");
        return {};
      }
      if (s_[pos_] == ')') {
        if (depth == 0) return Error(Errc::syntax, "unexpected ')'");
        ++pos_;
        return {};
      }
      if (!first) {
        if (s_[pos_] != ' ') return Error(Errc::syntax, "expected a space");
        ++pos_;
        if (pos_ < s_.size() && s_[pos_] == ')' && depth > 0) {
          return Error(Errc::syntax, "space before ')'");
        }
      }
      first = false;
      if (++count_ > limits_.max_tokens) return Error(Errc::too_many, "tokens");
      Token t;
      if (auto r = token(t, depth); !r) return r;
      out.push_back(std::move(t));
    }
  }

  bool at_end() const { return pos_ + 2 >= s_.size() && s_.substr(pos_) == "\r\n"; }
  std::size_t pos() const { return pos_; }
  void skip(std::size_t n) { pos_ += n; }

 private:
  Result<void> token(Token& t, std::size_t depth) {
    if (pos_ >= s_.size()) return Error(Errc::syntax, "missing token");
    char c = s_[pos_];
    if (c == '(') {
      ++pos_;
      t.kind = Token::Kind::list;
      if (pos_ < s_.size() && s_[pos_] == ')') {
        ++pos_;
        return {};
      }
      return tokens(t.items, depth + 1);
    }
    if (c == '"') return quoted(t);
    if (c == '{' || (c == '~' && pos_ + 1 < s_.size() && s_[pos_ + 1] == '{')) return lit(t);
    return atom(t);
  }

  Result<void> quoted(Token& t) {
    t.kind = Token::Kind::string;
    ++pos_;
    while (pos_ < s_.size()) {
      char c = s_[pos_++];
      if (c == '"') return {};
      if (c == '\r' || c == '\n' || c == '\0') break;
      if (c == '\\') {
        if (pos_ >= s_.size() || (s_[pos_] != '"' && s_[pos_] != '\\')) break;
        c = s_[pos_++];
      }
      t.text += c;
    }
    return Error(Errc::syntax, "bad quoted string");
  }

  Result<void> lit(Token& t) {
    if (s_[pos_] == '~') ++pos_;
    std::size_t close = s_.find('}', pos_);
    if (close == std::string_view::npos) return Error(Errc::syntax, "bad literal");
    std::string_view digits = s_.substr(pos_ + 1, close - pos_ - 1);
    if (!digits.empty() && digits.back() == '+') digits.remove_suffix(1);
    std::size_t n = 0;
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
    if (digits.empty() || ec != std::errc() || p != digits.data() + digits.size())
      return Error(Errc::syntax, "bad literal size");
    pos_ = close + 1;
    if (s_.substr(pos_, 2) != "\r\n" || s_.size() - pos_ - 2 < n)
      return Error(Errc::syntax, "bad literal");
    pos_ += 2;
    t.kind = Token::Kind::string;
    t.literal = true;
    t.text = std::string(s_.substr(pos_, n));
    pos_ += n;
    return {};
  }

  // Atoms are liberal here (flags with '\', list wildcards, "BODY[HEADER.FIELDS (A B)]<0.10>");
  // each command checks what it accepts. A '[' section runs to its matching ']'.
  Result<void> atom(Token& t) {
    std::size_t start = pos_;
    while (pos_ < s_.size()) {
      char c = s_[pos_];
      auto u = static_cast<unsigned char>(c);
      if (c == '[') {
        int depth = 0;
        for (; pos_ < s_.size(); ++pos_) {
          char d = s_[pos_];
          if (d == '\r' || d == '\n') return Error(Errc::syntax, "unclosed '['");
          if (d == '[') ++depth;
          if (d == ']' && --depth == 0) break;
        }
        if (pos_ >= s_.size()) return Error(Errc::syntax, "unclosed '['");
        ++pos_;
        continue;
      }
      if (c == ' ' || c == '(' || c == ')' || c == '"' || c == '{' || u < 0x20 || u == 0x7f) break;
      ++pos_;
    }
    if (pos_ == start) return Error(Errc::syntax, "expected a token");
    t.kind = Token::Kind::atom;
    t.text = std::string(s_.substr(start, pos_ - start));
    return {};
  }

  std::string_view s_;
  const Limits& limits_;
  std::size_t pos_ = 0;
  std::size_t count_ = 0;
};

bool valid_tag(std::string_view tag) {
  if (tag.empty() || tag.size() > 64) return false;
  return std::all_of(tag.begin(), tag.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7f && c != '(' && c != ')' && c != '{' && c != '"' && c != '\\' &&
           c != '%' && c != '*' && c != '+' && c != ']';
  });
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
  return out;
}

}  // namespace

Result<Command> parse_command(std::string_view text, const Limits& limits, std::string* tag) {
  if (text.size() < 2 || text.substr(text.size() - 2) != "\r\n")
    return Error(Errc::syntax, "command without CRLF");
  std::size_t sp = text.find(' ');
  std::size_t eol = text.size() - 2;
  std::string_view t = text.substr(0, std::min(sp, eol));
  if (!valid_tag(t)) return Error(Errc::syntax, "invalid tag");
  if (tag) *tag = std::string(t);
  if (sp == std::string_view::npos || sp >= eol) return Error(Errc::syntax, "missing command");
  Command cmd;
  cmd.tag = std::string(t);
  Tokenizer tok(text.substr(sp + 1), limits);
  std::vector<Token> all;
  if (auto r = tok.tokens(all, 0); !r) return r.error();
  if (all.empty() || all[0].kind != Token::Kind::atom) return Error(Errc::syntax, "no command");
  cmd.name = upper(all[0].text);
  std::size_t first_arg = 1;
  if (cmd.name == "UID") {
    if (all.size() < 2 || all[1].kind != Token::Kind::atom)
      return Error(Errc::syntax, "UID needs a command");
    cmd.name += " " + upper(all[1].text);
    first_arg = 2;
  }
  cmd.args.assign(std::make_move_iterator(all.begin() + static_cast<std::ptrdiff_t>(first_arg)),
                  std::make_move_iterator(all.end()));
  return cmd;
}

std::optional<uint64_t> parse_number(std::string_view text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size()) return std::nullopt;
  return v;
}

bool SequenceSet::contains(uint32_t n, uint32_t largest) const {
  for (auto r : ranges) {
    uint32_t lo = r.lo == star ? largest : r.lo;
    uint32_t hi = r.hi == star ? largest : r.hi;
    if (lo > hi) std::swap(lo, hi);
    if (n >= lo && n <= hi) return true;
  }
  return false;
}

Result<SequenceSet> parse_sequence_set(std::string_view text, const Limits& limits) {
  SequenceSet set;
  if (text == "$") return Error(Errc::bad_sequence, "SEARCHRES is not supported");
  auto number = [](std::string_view s) -> std::optional<uint32_t> {
    if (s == "*") return star;
    if (s.empty() || s.size() > 10 || s[0] == '0') return std::nullopt;
    uint64_t v = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return std::nullopt;
      v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    if (v == 0 || v >= star) return std::nullopt;
    return static_cast<uint32_t>(v);
  };
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t comma = text.find(',', pos);
    std::string_view item =
        text.substr(pos, comma == std::string_view::npos ? text.npos : comma - pos);
    std::size_t colon = item.find(':');
    auto lo = number(item.substr(0, colon));
    auto hi = colon == std::string_view::npos ? lo : number(item.substr(colon + 1));
    if (!lo || !hi) return Error(Errc::bad_sequence, std::string(item.substr(0, 32)));
    if (set.ranges.size() >= limits.max_ranges) return Error(Errc::too_many, "sequence ranges");
    set.ranges.push_back({*lo, *hi});
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return set;
}

std::string format_set(std::vector<uint32_t> values) {
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  std::string out;
  for (std::size_t i = 0; i < values.size();) {
    std::size_t j = i;
    while (j + 1 < values.size() && values[j + 1] == values[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(values[i]);
    if (j > i) out += ":" + std::to_string(values[j]);
    i = j + 1;
  }
  return out;
}

}  // namespace postern::imap
