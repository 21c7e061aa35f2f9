// The SEARCH language (RFC 9051 6.4.4, ESEARCH RFC 4731, CONDSTORE's MODSEQ RFC 7162 3.1.5):
// parsing into a tree and evaluating it against one message.
//
// Security: the number of keys is bounded (max_search_keys), which also bounds the recursion
// of NOT/OR chains; list nesting is bounded by the tokenizer.
#include <algorithm>
#include <cctype>
#include <map>

#include "imap/imap.hpp"

namespace postern::imap {
namespace {

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

bool icontains(std::string_view hay, std::string_view needle) {
  if (needle.empty()) return true;
  auto it = std::search(hay.begin(), hay.end(), needle.begin(), needle.end(), [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) ==
           std::tolower(static_cast<unsigned char>(b));
  });
  return it != hay.end();
}

using Op = SearchKey::Op;

const std::map<std::string, Op, std::less<>>& simple_keys() {
  static const std::map<std::string, Op, std::less<>> m = {{"ALL", Op::all},
                                                           {"ANSWERED", Op::answered},
                                                           {"DELETED", Op::deleted},
                                                           {"DRAFT", Op::draft},
                                                           {"FLAGGED", Op::flagged},
                                                           {"SEEN", Op::seen},
                                                           {"RECENT", Op::recent},
                                                           {"NEW", Op::new_},
                                                           {"OLD", Op::old},
                                                           {"UNANSWERED", Op::unanswered},
                                                           {"UNDELETED", Op::undeleted},
                                                           {"UNDRAFT", Op::undraft},
                                                           {"UNFLAGGED", Op::unflagged},
                                                           {"UNSEEN", Op::unseen}};
  return m;
}

const std::map<std::string, Op, std::less<>>& date_keys() {
  static const std::map<std::string, Op, std::less<>> m = {
      {"BEFORE", Op::before},         {"ON", Op::on},         {"SINCE", Op::since},
      {"SENTBEFORE", Op::sentbefore}, {"SENTON", Op::senton}, {"SENTSINCE", Op::sentsince}};
  return m;
}

class Parser {
 public:
  Parser(const std::vector<Token>& t, std::size_t pos, const Limits& l, SearchProgram& p)
      : t_(t), pos_(pos), limits_(l), prog_(p) {}

  Result<void> all(std::vector<SearchKey>& out) {
    while (pos_ < t_.size()) {
      SearchKey k;
      if (auto r = key(k); !r) return r;
      out.push_back(std::move(k));
    }
    return {};
  }

 private:
  Result<std::string> string_arg() {
    if (pos_ >= t_.size() || t_[pos_].kind == Token::Kind::list)
      return Error(Errc::syntax, "search key needs a string");
    return t_[pos_++].text;
  }

  Result<void> key(SearchKey& k) {
    if (++count_ > limits_.max_search_keys) return Error(Errc::too_many, "search keys");
    if (pos_ >= t_.size()) return Error(Errc::syntax, "missing search key");
    const Token& tok = t_[pos_++];
    if (tok.kind == Token::Kind::list) {
      k.op = Op::and_;
      Parser sub(tok.items, 0, limits_, prog_);
      sub.count_ = count_;
      if (auto r = sub.all(k.children); !r) return r;
      count_ = sub.count_;
      if (k.children.empty()) return Error(Errc::syntax, "empty search list");
      return {};
    }
    if (tok.kind != Token::Kind::atom) return Error(Errc::syntax, "search key expected");
    std::string name = upper(tok.text);
    if (auto it = simple_keys().find(name); it != simple_keys().end()) {
      k.op = it->second;
      return {};
    }
    if (auto it = date_keys().find(name); it != date_keys().end()) {
      k.op = it->second;
      auto s = string_arg();
      if (!s) return s.error();
      auto d = parse_date(*s);
      if (!d) return Error(Errc::syntax, "bad date");
      k.num = *d;
      if (name.starts_with("SENT")) prog_.needs_headers = true;
      return {};
    }
    if (name == "FROM" || name == "TO" || name == "CC" || name == "BCC" || name == "SUBJECT") {
      k.op = Op::header;
      k.arg = name;
      auto s = string_arg();
      if (!s) return s.error();
      k.arg2 = *s;
      prog_.needs_headers = true;
      return {};
    }
    if (name == "HEADER") {
      k.op = Op::header;
      auto f = string_arg();
      if (!f) return f.error();
      auto v = string_arg();
      if (!v) return v.error();
      k.arg = *f;
      k.arg2 = *v;
      prog_.needs_headers = true;
      return {};
    }
    if (name == "BODY" || name == "TEXT") {
      k.op = name == "BODY" ? Op::body : Op::text;
      auto s = string_arg();
      if (!s) return s.error();
      k.arg = *s;
      prog_.needs_body = true;
      return {};
    }
    if (name == "KEYWORD" || name == "UNKEYWORD") {
      k.op = name == "KEYWORD" ? Op::keyword : Op::unkeyword;
      auto s = string_arg();
      if (!s) return s.error();
      k.arg = *s;
      return {};
    }
    if (name == "LARGER" || name == "SMALLER" || name == "MODSEQ") {
      k.op = name == "LARGER" ? Op::larger : name == "SMALLER" ? Op::smaller : Op::modseq;
      if (name == "MODSEQ") {
        prog_.uses_modseq = true;
        // Optional entry name and type (RFC 7162): "/flags/\\seen" all; accepted, ignored.
        if (pos_ + 2 < t_.size() && t_[pos_].kind == Token::Kind::string) pos_ += 2;
      }
      auto s = string_arg();
      if (!s) return s.error();
      auto v = parse_number(*s);
      if (!v) return Error(Errc::syntax, "bad number");
      k.num = static_cast<int64_t>(std::min<uint64_t>(*v, INT64_MAX));
      return {};
    }
    if (name == "NOT") {
      k.op = Op::not_;
      k.children.emplace_back();
      return key(k.children.back());
    }
    if (name == "OR") {
      k.op = Op::or_;
      k.children.resize(2);
      if (auto r = key(k.children[0]); !r) return r;
      return key(k.children[1]);
    }
    if (name == "UID") {
      k.op = Op::uid;
      auto s = string_arg();
      if (!s) return s.error();
      auto set = parse_sequence_set(*s, limits_);
      if (!set) return set.error();
      k.set = std::move(*set);
      return {};
    }
    if (!name.empty() && ((name[0] >= '0' && name[0] <= '9') || name[0] == '*')) {
      k.op = Op::seqset;
      auto set = parse_sequence_set(tok.text, limits_);
      if (!set) return set.error();
      k.set = std::move(*set);
      return {};
    }
    return Error(Errc::unknown_search_key, name.substr(0, 32));
  }

