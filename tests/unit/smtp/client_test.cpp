// The outbound pieces of smtp/: reply reading, EHLO capabilities, dot-stuffing, the
// submission fixes and RFC 3464 notifications.
#include <gtest/gtest.h>

#include "mime/mime.hpp"
#include "smtp/smtp.hpp"

namespace postern::smtp {
namespace {

TEST(ReplyReader, MultiLineWithEnhancedCodesAcrossReads) {
  ReplyReader r;
  r.feed("250-mx.example.org hi\r\n250-PIPE");
  EXPECT_FALSE(r.next());
  r.feed("LINING\r\n250 SIZE 1000\r\n550 5.1.1 <x@y>: no such user\r\n");
  auto a = r.next();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->code, 250);
  ASSERT_EQ(r.lines().size(), 3u);
  EXPECT_EQ(r.lines()[1], "PIPELINING");
  auto caps = parse_ehlo(r.lines());
  EXPECT_TRUE(caps.pipelining);
  EXPECT_EQ(caps.size, 1000u);
  EXPECT_FALSE(caps.starttls);
  auto b = r.next();
  ASSERT_TRUE(b);
  EXPECT_EQ(b->code, 550);
  EXPECT_EQ(b->enhanced, "5.1.1");
  EXPECT_EQ(b->text, "<x@y>: no such user");
  EXPECT_FALSE(r.next());
  EXPECT_FALSE(r.failed());
}

TEST(ReplyReader, EnhancedCodeOnlyWhenItsClassMatches) {
  ReplyReader r;
  r.feed("451 5.1.1 odd\r\n220\r\n");
  auto a = r.next();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->enhanced, "");
  EXPECT_EQ(a->text, "5.1.1 odd");
  auto b = r.next();
  ASSERT_TRUE(b);
  EXPECT_EQ(b->code, 220);
}

TEST(ReplyReader, RejectsMalformedReplies) {
  for (std::string bad :
       {"25 x\r\n", "abc hello\r\n", "250-a\r\n251 b\r\n", "250_x\r\n", "999 x\r\n", "100 x\r\n"}) {
    ReplyReader r;
    r.feed(bad);
    EXPECT_FALSE(r.next()) << bad;
    EXPECT_TRUE(r.failed()) << bad;
  }
  ReplyReader longline;
  longline.feed(std::string(5000, '2'));
  EXPECT_FALSE(longline.next());
  EXPECT_TRUE(longline.failed());
  ReplyReader big;  // 20 lines of 4000 bytes: over 64 KiB in one reply
  for (int i = 0; i < 20; ++i) big.feed("250-" + std::string(3996, 'x') + "\r\n");
  EXPECT_FALSE(big.next());
  EXPECT_TRUE(big.failed());
  ReplyReader many;
  std::string s;
  for (int i = 0; i < 300; ++i) s += "250-x\r\n";
  many.feed(s);
  EXPECT_FALSE(many.next());
  EXPECT_TRUE(many.failed());
}

TEST(DotStuff, DoublesLeadingDotsAndTerminates) {
  EXPECT_EQ(dot_stuff(".a\r\nb\r\n..c\r\n"), "..a\r\nb\r\n...c\r\n.\r\n");
  EXPECT_EQ(dot_stuff("no newline"), "no newline\r\n.\r\n");
  EXPECT_EQ(dot_stuff(""), ".\r\n");
  EXPECT_EQ(dot_stuff("x\r\n.\r\n"), "x\r\n..\r\n.\r\n");
}

SubmissionFix fix() {
  return SubmissionFix{"mail.example.test", "abc123", "Thu, 03 Dec 2026 10:00:00 +0000"};
}

TEST(Submission, RemovesBccAddsDateAndMessageId) {
  std::string m =
      "From: Ann <ann@example.test>\r\nTo: bob@example.org\r\nBcc: secret@example.org,\r\n"
      " other@example.org\r\nSubject: hi\r\n\r\nbody\r\n.with dot\r\n";
  auto s = prepare_submission(m, fix());
  ASSERT_TRUE(s) << s.error().describe();
  EXPECT_EQ(s->message,
            "Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nMessage-ID: <abc123@mail.example.test>\r\n"
            "From: Ann <ann@example.test>\r\nTo: bob@example.org\r\nSubject: hi\r\n\r\n"
            "body\r\n.with dot\r\n");
  ASSERT_EQ(s->authors.size(), 1u);
  EXPECT_EQ(s->authors[0].str(), "ann@example.test");
}

TEST(Submission, KeepsExistingDateAndMessageId) {
  std::string m =
      "Message-ID: <x@y>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nFrom: a@example.test, "
      "\"B, b\" <b@example.test>\r\nSender: a@example.test\r\n\r\n";
  auto s = prepare_submission(m, fix());
  ASSERT_TRUE(s);
  EXPECT_EQ(s->message, m);
  ASSERT_EQ(s->authors.size(), 2u);
  EXPECT_EQ(s->authors[1].str(), "b@example.test");
  ASSERT_EQ(s->senders.size(), 1u);
}

