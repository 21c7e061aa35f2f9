// The IMAP protocol core's pieces on their own: command reading with literals, limits,
// sequence sets, mailbox names, LIST patterns, ENVELOPE and BODYSTRUCTURE, sections.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "imap/imap.hpp"

namespace postern::imap {
namespace {

TEST(ImapReader, LiteralsSynchronisingAndNot) {
  Limits l;
  CommandReader r(l);
  r.feed("a APPEND x {5}\r\n");
  EXPECT_EQ(r.next(), CommandReader::Status::continuation);
  EXPECT_EQ(r.next(), CommandReader::Status::need_more);
  r.feed("he");
  EXPECT_EQ(r.next(), CommandReader::Status::need_more);
  r.feed("llo {3+}\r\nabc\r\nb NOOP\r\n");
  ASSERT_EQ(r.next(), CommandReader::Status::command);
  EXPECT_EQ(r.take_command(), "a APPEND x {5}\r\nhello {3+}\r\nabc\r\n");
  ASSERT_EQ(r.next(), CommandReader::Status::command);
  EXPECT_EQ(r.take_command(), "b NOOP\r\n");
}

TEST(ImapReader, LimitsOnLinesAndLiterals) {
  Limits l;
  l.max_line = 100;
  l.max_literal = 10;
  CommandReader r(l);
  r.feed(std::string(150, 'x'));
  EXPECT_EQ(r.next(), CommandReader::Status::too_long);
  CommandReader r2(l);
  r2.set_logged_in(true);
  r2.feed("t1 APPEND x {11}\r\n");
  EXPECT_EQ(r2.next(), CommandReader::Status::literal_too_big);
  EXPECT_TRUE(r2.can_continue());
  EXPECT_EQ(r2.tag(), "t1");
  CommandReader r3(l);
  r3.set_logged_in(true);
  r3.feed("t2 APPEND x {11+}\r\n");
  EXPECT_EQ(r3.next(), CommandReader::Status::literal_too_big);
  EXPECT_FALSE(r3.can_continue());
}

TEST(ImapReader, SmallLiteralsOnlyBeforeLogin) {
  Limits l;
  CommandReader r(l);
  r.feed("a LOGIN {8193}\r\n");
  EXPECT_EQ(r.next(), CommandReader::Status::literal_too_big);
  EXPECT_TRUE(r.can_continue());
  r.feed("b LOGIN {4097+}\r\n");
  EXPECT_EQ(r.next(), CommandReader::Status::literal_too_big);
  EXPECT_FALSE(r.can_continue());
  CommandReader ok(l);
  ok.feed("c LOGIN {5000}\r\n");
  EXPECT_EQ(ok.next(), CommandReader::Status::continuation);
  // The whole command is bounded too, however many literals it is made of.
  Limits small;
  small.max_command = 10000;
  CommandReader many(small);
  many.set_logged_in(true);
  std::string cmd = "d X";
  for (int i = 0; i < 3; ++i) cmd += " {4000+}\r\n" + std::string(4000, 'x');
  many.feed(cmd + "\r\n");
  EXPECT_EQ(many.next(), CommandReader::Status::literal_too_big);
}

TEST(ImapParser, TokensSectionsAndUid) {
  Limits l;
  std::string tag;
  auto c =
      parse_command("x UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (A B)]<0.10>)\r\n", l, &tag);
  ASSERT_TRUE(c) << c.error().describe();
  EXPECT_EQ(c->name, "UID FETCH");
  ASSERT_EQ(c->args.size(), 2u);
  ASSERT_EQ(c->args[1].items.size(), 2u);
  EXPECT_EQ(c->args[1].items[1].text, "BODY.PEEK[HEADER.FIELDS (A B)]<0.10>");
  auto lit = parse_command("y LOGIN {3}\r\na b \"p\\\"w\"\r\n", l, &tag);
  ASSERT_TRUE(lit);
  EXPECT_EQ(lit->args[0].text, "a b");
  EXPECT_TRUE(lit->args[0].literal);
  EXPECT_EQ(lit->args[1].text, "p\"w");
  EXPECT_FALSE(parse_command("z LOGIN \"a\r\n", l, &tag));
  EXPECT_EQ(tag, "z");
}

TEST(ImapParser, SequenceSets) {
  Limits l;
  auto s = parse_sequence_set("1:3,7,9:*", l);
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->contains(2, 20));
  EXPECT_FALSE(s->contains(8, 20));
  EXPECT_TRUE(s->contains(20, 20));
  EXPECT_FALSE(parse_sequence_set("0", l));
  EXPECT_FALSE(parse_sequence_set("1:", l));
  EXPECT_FALSE(parse_sequence_set("01", l));
  EXPECT_FALSE(parse_sequence_set("4294967296", l));
  l.max_ranges = 3;
  EXPECT_FALSE(parse_sequence_set("1,2,3,4", l));
  EXPECT_EQ(format_set({5, 1, 2, 3, 9, 10}), "1:3,5,9:10");
}

TEST(ImapNames, ModifiedUtf7RoundTrip) {
  for (std::string name : {"Café", "日本語/メール", "a&b", "Emoji 😀", "INBOX/Ünïcode"}) {
    std::string wire = encode_mailbox_name(name, false);
    for (char c : wire) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << wire;
    auto back = decode_mailbox_name(wire, false);
    ASSERT_TRUE(back) << wire;
    EXPECT_EQ(*back, name);
  }
  EXPECT_EQ(encode_mailbox_name("Café", false), "Caf&AOk-");
  EXPECT_EQ(encode_mailbox_name("a&b", false), "a&-b");
  EXPECT_EQ(*decode_mailbox_name("inbox/x", false), "INBOX/x");
  for (const char* bad : {"", "a//b", "/a", "a/", "..", "a/../b", "&AGE-", "&Jjo", "a\x01"})
    EXPECT_FALSE(decode_mailbox_name(bad, false)) << bad;
  EXPECT_FALSE(decode_mailbox_name(std::string(600, 'a'), false));
}

TEST(ImapNames, ListPatterns) {
  EXPECT_TRUE(list_match("*", "a/b/c"));
  EXPECT_TRUE(list_match("%", "a"));
  EXPECT_FALSE(list_match("%", "a/b"));
  EXPECT_TRUE(list_match("a/%", "a/b"));
  EXPECT_FALSE(list_match("a/%", "a/b/c"));
  EXPECT_TRUE(list_match("a*c", "a/b/c"));
  EXPECT_FALSE(list_match("a%c", "a/b/c"));
}

TEST(ImapResponses, EnvelopeWithGroupsAndQuotes) {
  std::string h =
      "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nSubject: Hi \"there\"\r\nFrom: \"Doe, J.\" "
      "<j@x.org> (comment)\r\nTo: undisclosed:;, a@b.c, Team: x@y.z, <w@v.u>;\r\n"
      "Message-ID: <1@x>\r\n\r\n";
  EXPECT_EQ(envelope(h),
            "(\"Mon, 1 Jan 2024 10:00:00 +0000\" \"Hi \\\"there\\\"\" ((\"Doe, J.\" NIL \"j\" "
            "\"x.org\")) ((\"Doe, J.\" NIL \"j\" \"x.org\")) ((\"Doe, J.\" NIL \"j\" \"x.org\")) "
            "((NIL NIL \"undisclosed\" NIL)(NIL NIL NIL NIL)(NIL NIL \"a\" \"b.c\")(NIL NIL "
            "\"Team\" NIL)(NIL NIL \"x\" \"y.z\")(NIL NIL \"w\" \"v.u\")(NIL NIL NIL NIL)) NIL NIL "
            "NIL \"<1@x>\")");
}

TEST(ImapResponses, BodyStructureOfMultipartWithAttachedMessage) {
  std::string msg =
      "Subject: s\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\npreamble\r\n--b1\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n--b1\r\nContent-Type: "
      "message/rfc822\r\nContent-Disposition: attachment; filename=\"m.eml\"\r\n\r\nSubject: "
      "inner\r\n\r\ninner body\r\n--b1--\r\n";
  auto sum = mime::summarize(msg, mime::HeaderLimits{});
  ASSERT_TRUE(sum);
  // The attached message's structure needs its content.
  EXPECT_FALSE(body_structure(*sum, "", true));
  auto bs = body_structure(*sum, msg, true);
  ASSERT_TRUE(bs);
  EXPECT_EQ(*bs,
            "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7BIT\" 5 1 NIL NIL NIL NIL)"
            "(\"message\" \"rfc822\" NIL NIL NIL \"7BIT\" 28 (NIL \"inner\" NIL NIL NIL NIL NIL "
            "NIL NIL NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 10 1 NIL "
            "NIL NIL NIL) 3 NIL (\"attachment\" (\"filename\" \"m.eml\")) NIL NIL) \"mixed\" "
            "(\"boundary\" \"b1\") NIL NIL NIL)");
  Section s = *parse_section("2.1", Limits{});
  EXPECT_EQ(*section_bytes(msg, s), "inner body");
  EXPECT_EQ(*section_bytes(msg, *parse_section("2.HEADER", Limits{})), "Subject: inner\r\n\r\n");
  EXPECT_EQ(*section_bytes(msg, *parse_section("1", Limits{})), "hello");
  EXPECT_FALSE(section_bytes(msg, *parse_section("3", Limits{})));
  EXPECT_FALSE(parse_section("0", Limits{}));
  EXPECT_FALSE(parse_section("1.BOGUS", Limits{}));
}

TEST(ImapResponses, TransferDecodingAndDates) {
  EXPECT_EQ(*decode_transfer_encoding("base64", "aGVs\r\nbG8=\r\n"), "hello");
  EXPECT_EQ(*decode_transfer_encoding("Quoted-Printable", "a=3Db=\r\nc"), "a=bc");
  EXPECT_FALSE(decode_transfer_encoding("x-uuencode", "x"));
  EXPECT_EQ(*parse_date_time("07-Feb-2024 21:52:25 +0100"), 1707339145);
  EXPECT_EQ(imap_date_time(1707339145), "\"07-Feb-2024 20:52:25 +0000\"");
  EXPECT_FALSE(parse_date_time("07-Feb-2024 25:00:00 +0000"));
  EXPECT_EQ(*parse_date("1-Jan-1970"), 0);
}

TEST(ImapSearch, DecodesEncodedWordsAndTransferEncodings) {
  std::string msg =
      "Subject: =?UTF-8?Q?Caf=C3=A9_men=C3=BC?= =?ISO-8859-1?B?6XTp?=\r\n"
      "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
      "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: "
      "quoted-printable\r\n\r\nd=E9j=E0 vu\r\n--b\r\nContent-Type: text/html\r\n"
      "Content-Transfer-Encoding: base64\r\n\r\nPGI+Ym9sZDwvYj4=\r\n--b--\r\n";
  auto search = [&](const std::vector<std::string>& words) {
    std::string cmd = "t SEARCH";
    for (const auto& w : words) cmd += " " + w;
    auto c = parse_command(cmd + "\r\n", Limits{}, nullptr);
    EXPECT_TRUE(c) << cmd;
    auto p = parse_search(c->args, Limits{});
    EXPECT_TRUE(p) << cmd;
    SearchSubject s;
    s.header_section = msg;
    s.message = msg;
    return matches(p->root, s);
  };
  EXPECT_TRUE(search({"SUBJECT", "\"Café menü\""}));
  EXPECT_TRUE(search({"SUBJECT", "\"menüété\""}));  // adjacent words join
  EXPECT_TRUE(search({"BODY", "\"déjà\""}));
  EXPECT_TRUE(search({"BODY", "<b>bold"}));
  EXPECT_TRUE(search({"TEXT", "\"Café\""}));
  EXPECT_FALSE(search({"BODY", "\"Café\""}));
  EXPECT_EQ(mime::decode_header_value("=?x-unknown?Q?a?= b"), "=?x-unknown?Q?a?= b");
}

// UidList against a plain sorted vector, over random appends and erases.
TEST(ImapUidList, MatchesAVectorModel) {
  std::mt19937 rng(7);
  for (int round = 0; round < 20; ++round) {
    UidList list;
    std::vector<uint32_t> model;
    uint32_t next = 1;
    for (int op = 0; op < 2000; ++op) {
      if (model.empty() || rng() % 3 != 0) {
        next += 1 + (rng() % 4 == 0 ? rng() % 5 : 0);
        list.push_back(next);
        model.push_back(next);
      } else if (rng() % 2 == 0) {
        uint32_t victim = model[rng() % model.size()];
        list.erase_all({victim});
        model.erase(std::find(model.begin(), model.end(), victim));
      } else {
        std::vector<uint32_t> victims;
        for (uint32_t u : model)
          if (rng() % 7 == 0) victims.push_back(u);
        victims.push_back(next + 5);  // absent: ignored
        list.erase_all(victims);
        std::erase_if(model, [&](uint32_t u) {
          return std::binary_search(victims.begin(), victims.end(), u);
        });
      }
      if (op % 97 == 0) {
        ASSERT_EQ(list.size(), model.size());
        ASSERT_EQ(list.all(), model);
        for (std::size_t i = 0; i < model.size(); i += 13) {
          ASSERT_EQ(list.seq_of(model[i]), i + 1);
          ASSERT_EQ(list.at(static_cast<uint32_t>(i + 1)), model[i]);
        }
        ASSERT_EQ(list.seq_of(next + 1), 0u);
        if (!model.empty()) {
          uint32_t lo = model[model.size() / 3], hi = model[model.size() / 2];
          std::vector<uint32_t> want;
          for (uint32_t u : model)
            if (u >= lo && u <= hi) want.push_back(u);
          ASSERT_EQ(list.between(lo, hi), want);
          ASSERT_EQ(list.largest(), model.back());
        }
      }
    }
  }
  UidList contiguous;
  for (uint32_t u = 1; u <= 5000; ++u) contiguous.push_back(u);
  EXPECT_EQ(contiguous.runs(), 1u);
  EXPECT_EQ(contiguous.slice(4999, 5000), (std::vector<uint32_t>{4999, 5000}));
}

}  // namespace
}  // namespace postern::imap