  const std::vector<Token>& t_;
  std::size_t pos_;
  const Limits& limits_;
  SearchProgram& prog_;
  std::size_t count_ = 0;
};

// RFC 5322 3.3 date-time, leniently: [day-name ","] day month year [time [zone]] -> the day
// (unix seconds of its UTC midnight in the sender's calendar, as SENTON requires).
std::optional<int64_t> sent_day(std::string_view date) {
  std::string d;
  for (char c : date) d += (c == ',' ? ' ' : c);
  std::vector<std::string_view> words;
  std::string_view s = d;
  std::size_t pos = 0;
  while (pos < s.size() && words.size() < 8) {
    std::size_t b = s.find_first_not_of(" \t", pos);
    if (b == std::string_view::npos) break;
    std::size_t e = s.find_first_of(" \t", b);
    words.push_back(s.substr(b, e == std::string_view::npos ? s.npos : e - b));
    pos = e == std::string_view::npos ? s.size() : e;
  }
  std::size_t i = 0;
  if (!words.empty() && !words[0].empty() && std::isalpha(static_cast<unsigned char>(words[0][0])))
    ++i;
  if (words.size() < i + 3) return std::nullopt;
  std::string day_month_year =
      std::string(words[i]) + "-" + std::string(words[i + 1]) + "-" + std::string(words[i + 2]);
  return parse_date(day_month_year);
}

// Header values are compared after RFC 2047 decoding: users search for what they read.
bool header_contains(std::string_view header_section, std::string_view name,
                     std::string_view value) {
  auto hs = mime::parse_header_section(header_section, mime::HeaderLimits{});
  if (!hs) return false;
  for (const auto& h : hs->headers) {
    if (h.name.size() != name.size() || !icontains(h.name, name)) continue;
    if (icontains(mime::decode_header_value(mime::unfold(h.raw_value)), value)) return true;
  }
  return false;
}

// The text parts of a message with their transfer encoding undone, in UTF-8.
std::string searchable_text(std::string_view message) {
  auto sum = mime::summarize(message, mime::HeaderLimits{});
  if (!sum) return {};
  std::string out;
  auto add = [&](std::string_view headers, std::string_view body) {
    auto hs = mime::parse_header_section(headers, mime::HeaderLimits{});
    const mime::Header* ct_h = hs ? hs->find("Content-Type") : nullptr;
    ContentType ct = ct_h ? parse_content_type(mime::unfold(ct_h->raw_value)) : ContentType{};
    if (ct.type != "text") return;
    const mime::Header* cte = hs ? hs->find("Content-Transfer-Encoding") : nullptr;
    auto decoded = decode_transfer_encoding(cte ? mime::unfold(cte->raw_value) : "", body);
    if (!decoded) return;
    auto utf8 = mime::to_utf8(ct.param("charset"), *decoded);
    out += utf8 ? *utf8 : *decoded;
    out += '\n';
  };
  if (sum->parts.empty()) {
    add(sum->header_section, message.substr(std::min<uint64_t>(sum->body_offset, message.size())));
  } else {
    for (const auto& p : sum->parts)
      if (p.children == 0 && p.body_offset + p.body_size <= message.size())
        add(p.headers, message.substr(p.body_offset, p.body_size));
  }
  return out;
}

std::string decoded_headers(std::string_view message) {
  auto hs = mime::parse_header_section(message, mime::HeaderLimits{});
  if (!hs) return {};
  return mime::decode_header_value(message.substr(0, hs->body_offset));
}

std::optional<std::string> first_header(std::string_view header_section, std::string_view name) {
  auto hs = mime::parse_header_section(header_section, mime::HeaderLimits{});
  if (!hs) return std::nullopt;
  const mime::Header* h = hs->find(name);
  if (!h) return std::nullopt;
  return mime::unfold(h->raw_value);
}

}  // namespace