TEST(Submission, RefusesMissingDuplicateOrBrokenFrom) {
  EXPECT_FALSE(prepare_submission("To: a@b.example\r\n\r\nx", fix()));
  EXPECT_FALSE(prepare_submission("From: a@b.example\r\nFrom: c@d.example\r\n\r\nx", fix()));
  EXPECT_FALSE(prepare_submission("From: not an address\r\n\r\nx", fix()));
  EXPECT_FALSE(prepare_submission("From: undisclosed:;\r\n\r\nx", fix()));
  EXPECT_FALSE(prepare_submission(
      "From: a@b.example\r\nSender: ceo@victim.example\r\nSender: a@b.example\r\n\r\nx", fix()));
}

DsnRequest dsn_request() {
  DsnRequest r;
  r.reporting_mta = "mail.example.test";
  r.postmaster = "MAILER-DAEMON@mail.example.test";
  r.to = "ann@example.test";
  r.date = "Thu, 03 Dec 2026 10:00:00 +0000";
  r.message_id = "<dsn1@mail.example.test>";
  r.boundary = "b0undary";
  r.arrival_date = "Thu, 03 Dec 2026 09:00:00 +0000";
  r.original_headers = "From: ann@example.test\r\nSubject: hello\r\n\r\n";
  r.recipients.push_back({"bob@example.org", "failed", "5.1.1", "mx.example.org",
                          "smtp; 550 5.1.1 no such user\r\ninjected: x", r.date, ""});
  r.recipients.push_back(
      {"carol@example.org", "delayed", "4.4.1", "", "", r.date, "Tue, 08 Dec 2026 09:00:00 +0000"});
  return r;
}

TEST(Dsn, MultipartReportThatParsesBack) {
  std::string m = make_dsn(dsn_request());
  auto hs = mime::parse_header_section(m, mime::HeaderLimits{});
  ASSERT_TRUE(hs);
  ASSERT_TRUE(hs->find("Content-Type"));
  EXPECT_NE(std::string(hs->find("Content-Type")->raw_value).find("report-type=delivery-status"),
            std::string::npos);
  EXPECT_EQ(mime::multipart_boundary(mime::unfold(hs->find("Content-Type")->raw_value)),
            "b0undary");
  // The delivery-status part, between its headers and the next boundary.
  auto start = m.find("Content-Type: message/delivery-status\r\n\r\n");
  ASSERT_NE(start, std::string::npos);
  start = m.find("\r\n\r\n", start) + 4;
  auto end = m.find("\r\n--b0undary", start);
  auto ds = parse_delivery_status(m.substr(start, end - start));
  ASSERT_TRUE(ds) << ds.error().describe();
  EXPECT_EQ(ds->reporting_mta, "mail.example.test");
  ASSERT_EQ(ds->recipients.size(), 2u);
  EXPECT_EQ(ds->recipients[0].address, "bob@example.org");
  EXPECT_EQ(ds->recipients[0].action, "failed");
  EXPECT_EQ(ds->recipients[0].status, "5.1.1");
  EXPECT_EQ(ds->recipients[0].remote_mta, "mx.example.org");
  // A CR/LF in a remote reply cannot add a field.
  EXPECT_EQ(ds->recipients[0].diagnostic, "smtp; 550 5.1.1 no such user  injected: x");
  EXPECT_EQ(ds->recipients[1].action, "delayed");
  EXPECT_EQ(ds->recipients[1].will_retry_until, "Tue, 08 Dec 2026 09:00:00 +0000");
  EXPECT_NE(m.find("Content-Type: text/rfc822-headers\r\n\r\nFrom: ann@example.test"),
            std::string::npos);
}

TEST(Dsn, ParserRefusesMalformedReports) {
  const char* bad[] = {
      "",
      "Reporting-MTA: dns; a\r\n",                                         // no recipients
      "Reporting-MTA: dns; a\r\n\r\nAction: failed\r\nStatus: 5.0.0\r\n",  // no recipient
      "Reporting-MTA: dns; a\r\n\r\nFinal-Recipient: rfc822; x@y\r\nAction: eaten\r\n"
      "Status: 5.0.0\r\n",
      "Reporting-MTA: dns; a\r\n\r\nFinal-Recipient: rfc822; x@y\r\nAction: failed\r\n"
      "Status: 6.0.0\r\n",
      "Reporting-MTA: dns; a\r\n\r\nFinal-Recipient: rfc822; x@y\r\nAction: failed\r\n"
      "Status: 5..0\r\n",
      " continuation\r\n",
      "no colon here\r\n",
      "Reporting-MTA a\r\n\r\nFinal-Recipient: rfc822; x@y\r\nAction: failed\r\nStatus: 5.0.0\r\n",
  };
  for (const char* b : bad) EXPECT_FALSE(parse_delivery_status(b)) << b;
  std::string big = "Reporting-MTA: dns; a\r\n";
  for (int i = 0; i < 1100; ++i)
    big += "\r\nFinal-Recipient: rfc822; x@y\r\nAction: failed\r\nStatus: 5.0.0\r\n";
  EXPECT_FALSE(parse_delivery_status(big));
  EXPECT_TRUE(parse_delivery_status(
      "Reporting-MTA: dns;a\n\nFinal-Recipient: rfc822;x@y\nAction: Failed\nStatus: 5.1.1\n"));
}

}  // namespace
}  // namespace postern::smtp
