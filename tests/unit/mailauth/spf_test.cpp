// SPF (RFC 7208) against a table-driven fake DNS: the examples of the RFC (Appendix A, the
// macro expansions of 7.4), every mechanism and modifier, the processing limits, DNS errors,
// and hostile records. The fake runs the replay loop the server runs: check, resolve what was
// noted, check again.
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <map>
#include <random>
#include <set>

#include "mailauth/mailauth.hpp"
#include "mailauth/spf_internal.hpp"

namespace postern::mailauth {
namespace {

std::string wire_name(std::string_view name) {
  std::string out;
  while (!name.empty()) {
    auto dot = name.find('.');
    std::string_view label = name.substr(0, dot);
    out += static_cast<char>(label.size());
    out += label;
    name = dot == name.npos ? std::string_view() : name.substr(dot + 1);
  }
  return out + '\0';
}

std::string address_rdata(const std::string& ip) {
  unsigned char buf[16];
  bool v6 = ip.find(':') != std::string::npos;
  EXPECT_EQ(inet_pton(v6 ? AF_INET6 : AF_INET, ip.c_str(), buf), 1) << ip;
  return std::string(reinterpret_cast<char*>(buf), v6 ? 16 : 4);
}

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

// A zone table. Names with some record but none of the asked type answer NOERROR with no
// data; unknown names answer NXDOMAIN.
class FakeDns {
 public:
  FakeDns& txt(const std::string& name, std::string_view text) {
    return add(name, dns::Type::txt, dns::make_txt_rdata(text));
  }
  FakeDns& a(const std::string& name, const std::string& ip) {
    return add(name, ip.find(':') == std::string::npos ? dns::Type::a : dns::Type::aaaa,
               address_rdata(ip));
  }
  FakeDns& mx(const std::string& name, int preference, const std::string& host) {
    std::string rd{static_cast<char>(preference >> 8), static_cast<char>(preference & 0xff)};
    return add(name, dns::Type::mx, rd + wire_name(host));
  }
  // The PTR record for a client address.
  FakeDns& ptr(const std::string& ip, const std::string& host) {
    return add(spf::reverse_name(*spf::parse_ip(ip)), dns::Type::ptr, wire_name(host));
  }
  FakeDns& servfail(const std::string& name, dns::Type type) {
    servfail_.insert({lower(name), type});
    return *this;
  }
  FakeDns& timeout(const std::string& name, dns::Type type) {
    timeout_.insert({lower(name), type});
    return *this;
  }
  FakeDns& add(const std::string& name, dns::Type type, std::string rdata) {
    records_[{lower(name), type}].push_back(std::move(rdata));
    names_.insert(lower(name));
    return *this;
  }

  Result<dns::Answer> answer(const Query& q) const {
    if (timeout_.count(q)) return Error(dns::Errc::resolve, "timed out");
    dns::Answer a;
    if (servfail_.count(q)) {
      a.rcode = 2;
    } else if (auto it = records_.find(q); it != records_.end()) {
      a.rdata = it->second;
    } else if (!names_.count(q.name)) {
      a.rcode = 3;
      a.nxdomain = true;
    }
    return a;
  }

  // The replay loop; also checks that a finished run noted nothing and that it is
  // reproducible.
  SpfOutcome check(const std::string& ip, const std::string& sender,
                   const std::string& helo = "mail.example.net") {
    SpfRequest req{ip, sender, helo, "mx.receiver.example", 1400000000};
    Lookups lookups;
    rounds = 0;
    asked.clear();
    for (; rounds < 100; ++rounds) {
      auto out = check_spf(req, lookups);
      auto missing = lookups.take_missing();
      if (out) {
        EXPECT_TRUE(missing.empty());
        auto again = check_spf(req, lookups);
        EXPECT_TRUE(again && again->result == out->result && again->mechanism == out->mechanism);
        EXPECT_TRUE(lookups.take_missing().empty());
        return *out;
      }
      EXPECT_FALSE(missing.empty()) << "nullopt without a query";
      if (missing.empty()) break;
      for (const auto& q : missing) {
        asked.push_back(q);
        lookups.add(q, answer(q));
      }
    }
    ADD_FAILURE() << "no outcome";
    return {};
  }
  SpfResult result(const std::string& ip, const std::string& sender) {
    return check(ip, sender).result;
  }
  std::size_t asked_count(dns::Type type) const {
    std::size_t n = 0;
    for (const auto& q : asked) n += q.type == type;
    return n;
  }

  int rounds = 0;
  std::vector<Query> asked;

