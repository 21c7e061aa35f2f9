// Splitting the client's byte stream into commands (RFC 9051 2.2.2, 4.3; RFC 7888 literals).
//
// Security: a command is held in memory until complete, so its size is bounded: lines by
// max_line, literals by max_literal and their count by max_literals.
#include <algorithm>
#include <charconv>

#include "imap/imap.hpp"

namespace postern::imap {
namespace {

struct LiteralMarker {
  std::size_t size = 0;
  bool synchronising = true;
};

// "{123}", "{123+}" or "~{123}" at the end of a line (RFC 7888, RFC 3516).
std::optional<LiteralMarker> literal_marker(std::string_view line) {
  if (line.empty() || line.back() != '}') return std::nullopt;
  std::size_t open = line.rfind('{');
  if (open == std::string_view::npos) return std::nullopt;
  std::string_view inner = line.substr(open + 1, line.size() - open - 2);
  LiteralMarker m;
  if (!inner.empty() && inner.back() == '+') {
    m.synchronising = false;
    inner.remove_suffix(1);
  }
  if (inner.empty() || inner.size() > 19) return std::nullopt;
  for (char c : inner)
    if (c < '0' || c > '9') return std::nullopt;
  std::from_chars(inner.data(), inner.data() + inner.size(), m.size);
  return m;
}

}  // namespace

CommandReader::Status CommandReader::next() {
  while (true) {
    if (literal_left_ > 0) {
      std::size_t have = buf_.size() - line_start_;
      if (have < literal_left_) return Status::need_more;
      line_start_ += literal_left_;
      literal_left_ = 0;
    }
    std::size_t eol = buf_.find("\r\n", line_start_);
    if (eol == std::string::npos) {
      if (buf_.size() - line_start_ > limits_.max_line) return Status::too_long;
      return Status::need_more;
    }
    if (eol > limits_.max_command) return Status::too_long;
    std::string_view line(buf_.data() + line_start_, eol - line_start_);
    if (line.size() > limits_.max_line) return Status::too_long;
    auto marker = literal_marker(line);
    if (!marker) {
      ready_ = buf_.substr(0, eol + 2);
      consume(eol + 2);
      line_start_ = 0;
      literals_ = 0;
      return Status::command;
    }
    if (++literals_ > limits_.max_literals) return Status::too_long;
    std::size_t max = logged_in_ ? limits_.max_literal : limits_.max_literal_before_login;
    if (!logged_in_ && !marker->synchronising) max = std::min<std::size_t>(max, 4096);
    if (marker->size > max || eol + 2 + marker->size > limits_.max_command) {
      can_continue_ = marker->synchronising;
      ready_ = buf_.substr(0, eol + 2);  // for tag()
      consume(eol + 2);
      line_start_ = 0;
      literals_ = 0;
      return Status::literal_too_big;
    }
    line_start_ = eol + 2;
    literal_left_ = marker->size;
    if (marker->synchronising) return Status::continuation;
  }
}

void CommandReader::consume(std::size_t n) {
  // The consumed bytes may hold a password: zero them before the rest moves over them, so no
  // copy is left in the buffer's spare capacity.
  std::fill(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(n), '\0');
  buf_.erase(0, n);
}

std::string CommandReader::take_command() {
  return std::move(ready_);
}

std::string CommandReader::tag() const {
  std::string_view src = ready_.empty() ? std::string_view(buf_) : std::string_view(ready_);
  std::size_t end = src.find_first_of(" \r\n");
  if (end == std::string_view::npos) end = src.size();
  std::string tag(src.substr(0, std::min<std::size_t>(end, 64)));
  for (char c : tag)
    if (static_cast<unsigned char>(c) <= ' ' || c == '(' || c == ')' || c == '{' || c == '"' ||
        c == '\\' || c == '%' || c == '*' || c == '+' || static_cast<unsigned char>(c) >= 0x7f)
      return "*";
  return tag.empty() ? "*" : tag;
}

}  // namespace postern::imap
