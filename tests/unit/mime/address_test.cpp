#include <gtest/gtest.h>

#include "mime/mime.hpp"

namespace postern::mime {
namespace {

struct Case {
  const char* text;
  bool utf8_allowed;
  bool ok;
  const char* normalised;  // lookup key when ok
};

TEST(Mailbox, Table) {
  const Case cases[] = {
      {"a@example.org", false, true, "a@example.org"},
      {"A.B@Example.ORG", false, true, "a.b@example.org"},
      {"\"a b\"@example.org", false, true, "a b@example.org"},
      {"\"a\\\"b\"@example.org", false, true, "a\"b@example.org"},
      {"a+tag@sub.example.org", false, true, "a+tag@sub.example.org"},
      {"a@[192.0.2.1]", false, true, "a@[192.0.2.1]"},
      {"a@[IPv6:2001:db8::1]", false, true, "a@[IPv6:2001:db8::1]"},
      {"j\xc3\xb6rg@example.org", true, true, "j\xc3\xb6rg@example.org"},
      {"j\xc3\xb6rg@b\xc3\xbc"
       "cher.example",
       true, true,
       "j\xc3\xb6rg@b\xc3\xbc"
       "cher.example"},
      {"j\xc3\xb6rg@example.org", false, false, nullptr},
      {"a\xff@example.org", true, false, nullptr},
      {"a\xc0\x80@example.org", true, false, nullptr},  // overlong
      {"", false, false, nullptr},
      {"a", false, false, nullptr},
      {"a@", false, false, nullptr},
      {"@example.org", false, false, nullptr},
      {".a@example.org", false, false, nullptr},
      {"a.@example.org", false, false, nullptr},
      {"a..b@example.org", false, false, nullptr},
      {"a b@example.org", false, false, nullptr},
      {"a@b@example.org", false, false, nullptr},
      {"a@-example.org", false, false, nullptr},
      {"a@example-.org", false, false, nullptr},
      {"a@example..org", false, false, nullptr},
      {"a@[300.0.0.1]", false, false, nullptr},
      {"a@[IPv6:zz]", false, false, nullptr},
      {"\"unterminated@example.org", false, false, nullptr},
      {"\"a\x01\"@example.org", false, false, nullptr},
  };
  for (const auto& c : cases) {
    auto r = parse_mailbox(c.text, c.utf8_allowed);
    EXPECT_EQ(static_cast<bool>(r), c.ok) << c.text;
    if (r && c.ok) {
      EXPECT_EQ(r->lookup_key(), c.normalised) << c.text;
    }
  }
}

TEST(Mailbox, Limits) {
  std::string local(64, 'a');
  EXPECT_TRUE(parse_mailbox(local + "@example.org", false));
  EXPECT_EQ(parse_mailbox(local + "a@example.org", false).error().code(),
            Errc::local_part_too_long);
  std::string label(63, 'b');
  EXPECT_TRUE(valid_domain(label + ".org", false));
  EXPECT_FALSE(valid_domain(label + "b.org", false));
  std::string domain;
  while (domain.size() < 255) domain += "abcdefghi.";
  domain += "org";
  EXPECT_EQ(parse_mailbox("a@" + domain, false).error().code(), Errc::domain_too_long);
}

TEST(Mailbox, StrRequotesWhenNeeded) {
  EXPECT_EQ(parse_mailbox("\"a b\"@example.org", false)->str(), "\"a b\"@example.org");
  EXPECT_EQ(parse_mailbox("\"ab\"@example.org", false)->str(), "ab@example.org");
}

}  // namespace
}  // namespace postern::mime
