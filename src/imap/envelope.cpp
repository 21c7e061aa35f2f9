// ENVELOPE and BODYSTRUCTURE (RFC 9051 7.5.2) from header sections and the MIME summary.
//
// Security: header values are hostile; the parsers here are total (every input gives some
// answer) and bounded by the header limits mime/ already enforced. Values go out as quoted
// strings or literals, never spliced raw into the response.
#include <cctype>
#include <map>

#include "base/text.hpp"
#include "imap/imap.hpp"

namespace postern::imap {
namespace {

constexpr int max_message_depth = 8;  // message/rfc822 inside message/rfc822 ...

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string nil_or(const std::optional<std::string>& v) {
  return v ? nstring(*v) : "NIL";
}

// The unfolded value of the first field named `name`, leading white space removed.
std::optional<std::string> field(const mime::HeaderSection& hs, std::string_view name) {
  const mime::Header* h = hs.find(name);
  if (!h) return std::nullopt;
  return std::string(trim(mime::unfold(h->raw_value)));
}

std::string format_address(const mime::ListedAddress& a) {
  return "(" + nil_or(a.name) + " " + nil_or(a.adl) + " " + nil_or(a.mailbox) + " " +
         nil_or(a.host) + ")";
}

// An address-list with groups as IMAP's start/end markers.
std::string address_list(const std::optional<std::string>& value) {
  if (!value) return "NIL";
  std::string out;
  for (const auto& a : mime::parse_address_list(*value)) {
    if (a.kind == mime::ListedAddress::Kind::group_start)
      out += "(NIL NIL " + nstring(a.group) + " NIL)";
    else if (a.kind == mime::ListedAddress::Kind::group_end)
      out += "(NIL NIL NIL NIL)";
    else
      out += format_address(a);
  }
  return out.empty() ? "NIL" : "(" + out + ")";
}

std::string params_list(const ContentType& ct) {
  if (ct.params.empty()) return "NIL";
  std::string out = "(";
  for (std::size_t i = 0; i < ct.params.size(); ++i) {
    if (i) out += ' ';
    out += quote(ct.params[i].first) + " " + quote(ct.params[i].second);
  }
  return out + ")";
}

std::string disposition(const std::optional<std::string>& value) {
  if (!value || trim(*value).empty()) return "NIL";
  // Same grammar as Content-Type without the subtype: reuse the parameter parser.
  std::size_t semi = value->find(';');
  std::string as_type = semi == std::string::npos
                            ? *value + "/x"
                            : value->substr(0, semi) + "/x" + value->substr(semi);
  ContentType d = parse_content_type(as_type);
  return "(" + quote(d.type) + " " + params_list(d) + ")";
}

std::string language(const std::optional<std::string>& value) {
  if (!value || trim(*value).empty()) return "NIL";
  std::vector<std::string> tags;
  std::string v = mime::strip_comments(*value);
  std::size_t pos = 0;
  while (pos <= v.size()) {
    std::size_t comma = v.find(',', pos);
    std::string_view t = trim(std::string_view(v).substr(
        pos, comma == std::string::npos ? std::string::npos : comma - pos));
    if (!t.empty()) tags.emplace_back(t);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  if (tags.empty()) return "NIL";
  if (tags.size() == 1) return quote(tags[0]);
  std::string out = "(";
  for (std::size_t i = 0; i < tags.size(); ++i) out += (i ? " " : "") + quote(tags[i]);
  return out + ")";
}

class Describer {
 public:
  Describer(const mime::Summary& s, std::string_view message, bool extended)
      : s_(s), message_(message), extended_(extended) {
    for (const auto& p : s.parts) by_path_[p.path] = &p;
  }

  std::optional<std::string> top(int depth) {
    return part("", s_.header_section, s_.size - s_.body_offset, s_.body_lines, s_.body_offset,
                depth);
  }

 private:
  std::optional<std::string> part(const std::string& path, std::string_view headers, uint64_t size,
                                  uint64_t lines, uint64_t offset, int depth) {
    auto hs = mime::parse_header_section(headers, mime::HeaderLimits{});
    mime::HeaderSection empty;
    const mime::HeaderSection& h = hs ? *hs : empty;
    auto ct_value = field(h, "Content-Type");
    ContentType ct = ct_value ? parse_content_type(*ct_value) : ContentType{};
    if (!ct_value) ct.params.emplace_back("charset", "us-ascii");
    if (ct.type == "multipart") return multipart(path, ct, h, depth);
    std::string enc = field(h, "Content-Transfer-Encoding").value_or("7BIT");
    std::string out = "(" + quote(ct.type) + " " + quote(ct.subtype) + " " + params_list(ct) + " " +
                      nil_or(field(h, "Content-ID")) + " " +
                      nil_or(field(h, "Content-Description")) + " " + quote(enc) + " " +
                      std::to_string(size);
    if (ct.type == "message" && (ct.subtype == "rfc822" || ct.subtype == "global")) {
      if (message_.empty() || offset + size > message_.size() || depth >= max_message_depth)
        return std::nullopt;
      std::string_view inner = message_.substr(offset, size);
      auto inner_summary = mime::summarize(inner, mime::HeaderLimits{});
      if (!inner_summary) return std::nullopt;
      Describer d(*inner_summary, inner, extended_);
      auto body = d.top(depth + 1);
      if (!body) return std::nullopt;
      out +=
          " " + envelope(inner_summary->header_section) + " " + *body + " " + std::to_string(lines);
    } else if (ct.type == "text") {
      out += " " + std::to_string(lines);
    }
    if (extended_) {
      out += " " + nil_or(field(h, "Content-MD5")) + " " +
             disposition(field(h, "Content-Disposition")) + " " +
             language(field(h, "Content-Language")) + " " + nil_or(field(h, "Content-Location"));
    }
    return out + ")";
  }

  std::optional<std::string> multipart(const std::string& path, const ContentType& ct,
                                       const mime::HeaderSection& h, int depth) {
    std::string out = "(";
    bool any = false;
    for (uint32_t k = 1;; ++k) {
      std::string child = path.empty() ? std::to_string(k) : path + "." + std::to_string(k);
      auto it = by_path_.find(child);
      if (it == by_path_.end()) break;
      const mime::Part& p = *it->second;
      auto d = part(child, p.headers, p.body_size, p.body_lines, p.body_offset, depth);
      if (!d) return std::nullopt;
      out += *d;
      any = true;
    }
    if (!any) {
      // A summary without parts (older format) or an empty multipart: the content decides.
      if (path.empty() && s_.parts.empty() && !message_.empty() && !resummarized_) {
        auto again = mime::summarize(message_, mime::HeaderLimits{});
        if (again && !again->parts.empty()) {
          Describer d(*again, message_, extended_);
          d.resummarized_ = true;
          return d.top(depth);
        }
      }
      if (path.empty() && s_.parts.empty() && message_.empty()) return std::nullopt;
      out += "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)";
    }
    out += " " + quote(ct.subtype);
    if (extended_) {
      out += " " + params_list(ct) + " " + disposition(field(h, "Content-Disposition")) + " " +
             language(field(h, "Content-Language")) + " " + nil_or(field(h, "Content-Location"));
    }
    return out + ")";
  }

  const mime::Summary& s_;
  std::string_view message_;
  bool extended_;
  bool resummarized_ = false;
  std::map<std::string, const mime::Part*> by_path_;
};

int b64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

std::string ContentType::param(std::string_view name) const {
  for (const auto& [k, v] : params)
    if (base::ascii_lower(k) == base::ascii_lower(name)) return v;
  return {};
}

ContentType parse_content_type(std::string_view value) {
  ContentType ct;
  std::string v = mime::strip_comments(value);
  std::string_view s = trim(v);
  std::size_t semi = s.find(';');
  std::string_view type = trim(s.substr(0, semi));
  std::size_t slash = type.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == type.size()) {
    // RFC 2045 5.2: an invalid Content-Type means text/plain; charset=us-ascii.
    ct.params.emplace_back("charset", "us-ascii");
    return ct;
  }
  ct.type = base::ascii_lower(trim(type.substr(0, slash)));
  ct.subtype = base::ascii_lower(trim(type.substr(slash + 1)));
  std::size_t pos = semi;
  while (pos != std::string_view::npos && pos < s.size() && ct.params.size() < 64) {
    std::size_t start = pos + 1;
    std::size_t eq = s.find('=', start);
    if (eq == std::string_view::npos) break;
    std::string name(trim(s.substr(start, eq - start)));
    std::size_t vs = eq + 1;
    while (vs < s.size() && (s[vs] == ' ' || s[vs] == '\t')) ++vs;
    std::string val;
    std::size_t next;
    if (vs < s.size() && s[vs] == '"') {
      std::size_t i = vs + 1;
      for (; i < s.size() && s[i] != '"'; ++i) {
        if (s[i] == '\\' && i + 1 < s.size()) ++i;
        val += s[i];
      }
      next = s.find(';', i);
    } else {
      next = s.find(';', vs);
      val = std::string(trim(s.substr(vs, next == std::string_view::npos ? s.npos : next - vs)));
    }
    if (!name.empty()) ct.params.emplace_back(base::ascii_lower(name), val);
    pos = next;
  }
  return ct;
}

std::string envelope(std::string_view header_section) {
  auto hs = mime::parse_header_section(header_section, mime::HeaderLimits{});
  mime::HeaderSection empty;
  const mime::HeaderSection& h = hs ? *hs : empty;
  auto from = field(h, "From");
  auto sender = field(h, "Sender");
  auto reply_to = field(h, "Reply-To");
  if (!sender || sender->empty()) sender = from;
  if (!reply_to || reply_to->empty()) reply_to = from;
  return "(" + nil_or(field(h, "Date")) + " " + nil_or(field(h, "Subject")) + " " +
         address_list(from) + " " + address_list(sender) + " " + address_list(reply_to) + " " +
         address_list(field(h, "To")) + " " + address_list(field(h, "Cc")) + " " +
         address_list(field(h, "Bcc")) + " " + nil_or(field(h, "In-Reply-To")) + " " +
         nil_or(field(h, "Message-ID")) + ")";
}

std::optional<std::string> body_structure(const mime::Summary& summary, std::string_view message,
                                          bool extended) {
  Describer d(summary, message, extended);
  return d.top(0);
}

std::optional<std::string> decode_transfer_encoding(std::string_view encoding,
                                                    std::string_view body) {
  std::string enc = base::ascii_lower(trim(encoding));
  if (enc.empty() || enc == "7bit" || enc == "8bit" || enc == "binary") return std::string(body);
  std::string out;
  if (enc == "base64") {
    uint32_t bits = 0;
    int nbits = 0;
    for (char c : body) {
      if (c == '=') break;
      int v = b64_value(c);
      if (v < 0) continue;  // line breaks and stray characters
      bits = (bits << 6) | static_cast<uint32_t>(v);
      nbits += 6;
      if (nbits >= 8) {
        nbits -= 8;
        out += static_cast<char>((bits >> nbits) & 0xff);
      }
    }
    return out;
  }
  if (enc == "quoted-printable") {
    for (std::size_t i = 0; i < body.size(); ++i) {
      char c = body[i];
      if (c != '=') {
        out += c;
        continue;
      }
      if (i + 2 < body.size() + 0 && body[i + 1] == '\r' && body[i + 2] == '\n') {
        i += 2;  // soft line break
      } else if (i + 1 < body.size() && body[i + 1] == '\n') {
        i += 1;
      } else if (i + 2 < body.size() && hex_value(body[i + 1]) >= 0 &&
                 hex_value(body[i + 2]) >= 0) {
        out += static_cast<char>(hex_value(body[i + 1]) * 16 + hex_value(body[i + 2]));
        i += 2;
      } else {
        out += c;
      }
    }
    return out;
  }
  return std::nullopt;
}

}  // namespace postern::imap
