// Record data parsers on well-formed and hostile RDATA.
#include <gtest/gtest.h>

#include <algorithm>

#include <poll.h>

#include "dns/dns.hpp"

namespace postern::dns {
namespace {

std::string wire_name(std::initializer_list<std::string> labels) {
  std::string out;
  for (const auto& l : labels) out += static_cast<char>(l.size()) + l;
  return out + '\0';
}

TEST(DnsRdata, Mx) {
  auto mx = parse_mx(std::string("\x00\x0a", 2) + wire_name({"MX", "Example", "test"}));
  ASSERT_TRUE(mx);
  EXPECT_EQ(mx->preference, 10);
  EXPECT_EQ(mx->exchange, "mx.example.test");
  auto null_mx = parse_mx(std::string("\x00\x00\x00", 3));
  ASSERT_TRUE(null_mx);
  EXPECT_EQ(null_mx->exchange, "");
  EXPECT_FALSE(parse_mx(std::string("\x00\x0a", 2)));
  EXPECT_FALSE(
      parse_mx(std::string("\x00\x0a\x05"
                           "ab",
                           5)));                               // label past the end
  EXPECT_FALSE(parse_mx(std::string("\x00\x0a\xc0\x0c", 4)));  // compression pointer
  EXPECT_FALSE(parse_mx(std::string("\x00\x0a\x00x", 4)));     // trailing data
  std::string long_name;
  for (int i = 0; i < 5; ++i) long_name += std::string(1, '\x3f') + std::string(63, 'a');
  EXPECT_FALSE(parse_mx(std::string("\x00\x01", 2) + long_name + '\0'));  // over 255 bytes
}

TEST(DnsRdata, TxtTlsaAddresses) {
  EXPECT_EQ(*parse_txt(std::string("\x05v=spf\x03 -a", 10)), "v=spf -a");
  EXPECT_FALSE(parse_txt(std::string("\x05v=s", 4)));
  EXPECT_FALSE(parse_txt(""));
  auto t = parse_tlsa(std::string("\x03\x01\x01\xab\xcd", 5));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->usage, 3);
  EXPECT_EQ(t->data, "\xab\xcd");
  EXPECT_FALSE(parse_tlsa("\x03\x01\x01"));
  EXPECT_EQ(*parse_address(Type::a, std::string("\x7f\x00\x00\x02", 4)), "127.0.0.2");
  EXPECT_EQ(*parse_address(Type::aaaa, std::string(15, '\0') + '\x01'), "::1");
  EXPECT_FALSE(parse_address(Type::a, "abc"));
}

// The asynchronous interface an event loop uses: start, wait for fd(), process(). localhost is
// answered by unbound itself (RFC 6761), so no network is needed.
TEST(DnsResolver, AsyncLookupCompletesThroughProcess) {
  auto r = Resolver::create({});
  ASSERT_TRUE(r) << r.error().describe();
  std::vector<std::string> got;
  int done = 0;
  for (auto type : {Type::a, Type::aaaa}) {
    ASSERT_TRUE((*r)->resolve_async("localhost", type, [&, type](Result<Answer> a) {
      ++done;
      ASSERT_TRUE(a);
      for (const auto& rd : a->rdata) got.push_back(*parse_address(type, rd));
    }));
  }
  for (int i = 0; i < 100 && done < 2; ++i) {
    pollfd p{(*r)->fd(), POLLIN, 0};
    ASSERT_GE(::poll(&p, 1, 100), 0);
    if (p.revents & POLLIN) ASSERT_TRUE((*r)->process());
  }
  EXPECT_EQ(done, 2);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{"127.0.0.1", "::1"}));
  auto sync = (*r)->resolve("localhost", Type::a);
  ASSERT_TRUE(sync);
  EXPECT_EQ(sync->security, Security::insecure);
}

}  // namespace
}  // namespace postern::dns
