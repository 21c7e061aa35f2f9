#include <gtest/gtest.h>

#include "mime/mime.hpp"

namespace postern::mime {
namespace {

TEST(Headers, ParsesFoldedFieldsAndBody) {
  std::string msg = "Subject: hello\r\n  world\r\nFrom: a@example.org\r\n\r\nbody\r\nline2\r\n";
  auto hs = parse_header_section(msg, {});
  ASSERT_TRUE(hs);
  ASSERT_EQ(hs->headers.size(), 2u);
  EXPECT_EQ(unfold(hs->find("subject")->raw_value), "hello  world");
  EXPECT_EQ(msg.substr(hs->body_offset), "body\r\nline2\r\n");
}

TEST(Headers, NoBody) {
  std::string msg = "Subject: x\r\n";
  auto hs = parse_header_section(msg, {});
  ASSERT_TRUE(hs);
  EXPECT_EQ(hs->body_offset, msg.size());
}

TEST(Headers, MissingSeparatorStartsBodyAtFirstNonHeader) {
  std::string msg = "Subject: x\r\nnot a header\r\n";
  auto hs = parse_header_section(msg, {});
  ASSERT_TRUE(hs);
  EXPECT_EQ(hs->headers.size(), 1u);
  EXPECT_EQ(msg.substr(hs->body_offset), "not a header\r\n");
}

TEST(Headers, Limits) {
  std::string many;
  for (int i = 0; i < 20; ++i) many += "X-A: b\r\n";
  HeaderLimits l;
  l.max_headers = 10;
  EXPECT_EQ(parse_header_section(many, l).error().code(), Errc::too_many_headers);
  l = {};
  l.max_header_bytes = 50;
  EXPECT_EQ(parse_header_section("X: " + std::string(100, 'a') + "\r\n", l).error().code(),
            Errc::header_too_long);
}

TEST(Summary, RoundTrip) {
  std::string msg = "Subject: s\r\nTo: b@example.org\r\n\r\nl1\r\nl2\r\nl3";
  auto s = summarize(msg, {});
  ASSERT_TRUE(s);
  EXPECT_EQ(s->size, msg.size());
  EXPECT_EQ(s->body_lines, 3u);
  auto back = Summary::parse(s->serialize());
  ASSERT_TRUE(back);
  EXPECT_EQ(back->header_section, "Subject: s\r\nTo: b@example.org\r\n\r\n");
  EXPECT_EQ(back->body_offset, s->body_offset);
  EXPECT_FALSE(Summary::parse("PSUM1short"));
  std::string bad = s->serialize();
  bad.pop_back();
  EXPECT_FALSE(Summary::parse(bad));
  s->envelope_cache = "(envelope)";
  s->structure_cache = "(structure)";
  auto cached = Summary::parse(s->serialize());
  ASSERT_TRUE(cached);
  EXPECT_EQ(cached->envelope_cache, "(envelope)");
  EXPECT_EQ(cached->structure_cache, "(structure)");
  // A summary stored before the caches existed ("PSUM2": the same without the last two
  // fields) still reads, with empty caches.
  std::string v2 = s->serialize();
  v2.replace(0, 5, "PSUM2");
  v2.resize(v2.size() - (8 + 10) - (8 + 11));
  auto old = Summary::parse(v2);
  ASSERT_TRUE(old);
  EXPECT_TRUE(old->envelope_cache.empty());
  EXPECT_EQ(old->header_section, s->header_section);
}

TEST(Base64, StrictDecoding) {
  EXPECT_EQ(*decode_base64("AGFubgBwdw=="), std::string("\0ann\0pw", 7));
  EXPECT_EQ(*decode_base64(""), "");
  EXPECT_FALSE(decode_base64("AGFubgBwdw="));    // length not a multiple of 4
  EXPECT_FALSE(decode_base64("AGF ubgBwdw=="));  // space
  EXPECT_FALSE(decode_base64("AG=ubgBw"));       // padding in the middle
  EXPECT_FALSE(decode_base64("not-base64!!"));
}

}  // namespace
}  // namespace postern::mime
