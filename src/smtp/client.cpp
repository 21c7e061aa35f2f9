// The client half of SMTP that outbound delivery needs and that has no I/O: reading the
// server's replies, reading its EHLO capabilities, and dot-stuffing the message.
//
// Security: replies come from whatever host the MX records name. Lines and replies are
// bounded; anything that is not a well-formed reply ends the session as a protocol error.
#include <cctype>

#include "smtp/command.hpp"
#include "smtp/smtp.hpp"

namespace postern::smtp {
namespace {
constexpr std::size_t max_reply_line = 4096;
constexpr std::size_t max_reply_lines = 200;
constexpr std::size_t max_reply_bytes = std::size_t{64} * 1024;
}  // namespace

void ReplyReader::feed(std::string_view bytes) {
  if (failed_) return;
  in_.erase(0, pos_);  // what was read is gone: a server cannot grow this over a connection
  pos_ = 0;
  in_.append(bytes);
}

std::optional<Reply> ReplyReader::next() {
  while (!failed_) {
    std::size_t lf = in_.find('\n', pos_);
    if (lf == std::string::npos) {
      if (in_.size() - pos_ > max_reply_line) failed_ = true;
      return std::nullopt;
    }
    std::string_view line(in_.data() + pos_, lf - pos_);
    pos_ = lf + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pending_bytes_ += line.size();
    if (line.size() > max_reply_line || line.size() < 3 || pending_.size() >= max_reply_lines ||
        pending_bytes_ > max_reply_bytes) {
      failed_ = true;
      return std::nullopt;
    }
    int code = 0;
    for (int i = 0; i < 3; ++i) {
      if (!std::isdigit(static_cast<unsigned char>(line[i]))) {
        failed_ = true;
        return std::nullopt;
      }
      code = code * 10 + (line[i] - '0');
    }
    if (code < 200 || code > 599 || (code_ != 0 && code != code_) ||
        (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
      failed_ = true;
      return std::nullopt;
    }
    code_ = code;
    bool last = line.size() == 3 || line[3] == ' ';
    pending_.emplace_back(line.size() > 4 ? line.substr(4) : std::string_view());
    if (!last) continue;

    Reply r;
    r.code = code_;
    lines_ = std::move(pending_);
    pending_.clear();
    pending_bytes_ = 0;
    code_ = 0;
    // An enhanced code (RFC 3463) leads the text when its class matches the reply's.
    std::string_view text = lines_.front();
    std::size_t sp = text.find(' ');
    std::string_view first = text.substr(0, sp);
    bool enhanced = first.size() >= 5 && first[0] == static_cast<char>('0' + r.code / 100) &&
                    first[1] == '.' && first.find_first_not_of("0123456789.") == first.npos;
    if (enhanced) {
      r.enhanced = std::string(first);
      text = sp == text.npos ? std::string_view() : text.substr(sp + 1);
    }
    r.text = std::string(text);
    for (std::size_t i = 1; i < lines_.size(); ++i) {
      std::string_view more = lines_[i];
      if (enhanced && more.starts_with(r.enhanced + " ")) more.remove_prefix(r.enhanced.size() + 1);
      r.text += " ";
      r.text += more;
    }
    return r;
  }
  return std::nullopt;
}

Capabilities parse_ehlo(const std::vector<std::string>& lines) {
  Capabilities c;
  for (std::size_t i = 1; i < lines.size(); ++i) {  // the first line is the greeting
    std::string_view l = lines[i];
    std::string_view kw = l.substr(0, l.find(' '));
    using detail::iequals;
    if (iequals(kw, "PIPELINING"))
      c.pipelining = true;
    else if (iequals(kw, "STARTTLS"))
      c.starttls = true;
    else if (iequals(kw, "8BITMIME"))
      c.eight_bit_mime = true;
    else if (iequals(kw, "SMTPUTF8"))
      c.smtputf8 = true;
    else if (iequals(kw, "REQUIRETLS"))
      c.requiretls = true;
    else if (iequals(kw, "CHUNKING"))
      c.chunking = true;
    else if (iequals(kw, "ENHANCEDSTATUSCODES"))
      c.enhanced_codes = true;
    else if (iequals(kw, "SIZE") && kw.size() < l.size()) {
      auto n = detail::parse_decimal(l.substr(kw.size() + 1));
      if (n) c.size = *n;
    }
  }
  return c;
}

std::string dot_stuff(std::string_view message) {
  std::string out;
  out.reserve(message.size() + message.size() / 64 + 8);
  bool line_start = true;
  for (char c : message) {
    if (line_start && c == '.') out += '.';
    out += c;
    line_start = c == '\n';
  }
  if (!message.empty() && !message.ends_with("\r\n")) out += "\r\n";
  out += ".\r\n";
  return out;
}

}  // namespace postern::smtp
