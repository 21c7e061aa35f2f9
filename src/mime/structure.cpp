// MIME structure (RFC 2045 5.1 Content-Type parameters, RFC 2046 5.1 multipart bodies).
//
// Security: the body is hostile. Depth and part count are bounded; a missing or malformed
// boundary makes the part a plain body rather than an error, as mail readers do.
#include <algorithm>
#include <cctype>

#include "base/text.hpp"
#include "mime/mime.hpp"

namespace postern::mime {
namespace {

uint64_t count_lines(std::string_view body) {
  uint64_t lines = static_cast<uint64_t>(std::count(body.begin(), body.end(), '\n'));
  if (!body.empty() && body.back() != '\n') ++lines;
  return lines;
}

std::string content_type(std::string_view headers) {
  auto hs = parse_header_section(headers, HeaderLimits{});
  if (!hs) return {};
  const Header* h = hs->find("Content-Type");
  return h ? unfold(h->raw_value) : std::string();
}

bool is_multipart(std::string_view ct) {
  auto b = ct.find_first_not_of(" \t");
  return b != std::string_view::npos && ct.size() - b >= 10 &&
         base::iequals(ct.substr(b, 10), "multipart/");
}

// A delimiter line: "--" boundary, optionally "--" (close), then optional white space.
enum class Delimiter { none, open, close };
Delimiter delimiter(std::string_view line, std::string_view boundary) {
  if (line.size() < boundary.size() + 2 || line.substr(0, 2) != "--" ||
      line.substr(2, boundary.size()) != boundary)
    return Delimiter::none;
  std::string_view rest = line.substr(2 + boundary.size());
  Delimiter d = Delimiter::open;
  if (rest.substr(0, 2) == "--") {
    d = Delimiter::close;
    rest.remove_prefix(2);
  }
  return rest.find_first_not_of(" \t") == std::string_view::npos ? d : Delimiter::none;
}

}  // namespace

std::string multipart_boundary(std::string_view ct) {
  // Parameters follow ';': name=token or name="quoted string" (RFC 2045 5.1).
  std::size_t pos = ct.find(';');
  while (pos != std::string_view::npos) {
    std::size_t start = ct.find_first_not_of(" \t", pos + 1);
    if (start == std::string_view::npos) break;
    std::size_t eq = ct.find('=', start);
    if (eq == std::string_view::npos) break;
    std::string_view name = ct.substr(start, eq - start);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
    std::size_t vstart = ct.find_first_not_of(" \t", eq + 1);
    if (vstart == std::string_view::npos) break;
    std::string value;
    std::size_t next;
    if (ct[vstart] == '"') {
      std::size_t i = vstart + 1;
      for (; i < ct.size() && ct[i] != '"'; ++i) {
        if (ct[i] == '\\' && i + 1 < ct.size()) ++i;
        value += ct[i];
      }
      next = ct.find(';', i);
    } else {
      next = ct.find(';', vstart);
      std::string_view v =
          ct.substr(vstart, next == std::string_view::npos ? ct.npos : next - vstart);
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
      value = std::string(v);
    }
    // RFC 2046 5.1.1: 1 to 70 characters.
    if (base::iequals(name, "boundary")) return value.size() <= 70 ? value : std::string();
    pos = next;
  }
  return {};
}

void parse_structure(std::string_view message, std::string_view headers, std::string_view body,
                     const std::string& path, const StructureLimits& limits,
                     std::vector<Part>& out) {
  std::size_t depth =
      path.empty() ? 0 : static_cast<std::size_t>(std::count(path.begin(), path.end(), '.')) + 1;
  if (depth >= limits.max_depth) return;
  std::string ct = content_type(headers);
  if (!is_multipart(ct)) return;
  std::string boundary = multipart_boundary(ct);
  if (boundary.empty()) return;

  // Walk the lines; a part runs from after one delimiter line to the CRLF before the next
  // (that CRLF belongs to the delimiter, RFC 2046 5.1.1).
  std::vector<std::pair<std::size_t, std::size_t>> ranges;  // [begin, end) within body
  std::size_t pos = 0;
  std::size_t part_begin = std::string_view::npos;
  while (pos < body.size()) {
    std::size_t eol = body.find("\r\n", pos);
    std::size_t line_end = eol == std::string_view::npos ? body.size() : eol;
    Delimiter d = delimiter(body.substr(pos, line_end - pos), boundary);
    if (d != Delimiter::none) {
      if (part_begin != std::string_view::npos) {
        std::size_t end = pos >= 2 ? pos - 2 : pos;
        ranges.emplace_back(part_begin, std::max(end, part_begin));
      }
      if (d == Delimiter::close) {
        part_begin = std::string_view::npos;
        break;
      }
      part_begin = eol == std::string_view::npos ? body.size() : eol + 2;
    }
    if (eol == std::string_view::npos) break;
    pos = eol + 2;
  }
  // No close delimiter: the last part runs to the end.
  if (part_begin != std::string_view::npos) ranges.emplace_back(part_begin, body.size());

  uint32_t n = 0;
  for (auto [b, e] : ranges) {
    if (out.size() >= limits.max_parts) break;
    std::string_view part = body.substr(b, e - b);
    auto hs = parse_header_section(part, HeaderLimits{});
    std::size_t body_start = hs ? hs->body_offset : 0;
    Part p;
    p.path = path.empty() ? std::to_string(++n) : path + "." + std::to_string(++n);
    p.headers = std::string(part.substr(0, body_start));
    std::string_view part_body = part.substr(body_start);
    p.body_offset = static_cast<uint64_t>(part_body.data() - message.data());
    p.body_size = part_body.size();
    p.body_lines = count_lines(part_body);
    std::size_t index = out.size();
    out.push_back(std::move(p));
    std::size_t before = out.size();
    // A copy: the recursion appends to `out`, which may move out[index].
    const std::string child_path = out[index].path;
    parse_structure(message, part.substr(0, body_start), part_body, child_path, limits, out);
    // Direct children are those whose path has exactly one more component.
    uint32_t children = 0;
    for (std::size_t i = before; i < out.size(); ++i)
      if (std::count(out[i].path.begin(), out[i].path.end(), '.') ==
          std::count(child_path.begin(), child_path.end(), '.') + 1)
        ++children;
    out[index].children = children;
  }
}

}  // namespace postern::mime
