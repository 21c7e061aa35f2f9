// RFC 5321 4.2 reply lines with RFC 2034/3463 enhanced status codes.
#include "smtp/smtp.hpp"

namespace postern::smtp {

std::string format_reply(int code, std::string_view enhanced,
                         const std::vector<std::string>& lines) {
  std::string out;
  std::string c = std::to_string(code);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    out += c;
    out += i + 1 == lines.size() ? ' ' : '-';
    if (!enhanced.empty()) {
      out += enhanced;
      out += ' ';
    }
    out += lines[i];
    out += "\r\n";
  }
  return out;
}

std::string format_reply(const Reply& r) {
  return format_reply(r.code, r.enhanced, {r.text});
}

}  // namespace postern::smtp