 private:
  std::map<Query, std::vector<std::string>> records_;
  std::set<std::string> names_;
  std::set<Query> servfail_, timeout_;
};

// RFC 7208 Appendix A: the example.com zone.
FakeDns appendix_a(const std::string& record) {
  FakeDns dns;
  dns.txt("example.com", record)
      .mx("example.com", 10, "mail-a.example.com")
      .mx("example.com", 20, "mail-b.example.com")
      .a("example.com", "192.0.2.10")
      .a("example.com", "192.0.2.11")
      .a("amy.example.com", "192.0.2.65")
      .a("bob.example.com", "192.0.2.66")
      .a("mail-a.example.com", "192.0.2.129")
      .a("mail-b.example.com", "192.0.2.130")
      .mx("example.org", 10, "mail-c.example.org")
      .a("mail-c.example.org", "192.0.2.140")
      .ptr("192.0.2.10", "example.com")
      .ptr("192.0.2.11", "example.com")
      .ptr("192.0.2.65", "amy.example.com")
      .ptr("192.0.2.66", "bob.example.com")
      .ptr("192.0.2.129", "mail-a.example.com")
      .ptr("192.0.2.130", "mail-b.example.com")
      .ptr("192.0.2.140", "mail-c.example.org")
      .ptr("10.0.0.4", "bob.example.com");
  return dns;
}

// The addresses among `candidates` that pass `record` in the Appendix A zone.
std::vector<std::string> passing(const std::string& record,
                                 const std::vector<std::string>& candidates) {
  FakeDns dns = appendix_a(record);
  std::vector<std::string> out;
  for (const auto& ip : candidates) {
    auto o = dns.check(ip, "user@example.com");
    if (o.result == SpfResult::pass) out.push_back(ip);
    EXPECT_TRUE(o.result == SpfResult::pass || o.result == SpfResult::fail)
        << record << " " << ip << " " << to_string(o.result) << " " << o.mechanism;
  }
  return out;
}

const std::vector<std::string> kClients = {
    "192.0.2.1",   "192.0.2.10",  "192.0.2.11",  "192.0.2.65",  "192.0.2.66",
    "192.0.2.128", "192.0.2.129", "192.0.2.130", "192.0.2.131", "192.0.2.132",
    "192.0.2.140", "192.0.2.141", "192.0.2.143", "192.0.2.144", "10.0.0.4"};

using Ips = std::vector<std::string>;

TEST(Spf, AppendixASimpleExamples) {
  EXPECT_EQ(passing("v=spf1 +all", kClients), kClients);
  EXPECT_EQ(passing("v=spf1 a -all", kClients), (Ips{"192.0.2.10", "192.0.2.11"}));
  EXPECT_EQ(passing("v=spf1 a:example.org -all", kClients), Ips{});
  EXPECT_EQ(passing("v=spf1 mx -all", kClients), (Ips{"192.0.2.129", "192.0.2.130"}));
  EXPECT_EQ(passing("v=spf1 mx:example.org -all", kClients), Ips{"192.0.2.140"});
  EXPECT_EQ(passing("v=spf1 mx mx:example.org -all", kClients),
            (Ips{"192.0.2.129", "192.0.2.130", "192.0.2.140"}));
  EXPECT_EQ(passing("v=spf1 mx/30 mx:example.org/30 -all", kClients),
            (Ips{"192.0.2.128", "192.0.2.129", "192.0.2.130", "192.0.2.131", "192.0.2.140",
                 "192.0.2.141", "192.0.2.143"}));
  // 10.0.0.4 claims bob.example.com, which does not confirm it.
  EXPECT_EQ(passing("v=spf1 ptr -all", {"192.0.2.65", "192.0.2.140", "10.0.0.4"}),
            Ips{"192.0.2.65"});
  EXPECT_EQ(passing("v=spf1 ip4:192.0.2.128/28 -all", {"192.0.2.65", "192.0.2.129"}),
            Ips{"192.0.2.129"});
}

TEST(Spf, AppendixAOutcomeFields) {
  auto dns = appendix_a("v=spf1 mx/30 mx:example.org/30 -all");
  auto o = dns.check("192.0.2.141", "user@example.com");
  EXPECT_EQ(o.result, SpfResult::pass);
  EXPECT_EQ(o.domain, "example.com");
  EXPECT_EQ(o.mechanism, "mx:example.org/30");
  o = dns.check("192.0.2.99", "user@example.com");
  EXPECT_EQ(o.result, SpfResult::fail);
  EXPECT_EQ(o.mechanism, "all");
  EXPECT_EQ(o.explanation, "");
  auto ip4 = appendix_a("v=spf1 ip4:192.0.2.128/28");
  o = ip4.check("192.0.2.129", "user@example.com");
  EXPECT_EQ(o.mechanism, "ip4:192.0.2.128/28");
  o = ip4.check("192.0.2.1", "user@example.com");
  EXPECT_EQ(o.result, SpfResult::neutral);
  EXPECT_EQ(o.mechanism, "default");
}

// In the manner of RFC 7208 A.2-A.5: include, "both requirements", DNSBL-style exists.
TEST(Spf, AppendixAIncludeAndMultipleRequirements) {
  auto dns = appendix_a("v=spf1 -include:ip4._spf.%{d} -include:ptr._spf.%{d} +all");
  dns.txt("ip4._spf.example.com", "v=spf1 -ip4:192.0.2.0/24 +all")
      .txt("ptr._spf.example.com", "v=spf1 -ptr:example.com +all");
  EXPECT_EQ(dns.result("192.0.2.65", "a@example.com"), SpfResult::pass);
  EXPECT_EQ(dns.result("192.0.2.140", "a@example.com"), SpfResult::fail);  // PTR outside
  EXPECT_EQ(dns.result("10.0.0.4", "a@example.com"), SpfResult::fail);     // IP outside

  auto la = appendix_a("v=spf1 mx -all");
  la.txt("example.org", "v=spf1 include:example.com include:example.net -all")
      .txt("example.net", "v=spf1 ip4:198.51.100.0/24 -all");
  EXPECT_EQ(la.result("192.0.2.129", "la@example.org"), SpfResult::pass);
  auto o = la.check("198.51.100.7", "la@example.org");
  EXPECT_EQ(o.result, SpfResult::pass);
  EXPECT_EQ(o.domain, "example.org");
  EXPECT_EQ(o.mechanism, "include:example.net");
  EXPECT_EQ(la.result("192.0.2.10", "la@example.org"), SpfResult::fail);

  // %{ir}.%{l1r+-}._spf.%{d}: the first word of the local-part, per client.
  auto bl = appendix_a("v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d} -all");
  bl.a("3.2.0.192.jack._spf.example.com", "127.0.0.2");
  EXPECT_EQ(bl.result("192.0.2.3", "jack-bob@example.com"), SpfResult::pass);
  EXPECT_EQ(bl.result("192.0.2.3", "jack+list@example.com"), SpfResult::pass);
  EXPECT_EQ(bl.result("192.0.2.4", "jack-bob@example.com"), SpfResult::fail);
  EXPECT_EQ(bl.result("192.0.2.3", "jill@example.com"), SpfResult::fail);
}

TEST(Spf, Qualifiers) {
  for (auto [q, r] : {std::pair{"", SpfResult::pass}, std::pair{"+", SpfResult::pass},
                      std::pair{"-", SpfResult::fail}, std::pair{"~", SpfResult::softfail},
                      std::pair{"?", SpfResult::neutral}}) {
    FakeDns dns;
    dns.txt("example.com", std::string("v=spf1 ") + q + "ip4:192.0.2.1 " + q + "all");
    EXPECT_EQ(dns.result("192.0.2.1", "a@example.com"), r) << q;
    EXPECT_EQ(dns.result("192.0.2.2", "a@example.com"), r) << q;
  }
  FakeDns upper;
  upper.txt("example.com", "V=SPF1 IP4:192.0.2.1 -ALL");
  EXPECT_EQ(upper.result("192.0.2.1", "a@example.com"), SpfResult::pass);
  EXPECT_EQ(upper.result("192.0.2.2", "a@example.com"), SpfResult::fail);
  FakeDns empty;
  empty.txt("example.com", "v=spf1");
  EXPECT_EQ(empty.result("192.0.2.1", "a@example.com"), SpfResult::neutral);
  FakeDns spaces;
  spaces.txt("example.com", "v=spf1   ip4:192.0.2.1   -all  ");
  EXPECT_EQ(spaces.result("192.0.2.2", "a@example.com"), SpfResult::fail);
}

TEST(Spf, RecordSelection) {
  FakeDns dns;
  dns.txt("none.example", "google-site-verification=abc")
      .txt("spf10.example", "v=spf10 -all")
      .txt("glued.example", "v=spf1-all")
      .txt("two.example", "v=spf1 -all")
      .txt("two.example", "V=Spf1 +all")
      .txt("other.example", "v=spf1 -all")
      .txt("other.example", "some other text")
      .a("noTXT.example", "192.0.2.1");
  EXPECT_EQ(dns.result("192.0.2.1", "a@none.example"), SpfResult::none);
  EXPECT_EQ(dns.result("192.0.2.1", "a@spf10.example"), SpfResult::none);
  EXPECT_EQ(dns.result("192.0.2.1", "a@glued.example"), SpfResult::none);
  EXPECT_EQ(dns.result("192.0.2.1", "a@notxt.example"), SpfResult::none);
  EXPECT_EQ(dns.result("192.0.2.1", "a@nxdomain.example"), SpfResult::none);
  auto two = dns.check("192.0.2.1", "a@two.example");
  EXPECT_EQ(two.result, SpfResult::permerror);
  EXPECT_EQ(two.domain, "two.example");
  EXPECT_EQ(dns.result("192.0.2.1", "a@other.example"), SpfResult::fail);
  // A record split into several character-strings is joined without spaces.
  FakeDns split;
  std::string rd = dns::make_txt_rdata("v=spf1 ip4:192.0.2.1") + dns::make_txt_rdata(" -all");
  split.add("split.example", dns::Type::txt, rd);
  EXPECT_EQ(split.result("192.0.2.2", "a@split.example"), SpfResult::fail);
  // Long records span several 255-byte strings.
  std::string longrec = "v=spf1";
  for (int i = 0; i < 60; ++i) longrec += " ip4:198.51.100." + std::to_string(i);
  longrec += " ip4:192.0.2.1 -all";
  split.txt("long.example", longrec);
  EXPECT_EQ(split.result("192.0.2.1", "a@long.example"), SpfResult::pass);
  EXPECT_EQ(split.result("192.0.2.2", "a@long.example"), SpfResult::fail);
}

TEST(Spf, SenderAndDomainValidity) {
  FakeDns dns;
  dns.txt("example.com", "v=spf1 -all exp=why.example.com")
      .txt("why.example.com", "%{l} at %{o} (%{s})")
      .txt("com", "v=spf1 -all");
  auto o = dns.check("192.0.2.1", "@example.com");
  EXPECT_EQ(o.result, SpfResult::fail);
  EXPECT_EQ(o.explanation, "postmaster at example.com (postmaster@example.com)");
  EXPECT_EQ(dns.check("192.0.2.1", "example.com").explanation,
            "postmaster at example.com (postmaster@example.com)");
  EXPECT_EQ(dns.check("192.0.2.1", "Ann.Other@EXAMPLE.com.").explanation,
            "Ann.Other at example.com (Ann.Other@example.com)");
  // RFC 7208 4.3: not a multi-label domain name -> none, without a query.
  for (const std::string& bad :
       std::vector<std::string>{"a@com", "a@", "a@[192.0.2.1]", "a@exa..mple.com", "a@.example.com",
                                "a@" + std::string(64, 'x') + ".example.com",
                                "a@" + std::string(250, 'x') + ".com", "a@exa mple.com"}) {
    auto r = dns.check("192.0.2.1", bad);
    EXPECT_EQ(r.result, SpfResult::none) << bad;
    EXPECT_TRUE(dns.asked.empty()) << bad;
  }
  EXPECT_EQ(dns.check("192.0.2.1", "a@" + std::string(63, 'x') + ".example.com").result,
            SpfResult::none);  // valid, but NXDOMAIN
  EXPECT_FALSE(dns.asked.empty());
  EXPECT_EQ(dns.check("not an ip", "a@example.com").result, SpfResult::none);
  // The local-part is the client's: it is copied, but not as control characters.
  EXPECT_EQ(dns.check("192.0.2.1", std::string("a\x01\r\nb\xff@example.com")).explanation,
            "a???b? at example.com (a???b?@example.com)");
}

TEST(Spf, AMechanism) {
  FakeDns dns;
  dns.txt("example.com", "v=spf1 a -all")
      .a("example.com", "192.0.2.1")
      .a("example.com", "2001:db8::1")
      .txt("other.example", "v=spf1 a:example.com/24 -all")
      .txt("dual.example", "v=spf1 a:example.com/24//64 -all")
      .txt("v6only.example", "v=spf1 a:example.com//48 -all")
      .txt("zero.example", "v=spf1 a:empty.example/0 -all")
      .a("empty.example", "2001:db8::9")
      .txt("colon.example", "v=spf1 a:foo:bar/baz.example.com -all")
      .a("foo:bar/baz.example.com", "192.0.2.77")
      .txt("escapes.example", "v=spf1 a:x%%y%_z%-w.example.com -all")
      .a("x%y z%20w.example.com", "192.0.2.78");
  EXPECT_EQ(dns.result("192.0.2.1", "a@example.com"), SpfResult::pass);
  EXPECT_EQ(dns.result("192.0.2.2", "a@example.com"), SpfResult::fail);
  EXPECT_EQ(dns.result("2001:db8::1", "a@example.com"), SpfResult::pass);
  EXPECT_EQ(dns.result("2001:db8::2", "a@example.com"), SpfResult::fail);
  EXPECT_EQ(dns.result("::ffff:192.0.2.1", "a@example.com"), SpfResult::pass);
  EXPECT_EQ(dns.result("192.0.2.200", "a@other.example"), SpfResult::pass);
  EXPECT_EQ(dns.result("192.0.3.1", "a@other.example"), SpfResult::fail);
  // The IPv4 length does not apply to IPv6 clients.
  EXPECT_EQ(dns.result("2001:db8::2", "a@other.example"), SpfResult::fail);
  EXPECT_EQ(dns.result("2001:db8::ffff", "a@dual.example"), SpfResult::pass);
  EXPECT_EQ(dns.result("2001:db8:0:1::1", "a@dual.example"), SpfResult::fail);
  EXPECT_EQ(dns.result("2001:db8:0:1::1", "a@v6only.example"), SpfResult::pass);
  EXPECT_EQ(dns.result("192.0.2.2", "a@v6only.example"), SpfResult::fail);
  // /0 needs some A record: AAAA records do not count for an IPv4 client.
  EXPECT_EQ(dns.result("192.0.2.1", "a@zero.example"), SpfResult::fail);
  EXPECT_EQ(dns.result("192.0.2.77", "a@colon.example"), SpfResult::pass);
  EXPECT_EQ(dns.result("192.0.2.78", "a@escapes.example"), SpfResult::pass);
}

TEST(Spf, MxMechanism) {
  FakeDns dns;
  dns.txt("example.com", "v=spf1 mx -all")
      .mx("example.com", 10, "mx1.example.com")
      .mx("example.com", 20, "mx2.example.com")
      .mx("example.com", 30, "mx3.example.com")
      .a("mx1.example.com", "192.0.2.1")
      .a("mx2.example.com", "192.0.2.2")
      .a("mx3.example.com", "2001:db8::3")
      .txt("null.example", "v=spf1 mx")
      .add("null.example", dns::Type::mx, std::string("\0\0\0", 3))
      .a("null.example", "192.0.2.9")
      .txt("nomx.example", "v=spf1 mx -all")
      .a("nomx.example", "192.0.2.9");
  auto o = dns.check("192.0.2.2", "a@example.com");
  EXPECT_EQ(o.result, SpfResult::pass);
  EXPECT_EQ(o.mechanism, "mx");
  // TXT, MX, then the addresses of all three hosts at once.
  EXPECT_EQ(dns.rounds, 3);
  EXPECT_EQ(dns.asked_count(dns::Type::a), 3u);
  EXPECT_EQ(dns.result("192.0.2.3", "a@example.com"), SpfResult::fail);
  EXPECT_EQ(dns.result("2001:db8::3", "a@example.com"), SpfResult::pass);
  EXPECT_EQ(dns.asked_count(dns::Type::aaaa), 3u);
  // The null MX names no host; no MX does not mean "the domain itself".
  EXPECT_EQ(dns.result("192.0.2.9", "a@null.example"), SpfResult::neutral);
  EXPECT_EQ(dns.result("192.0.2.9", "a@nomx.example"), SpfResult::fail);
}

TEST(Spf, MxLimit) {
  FakeDns dns;
  dns.txt("ten.example", "v=spf1 mx -all").txt("eleven.example", "v=spf1 mx -all");
  for (int i = 0; i < 11; ++i) {
    std::string host = "mx" + std::to_string(i) + ".example";
    dns.a(host, "192.0.2." + std::to_string(i + 1));
    if (i < 10) dns.mx("ten.example", i, host);
    dns.mx("eleven.example", i, host);
  }
  EXPECT_EQ(dns.result("192.0.2.10", "a@ten.example"), SpfResult::pass);
  auto o = dns.check("192.0.2.1", "a@eleven.example");
  EXPECT_EQ(o.result, SpfResult::permerror);
  EXPECT_EQ(dns.asked_count(dns::Type::a), 0u);
}

TEST(Spf, PtrMechanism) {
  FakeDns dns;
  dns.txt("example.com", "v=spf1 ptr -all")
      .txt("target.example", "v=spf1 ptr:Example.COM -all")
      .ptr("192.0.2.1", "mail.example.com")
      .ptr("192.0.2.1", "other.example.net")
      .a("mail.example.com", "192.0.2.1")
      .ptr("192.0.2.2", "forged.example.com")
      .a("forged.example.com", "192.0.2.99")
      .ptr("192.0.2.3", "notexample.com")
      .a("notexample.com", "192.0.2.3")
      .ptr("2001:db8::1", "v6.example.com")
      .a("v6.example.com", "2001:db8::1")
      .ptr("192.0.2.4", "broken.example.com")
      .servfail("broken.example.com", dns::Type::a)
      .ptr("192.0.2.4", "mail.example.com")
      .a("mail.example.com", "192.0.2.4");
  EXPECT_EQ(dns.result("192.0.2.1", "a@example.com"), SpfResult::pass);
  // Both PTR names checked in the same round.
  EXPECT_EQ(dns.rounds, 3);
  EXPECT_EQ(dns.result("192.0.2.2", "a@example.com"), SpfResult::fail);
  EXPECT_EQ(dns.result("192.0.2.3", "a@example.com"), SpfResult::fail);
  EXPECT_EQ(dns.result("192.0.2.1", "a@target.example"), SpfResult::pass);
  EXPECT_EQ(dns.result("2001:db8::1", "a@example.com"), SpfResult::pass);
  EXPECT_EQ(dns.result("192.0.2.5", "a@example.com"), SpfResult::fail);  // no PTR
  // A failing forward lookup skips that name only.
  EXPECT_EQ(dns.result("192.0.2.4", "a@example.com"), SpfResult::pass);
  // A failing PTR lookup is no match, not temperror.
  FakeDns err;
  err.txt("example.com", "v=spf1 ptr -all").servfail("1.2.0.192.in-addr.arpa", dns::Type::ptr);
  EXPECT_EQ(err.result("192.0.2.1", "a@example.com"), SpfResult::fail);
}

TEST(Spf, PtrLimitIgnoresNamesPastTen) {
  FakeDns dns;
  dns.txt("example.com", "v=spf1 ptr -all");
  for (int i = 0; i < 11; ++i) {
    std::string host = "h" + std::to_string(i) + (i == 10 ? ".example.com" : ".example.org");
    dns.ptr("192.0.2.1", host).a(host, "192.0.2.1");
  }
  EXPECT_EQ(dns.result("192.0.2.1", "a@example.com"), SpfResult::fail);
  EXPECT_EQ(dns.asked_count(dns::Type::a), 10u);
}

TEST(Spf, Ip4Ip6Mechanisms) {
  FakeDns dns;
  dns.txt("example.com", "v=spf1 ip4:192.0.2.0/24 ip6:2001:DB8::/32 ip4:198.51.100.7 -all")
      .txt("all4.example", "v=spf1 ip4:0.0.0.0/0 -all")
      .txt("all6.example", "v=spf1 ip6:::/0 -all")
      .txt("mapped.example", "v=spf1 -ip4:192.0.2.1 ip6:::ffff:192.0.2.1");
  for (std::string ip : {"192.0.2.0", "192.0.2.255", "198.51.100.7", "2001:db8::1",
                         "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "::ffff:192.0.2.9"})
    EXPECT_EQ(dns.result(ip, "a@example.com"), SpfResult::pass) << ip;
  for (std::string ip : {"192.0.3.0", "198.51.100.8", "2001:db9::1", "::192.0.2.1"})
    EXPECT_EQ(dns.result(ip, "a@example.com"), SpfResult::fail) << ip;
  EXPECT_EQ(dns.check("2001:db8::5", "a@example.com").mechanism, "ip6:2001:DB8::/32");
  EXPECT_EQ(dns.result("203.0.113.1", "a@all4.example"), SpfResult::pass);
  EXPECT_EQ(dns.result("2001:db8::1", "a@all4.example"), SpfResult::fail);
  EXPECT_EQ(dns.result("2001:db8::1", "a@all6.example"), SpfResult::pass);
  EXPECT_EQ(dns.result("192.0.2.1", "a@all6.example"), SpfResult::fail);
  // An IPv4-mapped client is an IPv4 client (RFC 7208 5).
  EXPECT_EQ(dns.result("::ffff:192.0.2.1", "a@mapped.example"), SpfResult::fail);
  EXPECT_TRUE(dns.asked.size() == 1);
}

TEST(Spf, ExistsMechanism) {
  FakeDns dns;
  auto nibbles = [](const char* ip) { return spf::ip_dotted(*spf::parse_ip(ip)); };
  dns.txt("example.com", "v=spf1 exists:%{i}.bl.example.com -all")
      .a("192.0.2.1.bl.example.com", "127.0.0.2")
      .a(nibbles("2001:db8::1") + ".bl.example.com", "127.0.0.2")
      .a(nibbles("2001:db8::2") + ".bl.example.com", "2001:db8::2");
  EXPECT_EQ(nibbles("2001:db8::1"),
            "2.0.0.1.0.d.b.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1");
  EXPECT_EQ(dns.result("192.0.2.1", "a@example.com"), SpfResult::pass);
  EXPECT_EQ(dns.result("192.0.2.2", "a@example.com"), SpfResult::fail);
  // Always an A query, even for an IPv6 client.
  EXPECT_EQ(dns.result("2001:db8::1", "a@example.com"), SpfResult::pass);
  EXPECT_EQ(dns.result("2001:db8::2", "a@example.com"), SpfResult::fail);
  EXPECT_EQ(dns.asked_count(dns::Type::aaaa), 0u);
}

TEST(Spf, Include) {
  FakeDns dns;
  dns.txt("pass.example", "v=spf1 ip4:192.0.2.1 -all")
      .txt("soft.example", "v=spf1 ip4:192.0.2.1 ~all")
      .txt("neutral.example", "v=spf1 ip4:192.0.2.1 ?all")
      .txt("perm.example", "v=spf1 foo")
      .servfail("temp.example", dns::Type::txt)
      .a("norecord.example", "192.0.2.1")
      .txt("a.example", "v=spf1 include:pass.example ~all")
      .txt("b.example", "v=spf1 include:soft.example include:neutral.example -all")
      .txt("c.example", "v=spf1 include:temp.example +all")
      .txt("d.example", "v=spf1 include:perm.example +all")
      .txt("e.example", "v=spf1 include:norecord.example +all")
      .txt("f.example", "v=spf1 include:nxdomain.example +all")
      .txt("g.example", "v=spf1 ip4:192.0.2.1 include:temp.example -all")
      .txt("h.example", "v=spf1 -include:pass.example +all");
  EXPECT_EQ(dns.result("192.0.2.1", "x@a.example"), SpfResult::pass);
  EXPECT_EQ(dns.result("192.0.2.2", "x@a.example"), SpfResult::softfail);
  EXPECT_EQ(dns.result("192.0.2.1", "x@b.example"), SpfResult::pass);
  // Inner softfail and neutral are no match.
  EXPECT_EQ(dns.result("192.0.2.2", "x@b.example"), SpfResult::fail);
  auto temp = dns.check("192.0.2.1", "x@c.example");
  EXPECT_EQ(temp.result, SpfResult::temperror);
  EXPECT_EQ(temp.domain, "temp.example");
  EXPECT_EQ(dns.result("192.0.2.1", "x@d.example"), SpfResult::permerror);
  EXPECT_EQ(dns.result("192.0.2.1", "x@e.example"), SpfResult::permerror);
  EXPECT_EQ(dns.result("192.0.2.1", "x@f.example"), SpfResult::permerror);
  // Evaluation stops at the first match: the broken include is never reached.
  EXPECT_EQ(dns.result("192.0.2.1", "x@g.example"), SpfResult::pass);
  EXPECT_EQ(dns.result("192.0.2.1", "x@h.example"), SpfResult::fail);
  EXPECT_EQ(dns.result("192.0.2.2", "x@h.example"), SpfResult::pass);
}

TEST(Spf, Redirect) {
  FakeDns dns;
  dns.txt("a.example", "v=spf1 ip4:192.0.2.1 redirect=_spf.b.example")
      .txt("_spf.b.example", "v=spf1 a -all exp=why.b.example")
      .a("_spf.b.example", "192.0.2.2")
      .txt("why.b.example", "not from %{d}")
      .txt("c.example", "v=spf1 redirect=nowhere.example")
      .txt("d.example", "v=spf1 redirect=_spf.b.example ?all")
      .txt("e.example", "v=spf1 exp=why.e.example redirect=_spf.b.example")
      .txt("why.e.example", "e explains")
      .txt("f.example", "v=spf1 redirect=%{d}.spf.example")
      .txt("f.example.spf.example", "v=spf1 ip4:192.0.2.6 -all");
  EXPECT_EQ(dns.result("192.0.2.1", "x@a.example"), SpfResult::pass);
  // %{d} and a become the redirected domain.
  auto o = dns.check("192.0.2.2", "x@a.example");
  EXPECT_EQ(o.result, SpfResult::pass);
  EXPECT_EQ(o.domain, "_spf.b.example");
  o = dns.check("192.0.2.3", "x@a.example");
  EXPECT_EQ(o.result, SpfResult::fail);
  EXPECT_EQ(o.explanation, "not from _spf.b.example");
  EXPECT_EQ(dns.result("192.0.2.3", "x@c.example"), SpfResult::permerror);
  // Ignored when the record has "all".
  EXPECT_EQ(dns.result("192.0.2.2", "x@d.example"), SpfResult::neutral);
  EXPECT_EQ(dns.asked.size(), 1u);
  // The original record's exp= does not apply after redirect.
  o = dns.check("192.0.2.3", "x@e.example");
  EXPECT_EQ(o.result, SpfResult::fail);
  EXPECT_EQ(o.explanation, "not from _spf.b.example");
  EXPECT_EQ(dns.result("192.0.2.6", "x@f.example"), SpfResult::pass);
}

TEST(Spf, Explanation) {
  FakeDns dns;
  dns.txt("example.com", "v=spf1 ip4:192.0.2.1 -all exp=explain._spf.%{d}")
      .txt("explain._spf.example.com",
           "%{i} is not one of %{d}'s designated mail servers (%{c}, %{r}, %{t}, %{h}).")
      .txt("inc.example", "v=spf1 -include:example.com -all exp=inc-why.example")
      .txt("inc-why.example", "outer")
      .txt("multi.example", "v=spf1 -all exp=two.example")
      .txt("two.example", "one")
      .txt("two.example", "two")
      .txt("bad.example", "v=spf1 -all exp=badmacro.example")
      .txt("badmacro.example", "The %{x}-files")
      .txt("err.example", "v=spf1 -all exp=servfail.example")
      .servfail("servfail.example", dns::Type::txt)
      .txt("none.example", "v=spf1 -all exp=missing.example")
      .txt("soft.example", "v=spf1 ~all exp=explain._spf.example.com")
      .txt("dots.example", "v=spf1 -all exp=msg.example.")
      .txt("msg.example", "Trailing dot stays.")
      .txt("long.example", "v=spf1 -all exp=longmsg.example")
      .txt("longmsg.example", std::string(1000, 'x'))
      .txt("v6.example", "v=spf1 -all exp=v6why.example")
      .txt("v6why.example", "%{c} is queried as %{ir}.%{v}.arpa");
  auto o = dns.check("192.0.2.2", "a@example.com", "helo.example");
  EXPECT_EQ(o.result, SpfResult::fail);
  EXPECT_EQ(o.explanation,
            "192.0.2.2 is not one of example.com's designated mail servers (192.0.2.2, "
            "mx.receiver.example, 1400000000, helo.example).");
  EXPECT_EQ(dns.check("192.0.2.1", "a@example.com").explanation, "");
  // The explanation of the record with the matching mechanism, never an included one.
  EXPECT_EQ(dns.check("192.0.2.1", "a@inc.example").explanation, "outer");
  EXPECT_EQ(dns.check("192.0.2.2", "a@inc.example").explanation, "outer");
  for (std::string d : {"multi.example", "bad.example", "err.example", "none.example"}) {
    o = dns.check("192.0.2.2", "a@" + d);
    EXPECT_EQ(o.result, SpfResult::fail) << d;
    EXPECT_EQ(o.explanation, "") << d;
  }
  // Only for fail.
  o = dns.check("192.0.2.2", "a@soft.example");
  EXPECT_EQ(o.result, SpfResult::softfail);
  EXPECT_EQ(o.explanation, "");
  EXPECT_EQ(dns.check("192.0.2.2", "a@dots.example").explanation, "Trailing dot stays.");
  EXPECT_EQ(dns.check("192.0.2.2", "a@long.example").explanation.size(), 512u);
  EXPECT_EQ(dns.check("2001:db8::cb01", "a@v6.example").explanation,
            "2001:db8::cb01 is queried as "
            "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
}

TEST(Spf, PMacro) {
  FakeDns dns;
  dns.txt("example.com", "v=spf1 -all exp=why.example.com")
      .txt("why.example.com", "connect from %{p}")
      .ptr("192.0.2.1", "mx.example.org")
      .ptr("192.0.2.1", "mx.example.com")
      .a("mx.example.org", "192.0.2.1")
      .a("mx.example.com", "192.0.2.1")
      .ptr("192.0.2.2", "liar.example.com")
      .a("liar.example.com", "192.0.2.3")
      .txt("e7.example.com", "v=spf1 exists:%{p}.ok.example.com -all")
      .a("mx.example.org.ok.example.com", "127.0.0.2");
  // A name below the domain is preferred, else the first.
  EXPECT_EQ(dns.check("192.0.2.1", "a@example.com").explanation, "connect from mx.example.com");
  EXPECT_EQ(dns.check("192.0.2.2", "a@example.com").explanation, "connect from unknown");
  EXPECT_EQ(dns.check("192.0.2.9", "a@example.com").explanation, "connect from unknown");
  EXPECT_EQ(dns.result("192.0.2.1", "a@e7.example.com"), SpfResult::pass);
  EXPECT_EQ(dns.result("192.0.2.2", "a@e7.example.com"), SpfResult::fail);
}

TEST(Spf, LookupLimit) {
  FakeDns dns;
  // Ten terms that look something up, then a match: fine.
  dns.txt("ten.example", "v=spf1 a mx a mx a mx a mx a exists:nx.example ip4:192.0.2.1 -all")
      .txt("eleven.example", "v=spf1 a mx a mx a mx a mx a exists:nx.example a ip4:192.0.2.1 -all")
      .a("ten.example", "192.0.2.200")
      .a("eleven.example", "192.0.2.200")
      .mx("ten.example", 0, "ten.example")
      .mx("eleven.example", 0, "eleven.example")
      .txt("loop.example", "v=spf1 include:loop2.example -all")
      .txt("loop2.example", "v=spf1 include:loop.example -all")
      .txt("self.example", "v=spf1 ip4:192.0.2.9 redirect=self.example")
      .txt("inc.example", "v=spf1 a a a a a a a a")
      .a("inc.example", "192.0.2.200")
      .txt("atlimit.example", "v=spf1 a include:inc.example ip4:192.0.2.1 mx -all")
      .a("atlimit.example", "192.0.2.200")
      .txt("overlimit.example", "v=spf1 a include:inc.example a ip4:192.0.2.1 -all")
      .a("overlimit.example", "192.0.2.200");
  EXPECT_EQ(dns.result("192.0.2.1", "a@ten.example"), SpfResult::pass);
  auto o = dns.check("192.0.2.1", "a@eleven.example");
  EXPECT_EQ(o.result, SpfResult::permerror);
  EXPECT_EQ(o.mechanism, "more than 10 DNS lookups");
  o = dns.check("192.0.2.1", "a@loop.example");
  EXPECT_EQ(o.result, SpfResult::permerror);
  EXPECT_LE(dns.asked.size(), 11u);
  o = dns.check("192.0.2.1", "a@self.example");
  EXPECT_EQ(o.result, SpfResult::permerror);
  EXPECT_LE(dns.asked.size(), 11u);
  EXPECT_EQ(dns.result("192.0.2.1", "a@atlimit.example"), SpfResult::pass);
  EXPECT_EQ(dns.result("192.0.2.1", "a@overlimit.example"), SpfResult::permerror);
  // ip4, ip6 and all cost nothing.
  std::string many = "v=spf1";
  for (int i = 0; i < 50; ++i) many += " ip4:198.51.100." + std::to_string(i) + " ip6:2001:db8::";
  dns.txt("many.example", many + " -all");
  EXPECT_EQ(dns.result("192.0.2.1", "a@many.example"), SpfResult::fail);
}

TEST(Spf, VoidLookupLimit) {
  FakeDns dns;
  dns.txt("two.example", "v=spf1 a:nx1.example mx:nx2.example ?all")
      .txt("three.example", "v=spf1 a:nx1.example mx:nx2.example exists:empty.example ?all")
      .a("empty.example", "2001:db8::1")
      .txt("inc.example", "v=spf1 a:nx1.example include:inner.example ?all")
      .txt("inner.example", "v=spf1 ptr a:nx2.example -all");
  EXPECT_EQ(dns.result("192.0.2.1", "a@two.example"), SpfResult::neutral);
  auto o = dns.check("192.0.2.1", "a@three.example");
  EXPECT_EQ(o.result, SpfResult::permerror);
  EXPECT_EQ(o.mechanism, "more than 2 void lookups");
  // Counted over the whole evaluation, includes and PTR too.
  EXPECT_EQ(dns.result("192.0.2.1", "a@inc.example"), SpfResult::permerror);
}

TEST(Spf, TemporaryErrors) {
  FakeDns dns;
  dns.servfail("servfail.example", dns::Type::txt)
      .timeout("timeout.example", dns::Type::txt)
      .txt("a.example", "v=spf1 a:broken.example -all")
      .servfail("broken.example", dns::Type::a)
      .txt("mx.example", "v=spf1 mx -all")
      .mx("mx.example", 10, "host.mx.example")
      .timeout("host.mx.example", dns::Type::a)
      .txt("exists.example", "v=spf1 exists:slow.example -all")
      .timeout("slow.example", dns::Type::a)
      .txt("redirect.example", "v=spf1 redirect=servfail.example");
  auto o = dns.check("192.0.2.1", "a@servfail.example");
  EXPECT_EQ(o.result, SpfResult::temperror);
  EXPECT_EQ(o.domain, "servfail.example");
  EXPECT_EQ(dns.result("192.0.2.1", "a@timeout.example"), SpfResult::temperror);
  EXPECT_EQ(dns.result("192.0.2.1", "a@a.example"), SpfResult::temperror);
  EXPECT_EQ(dns.result("192.0.2.1", "a@mx.example"), SpfResult::temperror);
  EXPECT_EQ(dns.result("192.0.2.1", "a@exists.example"), SpfResult::temperror);
  EXPECT_EQ(dns.result("192.0.2.1", "a@redirect.example"), SpfResult::temperror);
}

TEST(Spf, SyntaxErrorsAnywhereArePermerror) {
  for (std::string bad : {
           "v=spf1 ip4:192.0.2.1 -all moo",  // unknown mechanism after the match
           "v=spf1 ip4:192.0.2.1 -all.",
           "v=spf1 ip4:192.0.2.1 -all:foo",
           "v=spf1 ip4:192.0.2.1 all/8",
           "v=spf1 ip4:192.0.2.1 redirect:a.example",
           "v=spf1 ip4:192.0.2.1 a:foo-bar",
           "v=spf1 ip4:192.0.2.1 a:111.222.33.44",
           "v=spf1 ip4:192.0.2.1 a:museum",
           "v=spf1 ip4:192.0.2.1 a:museum.",
           "v=spf1 ip4:192.0.2.1 a:example.-com",
           "v=spf1 ip4:192.0.2.1 a:example.com:8080",
           "v=spf1 ip4:192.0.2.1 a:",
           "v=spf1 ip4:192.0.2.1 a/33",
           "v=spf1 ip4:192.0.2.1 a//129",
           "v=spf1 ip4:192.0.2.1 a/24/64",
           "v=spf1 ip4:192.0.2.1 a/024",
           "v=spf1 ip4:192.0.2.1 mx:abc.123",
           "v=spf1 ip4:192.0.2.1 ptr/0",
           "v=spf1 ip4:192.0.2.1 ptr:",
           "v=spf1 ip4:192.0.2.1 include",
           "v=spf1 ip4:192.0.2.1 include:",
           "v=spf1 ip4:192.0.2.1 include:a.example/24",
           "v=spf1 ip4:192.0.2.1 exists",
           "v=spf1 ip4:192.0.2.1 exists:a.example/24",
           "v=spf1 ip4:192.0.2.1 ip4",
           "v=spf1 ip4:192.0.2.1 ip4:192.0.2",
           "v=spf1 ip4:192.0.2.1 ip4:192.0.2.1/33",
           "v=spf1 ip4:192.0.2.1 ip4:192.0.2.1/032",
           "v=spf1 ip4:192.0.2.1 ip4:192.0.2.1//32",
           "v=spf1 ip4:192.0.2.1 ip4:192.0.2.1:25",
           "v=spf1 ip4:192.0.2.1 ip4:2001:db8::1",
           "v=spf1 ip4:192.0.2.1 ip6:192.0.2.1",
           "v=spf1 ip4:192.0.2.1 ip6:2001:db8::/129",
           "v=spf1 ip4:192.0.2.1 ip6:2001:db8:://64",
           "v=spf1 ip4:192.0.2.1 ip6::CAFE::BABE",
           "v=spf1 ip4:192.0.2.1 1up=foo",
           "v=spf1 ip4:192.0.2.1 =all",
           "v=spf1 ip4:192.0.2.1 moo.cow/far_out=man:dog/cat",
           "v=spf1 ip4:192.0.2.1 foo=%abc",
           "v=spf1 ip4:192.0.2.1 exp=",
           "v=spf1 ip4:192.0.2.1 exp=-all",
           "v=spf1 ip4:192.0.2.1 redirect=",
           "v=spf1 ip4:192.0.2.1 exp=a.example exp=b.example",
           "v=spf1 ip4:192.0.2.1 redirect=a.example redirect=a.example",
           "v=spf1 ip4:192.0.2.1 exists:%(ir).bl.example",
           "v=spf1 ip4:192.0.2.1 exists:foo%.bl.example",
           "v=spf1 ip4:192.0.2.1 exists:%{x}.bl.example",
           "v=spf1 ip4:192.0.2.1 exists:%{d0}.bl.example",
           "v=spf1 ip4:192.0.2.1 exists:%{d.bl.example",
           "v=spf1 ip4:192.0.2.1 exists:%{r}.bl.example",
           "v=spf1 ip4:192.0.2.1 exp=%{t}.example",
           "v=spf1 ip4:192.0.2.1 a:ctrl.example\rptr",
           "v=spf1 ip4:192.0.2.1 \x80"
           "a:example.net",
           "v=spf1 ip4:192.0.2.1 a:\xEF\xBB\xBFgarbage.example.net",
           "v=spf1 ip4:192.0.2.1 \t-all",
           "v=spf1 ip4:192.0.2.1 +",
       }) {
    FakeDns dns;
    dns.txt("example.com", bad);
    auto o = dns.check("192.0.2.1", "a@example.com");
    EXPECT_EQ(o.result, SpfResult::permerror) << bad;
    EXPECT_FALSE(parse_spf(bad)) << bad;
    for (char c : o.mechanism) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << o.mechanism;
  }
}

TEST(Spf, ParseTerms) {
  auto terms = parse_spf(
      "v=spf1 +a -mx:mail.example/24//64 ~ptr:%{d} ?ip4:192.0.2.0/24 ip6:2001:db8::/32 "
      "exists:%{ir}.x.example include:_spf.example a//56 mx/0 redirect=r.example "
      "exp=e.%{d} moo.cow-far_out=man:dog/cat all");
  ASSERT_TRUE(terms) << terms.error().detail();
  ASSERT_EQ(terms->size(), 13u);
  const auto& t = *terms;
  EXPECT_EQ(t[0].kind, SpfTerm::Kind::a);
  EXPECT_EQ(t[0].qualifier, '+');
  EXPECT_EQ(t[0].domain_spec, "");
  EXPECT_EQ(t[1].kind, SpfTerm::Kind::mx);
  EXPECT_EQ(t[1].qualifier, '-');
  EXPECT_EQ(t[1].domain_spec, "mail.example");
  EXPECT_EQ(t[1].cidr4, 24);
  EXPECT_EQ(t[1].cidr6, 64);
  EXPECT_EQ(t[2].kind, SpfTerm::Kind::ptr);
  EXPECT_EQ(t[2].qualifier, '~');
  EXPECT_EQ(t[2].domain_spec, "%{d}");
  EXPECT_EQ(t[3].kind, SpfTerm::Kind::ip4);
  EXPECT_EQ(t[3].qualifier, '?');
  EXPECT_EQ(t[3].address, "192.0.2.0");
  EXPECT_EQ(t[3].cidr4, 24);
  EXPECT_EQ(t[4].kind, SpfTerm::Kind::ip6);
  EXPECT_EQ(t[4].address, "2001:db8::");
  EXPECT_EQ(t[4].cidr6, 32);
  EXPECT_EQ(t[5].kind, SpfTerm::Kind::exists);
  EXPECT_EQ(t[6].kind, SpfTerm::Kind::include);
  EXPECT_EQ(t[6].domain_spec, "_spf.example");
  EXPECT_EQ(t[7].cidr4, -1);
  EXPECT_EQ(t[7].cidr6, 56);
  EXPECT_EQ(t[8].cidr4, 0);
  EXPECT_EQ(t[9].kind, SpfTerm::Kind::redirect);
  EXPECT_EQ(t[9].domain_spec, "r.example");
  EXPECT_EQ(t[10].kind, SpfTerm::Kind::exp);
  EXPECT_EQ(t[11].kind, SpfTerm::Kind::unknown_modifier);
  EXPECT_EQ(t[12].kind, SpfTerm::Kind::all);
  EXPECT_EQ(spf::term_text(t[1]), "mx:mail.example/24//64");
  EXPECT_EQ(spf::term_text(t[7]), "a//56");
  EXPECT_EQ(spf::term_text(t[4]), "ip6:2001:db8::/32");
  EXPECT_EQ(spf::term_text(t[12]), "all");
  // Valid shapes from the RFC's grammar.
  for (std::string ok :
       {"v=spf1", "v=spf1 ", "V=SPF1 -ALL", "v=spf1 a:foo:bar/baz.example.com",
        "v=spf1 a:foo.example.xn--zckzah", "v=spf1 a:1.2.3-4", "v=spf1 a:example.com.",
        "v=spf1 a:%{d}", "v=spf1 a:%%.%_%-", "v=spf1 exists:%{l2r+-}.user.%{D2}",
        "v=spf1 default=pass", "v=spf1 default=+", "v=spf1 foo=", "v=spf1 foo=%{c}%{r}",
        "v=spf1 v=spf1", "v=spf1 ip6:::ffff:192.0.2.1", "v=spf1 ip6:::/0", "v=spf1 a/0//0"})
    EXPECT_TRUE(parse_spf(ok)) << ok;
  EXPECT_FALSE(parse_spf(""));
  EXPECT_FALSE(parse_spf("v=spf"));
  EXPECT_FALSE(parse_spf("v=spf1-all"));
  EXPECT_FALSE(parse_spf(" v=spf1 -all"));
}

TEST(Spf, ParseHostileInput) {
  std::mt19937 rng(7208);
  const std::string alphabet = "v=spf1 :/%{}.-+~?aimxpt46lsdr0123456789\x01\xff\t";
  for (int i = 0; i < 20000; ++i) {
    std::string s = "v=spf1 ";
    std::size_t len = rng() % 80;
    for (std::size_t j = 0; j < len; ++j) s += alphabet[rng() % alphabet.size()];
    auto terms = parse_spf(s);
    if (!terms) continue;
    for (const auto& t : *terms) {
      EXPECT_TRUE(t.cidr4 >= -1 && t.cidr4 <= 32);
      EXPECT_TRUE(t.cidr6 >= -1 && t.cidr6 <= 128);
    }
  }
  // Huge: many terms, huge macros, deep digit transformers, all in bounded time.
  std::string big = "v=spf1";
  for (int i = 0; i < 10000; ++i) big += " ip4:192.0.2." + std::to_string(i % 256);
  EXPECT_TRUE(parse_spf(big));
  EXPECT_TRUE(parse_spf("v=spf1 exists:%{d99999999999999999999999r}.x.example"));
  EXPECT_TRUE(parse_spf("v=spf1 a:" + std::string(60000, 'a') + ".example"));
  EXPECT_FALSE(parse_spf(std::string("v=spf1 a:x\0y.example", 20)));
  FakeDns dns;
  std::string macros = "v=spf1 exists:";
  for (int i = 0; i < 3000; ++i) macros += "%{s}";
  dns.txt("example.com", macros + ".x.example -all");
  auto o = dns.check("192.0.2.1", std::string(200, 'l') + "@example.com");
  EXPECT_EQ(o.result, SpfResult::permerror);  // expansion past its bound
  FakeDns trunc;
  trunc.txt("example.com", "v=spf1 exists:%{l}.%{l}.%{l}.%{l}.%{l}.x.example -all");
  std::string local(60, 'q');
  o = trunc.check("192.0.2.1", local + "@example.com");
  EXPECT_EQ(o.result, SpfResult::fail);
  ASSERT_EQ(trunc.asked_count(dns::Type::a), 1u);
  for (const auto& q : trunc.asked)
    if (q.type == dns::Type::a) {
      EXPECT_EQ(q.name, local + "." + local + "." + local + "." + local + ".x.example");
    }
  // Garbage answers: malformed TXT, A records of the wrong size, MX/PTR that do not parse.
  FakeDns junk;
  junk.add("example.com", dns::Type::txt, "\x09v=spf1 a")
      .txt("example.com", "v=spf1 a mx ptr -all")
      .add("example.com", dns::Type::a, "abc")
      .add("example.com", dns::Type::a, std::string(16, '\0'))
      .add("example.com", dns::Type::mx, "\x00")
      .add("example.com", dns::Type::mx, std::string("\x00\x01\xc0\x0c", 4))
      .add("1.2.0.192.in-addr.arpa", dns::Type::ptr,
           "\x05"
           "ab");
  EXPECT_EQ(junk.result("192.0.2.1", "a@example.com"), SpfResult::fail);
}

TEST(Spf, MacroExpansionRfcExamples) {
  spf::MacroValues v;
  v.sender = "strong-bad@email.example.com";
  v.local_part = "strong-bad";
  v.sender_domain = "email.example.com";
  v.domain = "email.example.com";
  v.ip_dotted = "192.0.2.3";
  v.ip_text = "192.0.2.3";
  v.ip_version = "in-addr";
  v.helo = "mx.example.org";
  v.receiver = "mx.receiver.example";
  v.timestamp = "1400000000";
  auto x = [&](std::string_view s, spf::MacroUse use = spf::MacroUse::domain) {
    auto r = spf::expand_macros(s, v, use);
    return r ? *r : "ERROR: " + r.error().detail();
  };
  // RFC 7208 7.4.
  EXPECT_EQ(x("%{s}"), "strong-bad@email.example.com");
  EXPECT_EQ(x("%{o}"), "email.example.com");
  EXPECT_EQ(x("%{d}"), "email.example.com");
  EXPECT_EQ(x("%{d4}"), "email.example.com");
  EXPECT_EQ(x("%{d3}"), "email.example.com");
  EXPECT_EQ(x("%{d2}"), "example.com");
  EXPECT_EQ(x("%{d1}"), "com");
  EXPECT_EQ(x("%{dr}"), "com.example.email");
  EXPECT_EQ(x("%{d2r}"), "example.email");
  EXPECT_EQ(x("%{l}"), "strong-bad");
  EXPECT_EQ(x("%{l-}"), "strong.bad");
  EXPECT_EQ(x("%{lr}"), "strong-bad");
  EXPECT_EQ(x("%{lr-}"), "bad.strong");
  EXPECT_EQ(x("%{l1r-}"), "strong");
  EXPECT_EQ(x("%{ir}.%{v}._spf.%{d2}"), "3.2.0.192.in-addr._spf.example.com");
  EXPECT_EQ(x("%{lr-}.lp._spf.%{d2}"), "bad.strong.lp._spf.example.com");
  EXPECT_EQ(x("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}"),
            "bad.strong.lp.3.2.0.192.in-addr._spf.example.com");
  EXPECT_EQ(x("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}"), "3.2.0.192.in-addr.strong.lp._spf.example.com");
  EXPECT_EQ(x("%{d2}.trusted-domains.example.net"), "example.com.trusted-domains.example.net");
  auto ip6 = spf::parse_ip("2001:db8::cb01");
  ASSERT_TRUE(ip6);
  v.ip_dotted = spf::ip_dotted(*ip6);
  v.ip_version = "ip6";
  EXPECT_EQ(x("%{ir}.%{v}._spf.%{d2}"),
            "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com");
  // Escapes, upper case (URL-escaped), delimiters, counts past the parts.
  EXPECT_EQ(x("a%%b%_c%-d"), "a%b c%20d");
  EXPECT_EQ(x("%{S}"), "strong-bad%40email.example.com");
  v.local_part = "~jack&jill=up-a_b3.c";
  EXPECT_EQ(x("%{L}"), "~jack%26jill%3Dup-a_b3.c");
  EXPECT_EQ(x("%{l=_}"), "~jack&jill.up-a.b3.c");
  EXPECT_EQ(x("%{l&}").rfind("ERROR", 0), 0u);  // "&" is no delimiter
  EXPECT_EQ(x("%{D9r}"), "com.example.email");
  EXPECT_EQ(x("%{d1000000000000000000000}"), "email.example.com");
  // c, r, t and spaces only in explanation text.
  EXPECT_EQ(x("%{c} %{r} %{t}", spf::MacroUse::explanation),
            "192.0.2.3 mx.receiver.example 1400000000");
  EXPECT_EQ(x("%{c}").rfind("ERROR", 0), 0u);
  EXPECT_EQ(x("a b").rfind("ERROR", 0), 0u);
  for (std::string bad : {"%", "%{", "%{d", "%{d2", "%{d0}", "%{dx}", "%{q}", "%x", "%{d}}%",
                          "%{d-+r}", "\x7f", "\xc3\xa9"})
    EXPECT_EQ(x(bad, spf::MacroUse::explanation).rfind("ERROR", 0), 0u) << bad;
  EXPECT_TRUE(spf::uses_macro("a.%{p}.b", 'p'));
  EXPECT_TRUE(spf::uses_macro("%{P2}", 'p'));
  EXPECT_FALSE(spf::uses_macro("%%{p}", 'p'));
  EXPECT_FALSE(spf::uses_macro("%{d}", 'p'));
}

TEST(Spf, DomainTruncation) {
  std::string label(50, 'x');
  std::string name;
  for (int i = 0; i < 6; ++i) name += label + ".";
  name += "example.com.";
  std::string t = spf::truncate_domain(name);
  EXPECT_LE(t.size(), 253u);
  EXPECT_EQ(t, label + "." + label + "." + label + "." + label + ".example.com");
  EXPECT_EQ(spf::truncate_domain("example.com."), "example.com");
  EXPECT_EQ(spf::truncate_domain(std::string(300, 'a')), std::string(300, 'a'));
  EXPECT_TRUE(spf::check_domain_spec("foo.%{d}"));
  EXPECT_TRUE(spf::check_domain_spec("%{d}"));
  EXPECT_FALSE(spf::check_domain_spec("foo.%{d}x"));
  EXPECT_FALSE(spf::check_domain_spec("example.%%com"));
}

TEST(Spf, InNetwork) {
  EXPECT_TRUE(in_network("192.0.2.1", "192.0.2.0/24"));
  EXPECT_TRUE(in_network("192.0.2.1", "192.0.2.1"));
  EXPECT_TRUE(in_network("192.0.2.1", "0.0.0.0/0"));
  EXPECT_TRUE(in_network("192.0.2.255", "192.0.2.128/25"));
  EXPECT_FALSE(in_network("192.0.2.127", "192.0.2.128/25"));
  EXPECT_FALSE(in_network("192.0.3.1", "192.0.2.0/24"));
  EXPECT_TRUE(in_network("2001:db8::1", "2001:db8::/32"));
  EXPECT_TRUE(in_network("2001:DB8:ffff::1", "2001:db8::/32"));
  EXPECT_FALSE(in_network("2001:db9::1", "2001:db8::/32"));
  EXPECT_TRUE(in_network("2001:db8::1", "2001:db8::1"));
  EXPECT_TRUE(in_network("2001:db8::1", "::/0"));
  EXPECT_TRUE(in_network("2001:db8::3", "2001:db8::2/127"));
  EXPECT_FALSE(in_network("2001:db8::4", "2001:db8::2/127"));
  // IPv4-mapped clients and networks are IPv4.
  EXPECT_TRUE(in_network("::ffff:192.0.2.1", "192.0.2.0/24"));
  EXPECT_TRUE(in_network("192.0.2.1", "::ffff:192.0.2.0/120"));
  EXPECT_FALSE(in_network("192.0.2.1", "::ffff:0:0/95"));
  EXPECT_FALSE(in_network("192.0.2.1", "::/0"));
  EXPECT_FALSE(in_network("2001:db8::1", "0.0.0.0/0"));
  for (std::string bad :
       {"", "/", "192.0.2.0/", "192.0.2.0/33", "192.0.2.0/-1", "192.0.2.0/024", "192.0.2.0/24/",
        "192.0.2.0/2x", "192.0.2/24", "01.2.3.4", "2001:db8::/129", "2001:db8:::1/64",
        "[2001:db8::]/32", "192.0.2.0/999999999999999999", "fe80::1%eth0"})
    EXPECT_FALSE(in_network("192.0.2.1", bad) || in_network("2001:db8::1", bad)) << bad;
  EXPECT_FALSE(in_network("", "0.0.0.0/0"));
  EXPECT_FALSE(in_network("192.0.2.1 ", "0.0.0.0/0"));
  EXPECT_FALSE(in_network(std::string("192.0.2.1\0", 10), "0.0.0.0/0"));
  EXPECT_FALSE(in_network(std::string(100, '1'), "0.0.0.0/0"));
}

TEST(Spf, ReverseNames) {
  EXPECT_EQ(spf::reverse_name(*spf::parse_ip("192.0.2.3")), "3.2.0.192.in-addr.arpa");
  EXPECT_EQ(spf::reverse_name(*spf::parse_ip("::ffff:192.0.2.3")), "3.2.0.192.in-addr.arpa");
  EXPECT_EQ(spf::reverse_name(*spf::parse_ip("2001:db8::cb01")),
            "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
  EXPECT_EQ(spf::ip_text(*spf::parse_ip("2001:DB8::CB01")), "2001:db8::cb01");
  EXPECT_EQ(to_string(SpfResult::softfail), std::string("softfail"));
  EXPECT_EQ(to_string(SpfResult::permerror), std::string("permerror"));
}

}  // namespace
}  // namespace postern::mailauth
