// Properties of the SMTP machine that scripted dialogs cannot show: input split at every byte
// boundary gives the same result, and big messages stream through bounded buffers.
#include <gtest/gtest.h>

#include "smtp/smtp.hpp"

namespace postern::smtp {
namespace {

struct Transcript {
  std::string output;
  std::vector<std::string> messages;
};

Transcript drive(const std::string& input, std::size_t chunk) {
  Options o;
  o.hostname = "mx.example.test";
  o.starttls_offered = true;
  ServerSession m(o);
  Transcript run;
  run.output = m.take_output();
  std::size_t pos = 0;
  bool closed = false;
  while (!closed) {
    Action a = m.next();
    run.output += m.take_output();
    switch (a) {
      case Action::read:
        if (pos >= input.size()) return run;
        m.feed(std::string_view(input).substr(pos, chunk));
        pos += chunk;
        break;
      case Action::verify_recipient:
        m.recipient_verdict(std::nullopt);
        break;
      case Action::deliver:
        run.messages.push_back(m.take_message());
        m.delivery_result({250, "2.0.0", "Ok"});
        break;
      case Action::start_tls:
        m.tls_started();
        break;
      case Action::authenticate:  // not a submission session: never asked
        m.auth_result(false);
        break;
      case Action::verify_sender:
        m.sender_verdict(std::nullopt);
        break;
      case Action::close:
        closed = true;
        break;
    }
  }
  run.output += m.take_output();
  return run;
}

TEST(SmtpSession, ByteAtATimeEqualsAllAtOnce) {
  std::string input =
      "EHLO a.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n"
      "Subject: x\r\n\r\n..dot\r\nbare\nlf\r\n.\r\n"
      "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nDATA\r\nok\r\n.\r\n"
      "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nBDAT 5\r\nab\r\nc"
      "BDAT 2 LAST\r\n\r\n"
      "NOOP\nNOOP\r\nQUIT\r\n";
  Transcript whole = drive(input, input.size());
  for (std::size_t chunk : {1u, 2u, 3u, 7u, 13u}) {
    Transcript split = drive(input, chunk);
    EXPECT_EQ(split.output, whole.output) << "chunk " << chunk;
    EXPECT_EQ(split.messages, whole.messages) << "chunk " << chunk;
  }
  ASSERT_EQ(whole.messages.size(), 2u);
  EXPECT_EQ(whole.messages[0], "ok\r\n");
  EXPECT_EQ(whole.messages[1], "ab\r\nc\r\n");
  EXPECT_NE(whole.output.find("554 5.6.0"), std::string::npos);
}

TEST(SmtpSession, StartTlsDropsPipelinedBytes) {
  Options o;
  o.hostname = "mx";
  o.starttls_offered = true;
  ServerSession m(o);
  m.feed("EHLO a\r\nSTARTTLS\r\nMAIL FROM:<evil@example.org>\r\n");
  EXPECT_EQ(m.next(), Action::start_tls);
  EXPECT_EQ(m.buffered(), 0u);
  m.tls_started();
  EXPECT_EQ(m.next(), Action::read);
  EXPECT_FALSE(m.envelope().sender.has_value());
}

TEST(SmtpSession, LargeMessageStreamsWithBoundedInput) {
  Options o;
  o.hostname = "mx";
  ServerSession m(o);
  m.feed("EHLO a\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n");
  ASSERT_EQ(m.next(), Action::verify_recipient);
  m.recipient_verdict(std::nullopt);
  m.feed("DATA\r\n");
  ASSERT_EQ(m.next(), Action::read);
  std::string line(76, 'x');
  line += "\r\n";
  std::string block;
  for (int i = 0; i < 1000; ++i) block += line;
  for (int i = 0; i < 20; ++i) {
    m.feed(block);
    ASSERT_EQ(m.next(), Action::read);
    EXPECT_LT(m.buffered(), line.size());
  }
  m.feed(".\r\n");
  ASSERT_EQ(m.next(), Action::deliver);
  EXPECT_EQ(m.take_message().size(), 20u * block.size());
}

}  // namespace
}  // namespace postern::smtp
