// Helpers of the scripted conversation tests (SMTP and IMAP).
#pragma once

#include <string>
#include <string_view>

namespace postern::testing {

// Escapes: \r \n \t \\ \xHH and {N*c} (N copies of c); other backslashes stay.
inline std::string unescape(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '\\' && i + 1 < s.size()) {
      char n = s[++i];
      if (n == 'r')
        out += '\r';
      else if (n == 'n')
        out += '\n';
      else if (n == 't')
        out += '\t';
      else if (n == 'x' && i + 2 < s.size()) {
        out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
        i += 2;
      } else if (n == '\\') {
        out += n;
      } else {
        out += std::string{'\\', n};  // IMAP flags: "\Seen" stays as written
      }
    } else if (c == '{') {
      auto star = s.find('*', i);
      auto close = s.find('}', i);
      if (star == std::string_view::npos || close == std::string_view::npos || star > close) {
        out += c;
        continue;
      }
      auto n = std::stoul(std::string(s.substr(i + 1, star - i - 1)));
      out += std::string(n, s[star + 1]);
      i = close;
    } else {
      out += c;
    }
  }
  return out;
}

inline bool glob(const std::string& pattern, const std::string& text) {
  if (!pattern.empty() && pattern.back() == '*')
    return text.compare(0, pattern.size() - 1, pattern, 0, pattern.size() - 1) == 0;
  return pattern == text;
}

}  // namespace postern::testing
