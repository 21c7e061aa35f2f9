// RFC 5322 3.4 address lists as mail clients write them: display names, angle addresses,
// comments, groups and the obsolete source route. Lenient on purpose (IMAP ENVELOPE must
// describe any header), so callers that decide something from an address (submission's sender
// check) also check the address itself with parse_mailbox.
#include "mime/mime.hpp"

namespace postern::mime {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

ListedAddress parse_one(std::string_view text) {
  ListedAddress a;
  std::string clean = strip_comments(text);
  std::string_view s = trim(clean);
  // '<' outside a quoted string starts the angle address.
  bool quoted = false;
  std::size_t lt = std::string_view::npos;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && quoted)
      ++i;
    else if (s[i] == '"')
      quoted = !quoted;
    else if (s[i] == '<' && !quoted) {
      lt = i;
      break;
    }
  }
  std::string_view spec = s;
  if (lt != std::string_view::npos) {
    std::string name = unquote(s.substr(0, lt));
    if (!name.empty()) a.name = name;
    std::size_t gt = s.find('>', lt);
    spec = s.substr(lt + 1, gt == std::string_view::npos ? s.npos : gt - lt - 1);
    // Obsolete source route "@a,@b:local@domain".
    if (!spec.empty() && spec.front() == '@') {
      std::size_t colon = spec.find(':');
      if (colon != std::string_view::npos) {
        a.adl = std::string(spec.substr(0, colon));
        spec = spec.substr(colon + 1);
      }
    }
  }
  spec = trim(spec);
  std::size_t at = spec.rfind('@');
  if (at == std::string_view::npos) {
    a.mailbox = std::string(spec);
    a.host = ".MISSING-HOST-NAME.";
  } else {
    a.mailbox = std::string(trim(spec.substr(0, at)));
    a.host = std::string(trim(spec.substr(at + 1)));
  }
  return a;
}

ListedAddress group_end() {
  ListedAddress a;
  a.kind = ListedAddress::Kind::group_end;
  return a;
}

}  // namespace

std::string strip_comments(std::string_view s) {
  std::string out;
  int depth = 0;
  bool quoted = false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (quoted) {
      out += c;
      if (c == '\\' && i + 1 < s.size())
        out += s[++i];
      else if (c == '"')
        quoted = false;
      continue;
    }
    if (depth > 0) {
      if (c == '\\')
        ++i;
      else if (c == '(')
        ++depth;
      else if (c == ')')
        --depth;
      continue;
    }
    if (c == '(')
      ++depth;
    else {
      if (c == '"') quoted = true;
      out += c;
    }
  }
  return out;
}

std::string unquote(std::string_view s) {
  s = trim(s);
  if (s.size() < 2 || s.front() != '"' || s.back() != '"') return std::string(s);
  std::string out;
  for (std::size_t i = 1; i + 1 < s.size(); ++i) {
    if (s[i] == '\\' && i + 2 < s.size()) ++i;
    out += s[i];
  }
  return out;
}

std::vector<ListedAddress> parse_address_list(std::string_view s) {
  std::vector<ListedAddress> out;
  std::size_t start = 0;
  bool quoted = false, in_angle = false, in_group = false;
  int comment = 0;
  auto flush = [&](std::size_t end) {
    std::string_view item = trim(s.substr(start, end - start));
    if (!trim(strip_comments(item)).empty()) out.push_back(parse_one(item));
    start = end + 1;
  };
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (quoted) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        quoted = false;
      continue;
    }
    if (comment > 0) {
      if (c == '\\')
        ++i;
      else if (c == '(')
        ++comment;
      else if (c == ')')
        --comment;
      continue;
    }
    if (c == '"')
      quoted = true;
    else if (c == '(')
      ++comment;
    else if (c == '<')
      in_angle = true;
    else if (c == '>')
      in_angle = false;
    else if (c == ',' && !in_angle)
      flush(i);
    else if (c == ':' && !in_angle && !in_group) {
      ListedAddress g;
      g.kind = ListedAddress::Kind::group_start;
      g.group = std::string(trim(unquote(strip_comments(s.substr(start, i - start)))));
      out.push_back(std::move(g));
      in_group = true;
      start = i + 1;
    } else if (c == ';' && in_group && !in_angle) {
      flush(i);
      out.push_back(group_end());
      in_group = false;
    }
  }
  if (start < s.size()) flush(s.size());
  if (in_group) out.push_back(group_end());
  return out;
}

}  // namespace postern::mime
