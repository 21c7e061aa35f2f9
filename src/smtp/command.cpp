#include "smtp/command.hpp"

#include <cctype>

namespace postern::smtp::detail {

std::optional<PathText> split_path(std::string_view s) {
  if (s.empty() || s.front() != '<') return std::nullopt;
  // Find the closing bracket outside a quoted local part.
  bool quoted = false;
  std::size_t close = std::string_view::npos;
  for (std::size_t i = 1; i < s.size(); ++i) {
    char c = s[i];
    if (quoted && c == '\\') {
      ++i;
      continue;
    }
    if (c == '"') quoted = !quoted;
    if (!quoted && c == '>') {
      close = i;
      break;
    }
  }
  if (close == std::string_view::npos) return std::nullopt;
  std::string_view inner = s.substr(1, close - 1);
  // RFC 5321 4.1.2 A-d-l source route: accepted and ignored (Appendix C).
  if (!inner.empty() && inner.front() == '@') {
    auto colon = inner.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    inner.remove_prefix(colon + 1);
    if (inner.empty()) return std::nullopt;
  }
  return PathText{inner, s.substr(close + 1)};
}

std::optional<std::vector<Param>> parse_params(std::string_view s, std::size_t max_params) {
  std::vector<Param> out;
  std::size_t i = 0;
  while (i < s.size()) {
    if (s[i] == ' ') {
      ++i;
      continue;
    }
    auto end = s.find(' ', i);
    std::string_view tok = s.substr(i, end == std::string_view::npos ? s.npos : end - i);
    i = end == std::string_view::npos ? s.size() : end;
    auto eq = tok.find('=');
    std::string_view key = tok.substr(0, eq);
    if (key.empty() || !std::isalnum(static_cast<unsigned char>(key[0]))) return std::nullopt;
    for (char c : key)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return std::nullopt;
    Param p{key, std::nullopt};
    if (eq != std::string_view::npos) {
      std::string_view v = tok.substr(eq + 1);
      if (v.empty()) return std::nullopt;
      for (unsigned char c : v)
        if (c < 33 || c > 126 || c == '=') return std::nullopt;
      p.value = v;
    }
    if (out.size() >= max_params) return std::nullopt;
    out.push_back(p);
  }
  return out;
}

std::optional<uint64_t> parse_decimal(std::string_view s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

}  // namespace postern::smtp::detail
