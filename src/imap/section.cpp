// FETCH body sections (RFC 9051 6.4.5): naming, locating and extracting parts of a message.
//
// Security: part paths are bounded (depth and numbers), and locating a part walks only the
// structure the message really has.
#include <cctype>

#include "imap/imap.hpp"

namespace postern::imap {
namespace {

constexpr std::size_t max_path_depth = 32;

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// A part being located: its MIME header section and its content.
struct View {
  std::string_view headers;
  std::string_view body;
  bool root = true;  // a whole message (headers are its header section)
};

View whole(std::string_view message) {
  auto hs = mime::parse_header_section(message, mime::HeaderLimits{});
  std::size_t off = hs ? std::min(hs->body_offset, message.size()) : 0;
  return {message.substr(0, off), message.substr(off), true};
}

ContentType type_of(std::string_view headers) {
  auto hs = mime::parse_header_section(headers, mime::HeaderLimits{});
  const mime::Header* h = hs ? hs->find("Content-Type") : nullptr;
  return h ? parse_content_type(mime::unfold(h->raw_value)) : ContentType{};
}

bool is_message(const ContentType& ct) {
  return ct.type == "message" && (ct.subtype == "rfc822" || ct.subtype == "global");
}

std::optional<View> locate(std::string_view message, const std::vector<uint32_t>& path) {
  View cur = whole(message);
  for (uint32_t k : path) {
    ContentType ct = type_of(cur.headers);
    if (!cur.root && is_message(ct)) {
      cur = whole(cur.body);
      ct = type_of(cur.headers);
    }
    if (ct.type == "multipart") {
      std::vector<mime::Part> parts;
      mime::StructureLimits limits;
      limits.max_depth = 1;
      mime::parse_structure(cur.body, cur.headers, cur.body, "", limits, parts);
      if (k > parts.size()) return std::nullopt;
      const mime::Part& p = parts[k - 1];
      // Part.headers is a copy; find the same bytes inside the body to keep views.
      std::size_t hstart = p.body_offset - p.headers.size();
      cur = {cur.body.substr(hstart, p.headers.size()), cur.body.substr(p.body_offset, p.body_size),
             false};
    } else {
      if (k != 1) return std::nullopt;
      cur.root = false;
    }
  }
  return cur;
}

}  // namespace

std::string Section::label() const {
  std::string out;
  for (uint32_t p : path) {
    if (!out.empty()) out += '.';
    out += std::to_string(p);
  }
  auto add = [&](std::string_view s) {
    if (!out.empty()) out += '.';
    out += s;
  };
  switch (what) {
    case What::all:
      break;
    case What::header:
      add("HEADER");
      break;
    case What::text:
      add("TEXT");
      break;
    case What::mime:
      add("MIME");
      break;
    case What::header_fields:
    case What::header_fields_not: {
      add(what == What::header_fields ? "HEADER.FIELDS (" : "HEADER.FIELDS.NOT (");
      for (std::size_t i = 0; i < fields.size(); ++i) out += (i ? " " : "") + fields[i];
      out += ')';
      break;
    }
  }
  return out;
}

Result<Section> parse_section(std::string_view spec, const Limits& limits) {
  Section s;
  std::size_t pos = 0;
  while (pos < spec.size() && std::isdigit(static_cast<unsigned char>(spec[pos]))) {
    std::size_t end = pos;
    uint64_t v = 0;
    while (end < spec.size() && std::isdigit(static_cast<unsigned char>(spec[end]))) {
      v = v * 10 + static_cast<uint64_t>(spec[end] - '0');
      if (v > 0xffffff) return Error(Errc::syntax, "part number too large");
      ++end;
    }
    if (v == 0) return Error(Errc::syntax, "part number 0");
    if (s.path.size() >= max_path_depth) return Error(Errc::too_deep, "part path");
    s.path.push_back(static_cast<uint32_t>(v));
    pos = end;
    if (pos < spec.size()) {
      if (spec[pos] != '.') return Error(Errc::syntax, "bad part path");
      ++pos;
      if (pos == spec.size()) return Error(Errc::syntax, "bad part path");
    }
  }
  std::string rest = upper(spec.substr(pos));
  if (rest.empty()) return s;
  if (rest == "HEADER")
    s.what = Section::What::header;
  else if (rest == "TEXT")
    s.what = Section::What::text;
  else if (rest == "MIME" && !s.path.empty())
    s.what = Section::What::mime;
  else if (rest.starts_with("HEADER.FIELDS")) {
    std::string_view r(rest);
    r.remove_prefix(13);
    s.what = Section::What::header_fields;
    if (r.starts_with(".NOT")) {
      s.what = Section::What::header_fields_not;
      r.remove_prefix(4);
    }
    if (r.size() < 3 || r[0] != ' ' || r[1] != '(' || r.back() != ')')
      return Error(Errc::syntax, "HEADER.FIELDS needs a list");
    r = r.substr(2, r.size() - 3);
    std::size_t p = 0;
    while (p < r.size()) {
      std::size_t sp = r.find(' ', p);
      std::string_view f = r.substr(p, sp == std::string_view::npos ? r.npos : sp - p);
      if (f.size() >= 2 && f.front() == '"' && f.back() == '"') f = f.substr(1, f.size() - 2);
      if (f.empty()) return Error(Errc::syntax, "empty field name");
      for (char c : f)
        if (static_cast<unsigned char>(c) <= ' ' || c == ':' || static_cast<unsigned char>(c) > 126)
          return Error(Errc::syntax, "bad field name");
      if (s.fields.size() >= limits.max_tokens) return Error(Errc::too_many, "field names");
      s.fields.emplace_back(f);
      if (sp == std::string_view::npos) break;
      p = sp + 1;
    }
    if (s.fields.empty()) return Error(Errc::syntax, "HEADER.FIELDS needs names");
  } else {
    return Error(Errc::syntax, "unknown section");
  }
  return s;
}

std::string filter_headers(std::string_view section, const std::vector<std::string>& names,
                           bool keep) {
  auto hs = mime::parse_header_section(section, mime::HeaderLimits{});
  std::string out;
  if (hs) {
    for (const auto& h : hs->headers) {
      bool listed = false;
      for (const auto& n : names)
        if (upper(h.name) == n) listed = true;
      if (listed != keep) continue;
      std::size_t begin = static_cast<std::size_t>(h.name.data() - section.data());
      std::size_t end =
          static_cast<std::size_t>(h.raw_value.data() + h.raw_value.size() - section.data());
      out += section.substr(begin, end - begin);
      out += "\r\n";
    }
  }
  out += "\r\n";
  return out;
}

std::optional<std::string> section_bytes(std::string_view message, const Section& s) {
  if (s.path.empty()) {
    View v = whole(message);
    switch (s.what) {
      case Section::What::all:
        return std::string(message);
      case Section::What::header:
        return std::string(v.headers);
      case Section::What::text:
        return std::string(v.body);
      case Section::What::header_fields:
      case Section::What::header_fields_not:
        return filter_headers(v.headers, s.fields, s.what == Section::What::header_fields);
      case Section::What::mime:
        return std::nullopt;
    }
  }
  auto v = locate(message, s.path);
  if (!v) return std::nullopt;
  switch (s.what) {
    case Section::What::all:
      return std::string(v->body);
    case Section::What::mime:
      return std::string(v->headers);
    default:
      break;
  }
  // HEADER/TEXT/HEADER.FIELDS of a part: the part must be an encapsulated message.
  if (!is_message(type_of(v->headers))) return std::nullopt;
  View inner = whole(v->body);
  if (s.what == Section::What::header) return std::string(inner.headers);
  if (s.what == Section::What::text) return std::string(inner.body);
  return filter_headers(inner.headers, s.fields, s.what == Section::What::header_fields);
}

std::optional<std::string> binary_bytes(std::string_view message, const Section& s,
                                        bool* unknown_cte) {
  *unknown_cte = false;
  if (s.what != Section::What::all) return std::nullopt;
  View v = s.path.empty() ? whole(message) : View{};
  if (!s.path.empty()) {
    auto located = locate(message, s.path);
    if (!located) return std::nullopt;
    v = *located;
  }
  auto hs = mime::parse_header_section(v.headers, mime::HeaderLimits{});
  const mime::Header* h = hs ? hs->find("Content-Transfer-Encoding") : nullptr;
  std::string enc = h ? mime::unfold(h->raw_value) : std::string();
  auto decoded = decode_transfer_encoding(enc, v.body);
  if (!decoded) *unknown_cte = true;
  return decoded;
}

}  // namespace postern::imap
