#include <gtest/gtest.h>

#include "mime/mime.hpp"

namespace postern::mime {
namespace {

std::string crlf(std::string s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') out += '\r';
    out += c;
  }
  return out;
}

const std::string nested = crlf(
    "Subject: nested\n"
    "Content-Type: multipart/mixed; boundary=\"outer b\"\n"
    "\n"
    "preamble\n"
    "--outer b\n"
    "Content-Type: text/plain\n"
    "\n"
    "hello\n"
    "--outer b\n"
    "Content-Type: multipart/alternative;\n"
    " boundary=inner\n"
    "\n"
    "--inner\n"
    "Content-Type: text/plain\n"
    "\n"
    "alt1\n"
    "line2\n"
    "--inner  \n"
    "Content-Type: text/html\n"
    "\n"
    "<p>alt2</p>\n"
    "--inner--\n"
    "--outer b--\n"
    "epilogue\n");

TEST(Structure, NestedMultipart) {
  auto s = summarize(nested, {});
  ASSERT_TRUE(s);
  ASSERT_EQ(s->parts.size(), 4u);
  auto body = [&](const Part& p) { return nested.substr(p.body_offset, p.body_size); };
  EXPECT_EQ(s->parts[0].path, "1");
  EXPECT_EQ(body(s->parts[0]), "hello");
  EXPECT_EQ(s->parts[0].headers, "Content-Type: text/plain\r\n\r\n");
  EXPECT_EQ(s->parts[1].path, "2");
  EXPECT_EQ(s->parts[1].children, 2u);
  EXPECT_EQ(s->parts[2].path, "2.1");
  EXPECT_EQ(body(s->parts[2]), "alt1\r\nline2");
  EXPECT_EQ(s->parts[2].body_lines, 2u);
  EXPECT_EQ(s->parts[3].path, "2.2");
  EXPECT_EQ(body(s->parts[3]), "<p>alt2</p>");
  auto back = Summary::parse(s->serialize());
  ASSERT_TRUE(back);
  ASSERT_EQ(back->parts.size(), 4u);
  EXPECT_EQ(back->parts[3].path, "2.2");
  EXPECT_EQ(back->parts[1].children, 2u);
  EXPECT_EQ(back->parts[2].body_offset, s->parts[2].body_offset);
}

TEST(Structure, NotMultipartOrNoBoundaryHasNoParts) {
  EXPECT_TRUE(summarize(crlf("Content-Type: text/plain\n\nx\n"), {})->parts.empty());
  EXPECT_TRUE(summarize(crlf("Content-Type: multipart/mixed\n\n--x\n\nx\n"), {})->parts.empty());
  EXPECT_TRUE(summarize(crlf("Subject: none\n\nbody\n"), {})->parts.empty());
}

TEST(Structure, UnterminatedLastPartRunsToTheEnd) {
  auto s = summarize(crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\n\nonly\n"), {});
  ASSERT_EQ(s->parts.size(), 1u);
  EXPECT_EQ(s->parts[0].body_size, 6u);  // "only\r\n"
}

TEST(Structure, DepthAndCountAreBounded) {
  std::string msg = "Content-Type: multipart/mixed; boundary=b0\r\n\r\n";
  for (int i = 1; i < 40; ++i)
    msg += "--b" + std::to_string(i - 1) + "\r\nContent-Type: multipart/mixed; boundary=b" +
           std::to_string(i) + "\r\n\r\n";
  auto s = summarize(msg, {});
  ASSERT_TRUE(s);
  EXPECT_EQ(s->parts.size(), StructureLimits{}.max_depth);
  std::string many = "Content-Type: multipart/mixed; boundary=b\r\n\r\n";
  for (int i = 0; i < 2000; ++i) many += "--b\r\n\r\nx\r\n";
  EXPECT_EQ(summarize(many, {})->parts.size(), StructureLimits{}.max_parts);
}

TEST(Structure, BoundaryParameter) {
  EXPECT_EQ(multipart_boundary("multipart/mixed; boundary=abc"), "abc");
  EXPECT_EQ(multipart_boundary("multipart/mixed; charset=x; BOUNDARY=\"a b;c\""), "a b;c");
  EXPECT_EQ(multipart_boundary("multipart/mixed; boundary = abc ; x=y"), "abc");
  EXPECT_EQ(multipart_boundary("multipart/mixed"), "");
  EXPECT_EQ(multipart_boundary("multipart/mixed; boundary=" + std::string(71, 'a')), "");
}

TEST(Summary, CorruptPartsAreRejected) {
  auto s = summarize(nested, {});
  std::string bytes = s->serialize();
  for (std::size_t cut = 1; cut < bytes.size(); cut += 7)
    EXPECT_FALSE(Summary::parse(bytes.substr(0, bytes.size() - cut))) << cut;
}

}  // namespace
}  // namespace postern::mime
