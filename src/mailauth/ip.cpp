// Client addresses for SPF and the trusted-forwarder list: parsing through inet_pton (which
// refuses leading zeros, short forms and trailing junk), prefix comparison and the reverse
// names PTR lookups and %{i} use.
#include <arpa/inet.h>

#include <charconv>
#include <cstring>

#include "mailauth/spf_internal.hpp"

namespace postern::mailauth {
namespace spf {
namespace {

constexpr char kHex[] = "0123456789abcdef";

// Turns an IPv4-mapped IPv6 address (::ffff:a.b.c.d) into the IPv4 one.
bool unmap(Ip& ip) {
  static constexpr unsigned char kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (!ip.v6 || std::memcmp(ip.bytes.data(), kPrefix, sizeof kPrefix) != 0) return false;
  std::memmove(ip.bytes.data(), ip.bytes.data() + 12, 4);
  std::memset(ip.bytes.data() + 4, 0, 12);
  ip.v6 = false;
  return true;
}

// A prefix length: decimal without sign or leading zeros, at most `max`.
std::optional<int> parse_length(std::string_view text, int max) {
  if (text.empty() || text.size() > 3 || (text.size() > 1 && text[0] == '0')) return std::nullopt;
  int n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size() || n < 0 || n > max)
    return std::nullopt;
  return n;
}

}  // namespace

std::optional<Ip> parse_ip(std::string_view text, bool map_v4) {
  // INET6_ADDRSTRLEN bounds every address inet_pton accepts; a NUL would end it early.
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN || text.find('\0') != text.npos)
    return std::nullopt;
  char buf[INET6_ADDRSTRLEN];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  Ip ip;
  ip.v6 = text.find(':') != text.npos;
  if (inet_pton(ip.v6 ? AF_INET6 : AF_INET, buf, ip.bytes.data()) != 1) return std::nullopt;
  if (map_v4) unmap(ip);
  return ip;
}

bool same_prefix(const Ip& a, const Ip& b, int bits) {
  if (a.v6 != b.v6) return false;
  int max = a.v6 ? 128 : 32;
  if (bits < 0 || bits > max) bits = max;
  int whole = bits / 8;
  if (std::memcmp(a.bytes.data(), b.bytes.data(), static_cast<std::size_t>(whole)) != 0)
    return false;
  int rest = bits % 8;
  if (rest == 0) return true;
  auto mask = static_cast<unsigned char>(0xff << (8 - rest));
  return (a.bytes[whole] & mask) == (b.bytes[whole] & mask);
}

std::string ip_text(const Ip& ip) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (!inet_ntop(ip.v6 ? AF_INET6 : AF_INET, ip.bytes.data(), buf, sizeof buf)) return {};
  return buf;
}

std::string ip_dotted(const Ip& ip) {
  if (!ip.v6) return ip_text(ip);
  std::string out;
  out.reserve(63);
  for (unsigned char b : ip.bytes) {
    if (!out.empty()) out += '.';
    out += kHex[b >> 4];
    out += '.';
    out += kHex[b & 0xf];
  }
  return out;
}

std::string reverse_name(const Ip& ip) {
  std::string out;
  if (!ip.v6) {
    for (int i = 3; i >= 0; --i) out += std::to_string(ip.bytes[i]) + '.';
    return out + "in-addr.arpa";
  }
  for (int i = 15; i >= 0; --i) {
    out += kHex[ip.bytes[i] & 0xf];
    out += '.';
    out += kHex[ip.bytes[i] >> 4];
    out += '.';
  }
  return out + "ip6.arpa";
}

}  // namespace spf

bool in_network(std::string_view ip, std::string_view network) {
  auto client = spf::parse_ip(ip);
  if (!client) return false;
  auto slash = network.find('/');
  auto net = spf::parse_ip(network.substr(0, slash), false);
  if (!net) return false;
  bool mapped = spf::unmap(*net);
  int bits = net->v6 ? 128 : 32;
  if (slash != network.npos) {
    auto len = spf::parse_length(network.substr(slash + 1), mapped ? 128 : bits);
    // A mapped network is an IPv4 one only when its prefix reaches into the IPv4 part.
    if (!len || (mapped && *len < 96)) return false;
    bits = mapped ? *len - 96 : *len;
  }
  return spf::same_prefix(*client, *net, bits);
}

}  // namespace postern::mailauth