Result<SearchProgram> parse_search(const std::vector<Token>& args, const Limits& limits) {
  SearchProgram prog;
  std::size_t pos = 0;
  if (pos < args.size() && args[pos].kind == Token::Kind::atom &&
      upper(args[pos].text) == "RETURN") {
    if (pos + 1 >= args.size() || args[pos + 1].kind != Token::Kind::list)
      return Error(Errc::syntax, "RETURN needs a list");
    prog.esearch = true;
    for (const auto& o : args[pos + 1].items) {
      std::string name = upper(o.text);
      if (name != "MIN" && name != "MAX" && name != "COUNT" && name != "ALL")
        return Error(Errc::syntax, "unknown RETURN option");
      prog.returns.push_back(name);
    }
    if (prog.returns.empty()) prog.returns.push_back("ALL");
    pos += 2;
  }
  if (pos < args.size() && args[pos].kind == Token::Kind::atom &&
      upper(args[pos].text) == "CHARSET") {
    if (pos + 1 >= args.size()) return Error(Errc::syntax, "CHARSET needs a name");
    std::string cs = upper(args[pos + 1].text);
    if (cs != "UTF-8" && cs != "US-ASCII") return Error(Errc::syntax, "BADCHARSET");
    pos += 2;
  }
  prog.root.op = Op::and_;
  Parser p(args, pos, limits, prog);
  if (auto r = p.all(prog.root.children); !r) return r.error();
  if (prog.root.children.empty()) return Error(Errc::syntax, "empty search");
  return prog;
}

bool matches(const SearchKey& k, const SearchSubject& m) {
  switch (k.op) {
    case Op::all:
      return true;
    case Op::and_:
      return std::all_of(k.children.begin(), k.children.end(),
                         [&](const SearchKey& c) { return matches(c, m); });
    case Op::or_:
      return matches(k.children[0], m) || matches(k.children[1], m);
    case Op::not_:
      return !matches(k.children[0], m);
    case Op::answered:
      return has_flag(m.flags, "\\Answered");
    case Op::deleted:
      return has_flag(m.flags, "\\Deleted");
    case Op::draft:
      return has_flag(m.flags, "\\Draft");
    case Op::flagged:
      return has_flag(m.flags, "\\Flagged");
    case Op::seen:
      return has_flag(m.flags, "\\Seen");
    case Op::recent:
      return m.recent;
    case Op::new_:
      return m.recent && !has_flag(m.flags, "\\Seen");
    case Op::old:
      return !m.recent;
    case Op::unanswered:
      return !has_flag(m.flags, "\\Answered");
    case Op::undeleted:
      return !has_flag(m.flags, "\\Deleted");
    case Op::undraft:
      return !has_flag(m.flags, "\\Draft");
    case Op::unflagged:
      return !has_flag(m.flags, "\\Flagged");
    case Op::unseen:
      return !has_flag(m.flags, "\\Seen");
    case Op::keyword:
      return has_flag(m.flags, k.arg);
    case Op::unkeyword:
      return !has_flag(m.flags, k.arg);
    case Op::before:
      return m.internal_date < k.num;
    case Op::on:
      return m.internal_date >= k.num && m.internal_date < k.num + 86400;
    case Op::since:
      return m.internal_date >= k.num;
    case Op::sentbefore:
    case Op::senton:
    case Op::sentsince: {
      auto date = first_header(m.header_section, "Date");
      auto day = date ? sent_day(*date) : std::nullopt;
      if (!day) return false;
      if (k.op == Op::sentbefore) return *day < k.num;
      if (k.op == Op::senton) return *day == k.num;
      return *day >= k.num;
    }
    case Op::larger:
      return m.size > static_cast<uint64_t>(k.num);
    case Op::smaller:
      return m.size < static_cast<uint64_t>(k.num);
    case Op::header:
      return header_contains(m.header_section, k.arg, k.arg2);
    case Op::body: {
      auto hs = mime::parse_header_section(m.message, mime::HeaderLimits{});
      std::size_t off = hs ? hs->body_offset : 0;
      if (icontains(m.message.substr(std::min(off, m.message.size())), k.arg)) return true;
      return icontains(searchable_text(m.message), k.arg);
    }
    case Op::text:
      if (icontains(m.message, k.arg)) return true;
      return icontains(decoded_headers(m.message), k.arg) ||
             icontains(searchable_text(m.message), k.arg);
    case Op::uid:
      return k.set.contains(m.uid, m.largest_uid);
    case Op::seqset:
      return k.set.contains(m.seq, m.largest_seq);
    case Op::modseq:
      return m.modseq >= static_cast<uint64_t>(k.num);
  }
  return false;
}

}  // namespace postern::imap
