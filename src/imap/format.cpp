// Response building blocks: strings, flags and dates in IMAP's forms.
#include <array>
#include <cctype>
#include <cstdio>
#include <ctime>

#include "base/text.hpp"
#include "imap/imap.hpp"

namespace postern::imap {
namespace {

constexpr std::array<const char*, 12> months = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

int month_index(std::string_view m) {
  for (std::size_t i = 0; i < months.size(); ++i)
    if (base::iequals(m, months[i])) return static_cast<int>(i);
  return -1;
}

std::optional<int> number(std::string_view s) {
  if (s.empty() || s.size() > 4) return std::nullopt;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

std::optional<int64_t> days_from_civil(int y, int m, int d) {
  if (y < 1900 || y > 9999 || m < 1 || m > 12 || d < 1 || d > 31) return std::nullopt;
  y -= m <= 2 ? 1 : 0;
  const int era = y / 400;
  const int yoe = y - era * 400;
  const int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return static_cast<int64_t>(era) * 146097 + doe - 719468;
}

}  // namespace

std::string literal(std::string_view s) {
  return "{" + std::to_string(s.size()) + "}\r\n" + std::string(s);
}

std::string quote(std::string_view s, bool utf8) {
  if (s.size() > 1000) return literal(s);
  if (utf8 && !mime::valid_utf8(s)) return literal(s);
  std::string out = "\"";
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (c == '\r' || c == '\n' || c == '\0' || (u >= 0x80 && !utf8)) return literal(s);
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

std::string nstring(std::string_view s) {
  return quote(s);
}

bool has_flag(std::string_view flags, std::string_view flag) {
  std::size_t pos = 0;
  while (pos < flags.size()) {
    std::size_t sp = flags.find(' ', pos);
    std::string_view f = flags.substr(pos, sp == std::string_view::npos ? flags.npos : sp - pos);
    if (base::iequals(f, flag)) return true;
    if (sp == std::string_view::npos) break;
    pos = sp + 1;
  }
  return false;
}

std::string format_flags(std::string_view flags) {
  return "(" + std::string(flags) + ")";
}

std::string imap_date_time(int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[40];
  std::snprintf(buf, sizeof buf, "\"%02d-%s-%04d %02d:%02d:%02d +0000\"", tm.tm_mday,
                months[static_cast<std::size_t>(tm.tm_mon)], tm.tm_year + 1900, tm.tm_hour,
                tm.tm_min, tm.tm_sec);
  return buf;
}

std::optional<int64_t> parse_date(std::string_view s) {
  std::size_t d1 = s.find('-');
  if (d1 == std::string_view::npos) return std::nullopt;
  std::size_t d2 = s.find('-', d1 + 1);
  if (d2 == std::string_view::npos) return std::nullopt;
  auto day = number(s.substr(0, d1));
  int mon = month_index(s.substr(d1 + 1, d2 - d1 - 1));
  auto year = number(s.substr(d2 + 1));
  if (!day || mon < 0 || !year) return std::nullopt;
  auto days = days_from_civil(*year, mon + 1, *day);
  if (!days) return std::nullopt;
  return *days * 86400;
}

// date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE
// (the token's quotes are already removed).
std::optional<int64_t> parse_date_time(std::string_view s) {
  if (!s.empty() && s[0] == ' ') s.remove_prefix(1);
  std::size_t sp = s.find(' ');
  if (sp == std::string_view::npos) return std::nullopt;
  auto date = parse_date(s.substr(0, sp));
  std::string_view rest = s.substr(sp + 1);
  if (!date || rest.size() != 14 || rest[2] != ':' || rest[5] != ':' || rest[8] != ' ')
    return std::nullopt;
  auto h = number(rest.substr(0, 2));
  auto m = number(rest.substr(3, 2));
  auto sec = number(rest.substr(6, 2));
  char sign = rest[9];
  auto zh = number(rest.substr(10, 2));
  auto zm = number(rest.substr(12, 2));
  if (!h || !m || !sec || !zh || !zm || (sign != '+' && sign != '-') || *h > 23 || *m > 59 ||
      *sec > 60 || *zm > 59)
    return std::nullopt;
  int64_t offset = (int64_t{*zh} * 3600 + int64_t{*zm} * 60) * (sign == '+' ? 1 : -1);
  return *date + int64_t{*h} * 3600 + int64_t{*m} * 60 + *sec - offset;
}

}  // namespace postern::imap
