// The RFC 3464 delivery-status parser: arbitrary bytes never crash it, and what postern itself
// writes (make_dsn with fuzzed values) always parses back with the same recipients.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "smtp/smtp.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace postern::smtp;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto parsed = parse_delivery_status(in);
  if (parsed && parsed->recipients.empty()) std::abort();

  // The input's first line as an address, the rest as a remote server's reply text.
  auto nl = in.find('\n');
  std::string address(in.substr(0, std::min<std::size_t>(nl, 200)));
  if (address.empty() || address.find_first_of("\r\n; \t") != std::string::npos) return 0;
  DsnRequest r;
  r.reporting_mta = "mail.example.test";
  r.postmaster = "MAILER-DAEMON@mail.example.test";
  r.to = "a@example.test";
  r.date = r.arrival_date = "Thu, 03 Dec 2026 10:00:00 +0000";
  r.message_id = "<x@mail.example.test>";
  r.boundary = "b";
  std::string diagnostic = "smtp; " + std::string(in.substr(nl == in.npos ? in.size() : nl));
  r.recipients.push_back({address, "failed", "5.1.1", "mx.example.org", diagnostic, r.date, ""});
  std::string m = make_dsn(r);
  auto start = m.find("Content-Type: message/delivery-status\r\n\r\n");
  if (start == std::string::npos) std::abort();
  start += 41;
  auto end = m.find("\r\n--b\r\nContent-Type: text/rfc822-headers", start);
  if (end == std::string::npos) std::abort();
  auto back = parse_delivery_status(std::string_view(m).substr(start, end - start));
  if (!back || back->recipients.size() != 1 || back->recipients[0].address != address) std::abort();
  return 0;
}
