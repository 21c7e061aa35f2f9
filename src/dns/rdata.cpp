// Record data parsers (RFC 1035 3.3, RFC 7505, RFC 6698 2.1), bounded by their input.
#include <arpa/inet.h>

#include <cctype>

#include "dns/dns.hpp"

namespace postern::dns {

const std::error_category& category() {
  static const struct : std::error_category {
    const char* name() const noexcept override { return "dns"; }
    std::string message(int e) const override {
      switch (static_cast<Errc>(e)) {
        case Errc::setup:
          return "resolver setup failed";
        case Errc::resolve:
          return "lookup failed";
        case Errc::malformed:
          return "malformed record data";
      }
      return "dns error";
    }
  } cat;
  return cat;
}

const char* to_string(Security s) {
  switch (s) {
    case Security::secure:
      return "secure";
    case Security::insecure:
      return "insecure";
    case Security::bogus:
      return "bogus";
    case Security::indeterminate:
      return "indeterminate";
  }
  return "indeterminate";
}

Result<std::string> parse_name(std::string_view wire, std::size_t& pos) {
  std::string out;
  std::size_t total = 0;
  while (true) {
    if (pos >= wire.size()) return Error(Errc::malformed, "name runs past its record");
    auto len = static_cast<unsigned char>(wire[pos++]);
    if (len == 0) break;
    // Compression pointers do not appear in the RDATA unbound hands out.
    if (len > 63) return Error(Errc::malformed, "label length");
    if (wire.size() - pos < len) return Error(Errc::malformed, "label runs past its record");
    total += len + 1;
    if (total > 254) return Error(Errc::malformed, "name too long");
    if (!out.empty()) out += '.';
    for (char c : wire.substr(pos, len))
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    pos += len;
  }
  return out;
}

Result<Mx> parse_mx(std::string_view rdata) {
  if (rdata.size() < 3) return Error(Errc::malformed, "MX");
  Mx mx;
  mx.preference = static_cast<uint16_t>((static_cast<unsigned char>(rdata[0]) << 8) |
                                        static_cast<unsigned char>(rdata[1]));
  std::size_t pos = 2;
  auto name = parse_name(rdata, pos);
  if (!name) return name.error();
  if (pos != rdata.size()) return Error(Errc::malformed, "MX trailing data");
  mx.exchange = std::move(*name);
  return mx;
}

std::string make_txt_rdata(std::string_view text) {
  std::string out;
  do {
    std::string_view chunk = text.substr(0, 255);
    out += static_cast<char>(chunk.size());
    out += chunk;
    text.remove_prefix(chunk.size());
  } while (!text.empty());
  return out;
}

Result<std::string> parse_txt(std::string_view rdata) {
  std::string out;
  std::size_t pos = 0;
  if (rdata.empty()) return Error(Errc::malformed, "empty TXT");
  while (pos < rdata.size()) {
    auto len = static_cast<unsigned char>(rdata[pos++]);
    if (rdata.size() - pos < len) return Error(Errc::malformed, "TXT string runs past its record");
    out += rdata.substr(pos, len);
    pos += len;
  }
  return out;
}

Result<Tlsa> parse_tlsa(std::string_view rdata) {
  if (rdata.size() < 4) return Error(Errc::malformed, "TLSA");
  Tlsa t;
  t.usage = static_cast<uint8_t>(rdata[0]);
  t.selector = static_cast<uint8_t>(rdata[1]);
  t.matching = static_cast<uint8_t>(rdata[2]);
  t.data = std::string(rdata.substr(3));
  return t;
}

Result<std::string> parse_address(Type type, std::string_view rdata) {
  char buf[INET6_ADDRSTRLEN];
  if (type == Type::a && rdata.size() == 4 && inet_ntop(AF_INET, rdata.data(), buf, sizeof buf))
    return std::string(buf);
  if (type == Type::aaaa && rdata.size() == 16 &&
      inet_ntop(AF_INET6, rdata.data(), buf, sizeof buf))
    return std::string(buf);
  return Error(Errc::malformed, "address");
}

}  // namespace postern::dns
