// Runs the scripted SMTP dialogs in tests/conversation/smtp/*.txt against the protocol machine.
//
// Script lines:  "C: text" client sends text + CRLF; "C~: text" sends text without CRLF;
// escapes \r \n \t \\ \xHH and {N*c} (N copies of c). "S: reply" matches the next reply line
// ("*" at the end matches any rest). "! key=value" sets an option before the dialog starts.
// "= deliver CODE X.Y.Z text" sets the reply for the next delivery; "= auth ok|fail" the next
// AUTH verdict ("= auth unavailable": the store could not check it); "= credentials USER/PASS"
// checks what AUTH passed on; "= authenticated USER" the session's account; "= sender ok|fail" the
// next submission sender verdict; "= requiretls true|false" checks the last delivered envelope; "=
// message text" checks the last delivered message; "= delivered N" checks the delivery count; "=
// closed" checks that the machine closed the session; "= timeout" fires the I/O deadline. Lines
// starting with '#' are comments. Every reply line must be matched by an S: line.
#include <gtest/gtest.h>

#include <deque>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "smtp/smtp.hpp"
#include "support/script.hpp"

namespace postern::smtp {
namespace {

using testing::glob;
using testing::unescape;

class Dialog {
 public:
  explicit Dialog(const std::string& name) : name_(name) {}

  void option(const std::string& kv) {
    auto eq = kv.find('=');
    std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
    auto n = [&] { return std::stoull(v); };
    if (k == "max_recipients")
      opt_.limits.max_recipients = n();
    else if (k == "max_message_bytes")
      opt_.limits.max_message_bytes = n();
    else if (k == "max_command_line_bytes")
      opt_.limits.max_command_line_bytes = n();
    else if (k == "max_text_line_bytes")
      opt_.limits.max_text_line_bytes = n();
    else if (k == "max_errors")
      opt_.limits.max_errors = n();
    else if (k == "starttls")
      opt_.starttls_offered = v == "true";
    else if (k == "submission")
      opt_.submission = v == "true";
    else if (k == "tls")
      opt_.tls_active = v == "true";
    else if (k == "vrfy")
      opt_.vrfy_enabled = v == "true";
    else
      ADD_FAILURE() << name_ << ": unknown option " << k;
  }

  void send(const std::string& bytes) {
    start();
    pending_input_ += bytes;
  }

  void expect(const std::string& pattern, int line) {
    pump();
    if (replies_.empty()) {
      ADD_FAILURE() << name_ << ":" << line << ": expected '" << pattern << "', got nothing";
      return;
    }
    std::string got = replies_.front();
    replies_.pop_front();
    EXPECT_TRUE(glob(pattern, got))
        << name_ << ":" << line << ": expected '" << pattern << "', got '" << got << "'";
  }

  void directive(const std::string& d, int line) {
    pump();
    std::istringstream is(d);
    std::string what;
    is >> what;
    std::string rest;
    std::getline(is, rest);
    if (!rest.empty() && rest.front() == ' ') rest.erase(0, 1);
    if (what == "deliver") {
      std::istringstream rs(rest);
      Reply r;
      rs >> r.code >> r.enhanced;
      std::getline(rs, r.text);
      if (!r.text.empty() && r.text.front() == ' ') r.text.erase(0, 1);
      next_delivery_ = r;
    } else if (what == "message") {
      EXPECT_EQ(last_message_, unescape(rest)) << name_ << ":" << line;
    } else if (what == "delivered") {
      EXPECT_EQ(delivered_, std::stoul(rest)) << name_ << ":" << line;
    } else if (what == "closed") {
      EXPECT_TRUE(closed_) << name_ << ":" << line << ": session not closed";
    } else if (what == "open") {
      EXPECT_FALSE(closed_) << name_ << ":" << line << ": session closed";
    } else if (what == "auth") {
      next_auth_ = rest == "ok";
      auth_unavailable_ = rest == "unavailable";
    } else if (what == "credentials") {
      EXPECT_EQ(last_credentials_, unescape(rest)) << name_ << ":" << line;
    } else if (what == "sender") {
      next_sender_ = rest == "ok";
    } else if (what == "requiretls") {
      EXPECT_EQ(last_requiretls_, rest == "true") << name_ << ":" << line;
    } else if (what == "authenticated") {
      EXPECT_EQ(m_->authenticated_user(), rest) << name_ << ":" << line;
    } else if (what == "timeout") {
      m_->timeout();
      closed_ = true;
      collect();
    } else {
      ADD_FAILURE() << name_ << ":" << line << ": unknown directive " << what;
    }
  }

  void finish() {
    pump();
    for (const auto& r : replies_) ADD_FAILURE() << name_ << ": unexpected reply '" << r << "'";
  }

 private:
  void start() {
    if (!m_) {
      opt_.hostname = "mx.example.test";
      m_ = std::make_unique<ServerSession>(opt_);
      collect();
    }
  }

  void collect() {
    std::string out = m_->take_output();
    std::size_t pos = 0;
    while (pos < out.size()) {
      auto e = out.find("\r\n", pos);
      ASSERT_NE(e, std::string::npos) << "reply without CRLF";
      replies_.push_back(out.substr(pos, e - pos));
      pos = e + 2;
    }
  }

  void pump() {
    start();
    if (!pending_input_.empty()) {
      m_->feed(pending_input_);
      pending_input_.clear();
    }
    while (!closed_) {
      Action a = m_->next();
      if (a == Action::read) break;
      if (a == Action::close) {
        closed_ = true;
        break;
      }
      if (a == Action::verify_sender) {
        if (next_sender_)
          m_->sender_verdict(std::nullopt);
        else
          m_->sender_verdict(Reply{550, "5.7.1", "Sender address not yours"});
        next_sender_ = true;
      } else if (a == Action::verify_recipient) {
        const auto& r = m_->pending_recipient();
        if (opt_.submission)
          m_->recipient_verdict(std::nullopt);  // the server checks only local recipients
        else if (r.domain.empty() || (r.domain == "example.test" && r.local != "unknown"))
          m_->recipient_verdict(std::nullopt);
        else if (r.domain == "example.test")
          m_->recipient_verdict(Reply{550, "5.1.1", "Recipient address rejected: user unknown"});
        else
          m_->recipient_verdict(Reply{550, "5.7.1", "Relay access denied"});
      } else if (a == Action::deliver) {
        last_message_ = m_->take_message();
        last_requiretls_ = m_->envelope().requiretls;
        Reply r = next_delivery_.value_or(Reply{250, "2.0.0", "Ok"});
        if (r.code == 250) ++delivered_;
        next_delivery_.reset();
        m_->delivery_result(r);
      } else if (a == Action::authenticate) {
        last_credentials_ = m_->auth_user() + "/" + m_->take_auth_password();
        if (auth_unavailable_)
          m_->auth_unavailable();
        else
          m_->auth_result(next_auth_);
        auth_unavailable_ = false;
      } else if (a == Action::start_tls) {
        collect();
        m_->tls_started();
      }
    }
    collect();
  }

  std::string name_;
  Options opt_;
  std::unique_ptr<ServerSession> m_;
  std::string pending_input_;
  std::deque<std::string> replies_;
  std::optional<Reply> next_delivery_;
  bool next_auth_ = true;
  bool next_sender_ = true;
  bool auth_unavailable_ = false;
  bool last_requiretls_ = false;
  std::string last_credentials_;
  std::string last_message_;
  std::size_t delivered_ = 0;
  bool closed_ = false;
};

class Conversation : public ::testing::TestWithParam<std::string> {};

TEST_P(Conversation, Script) {
  std::filesystem::path path = std::filesystem::path(POSTERN_CONVERSATIONS_DIR) / GetParam();
  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  Dialog d(GetParam());
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind("! ", 0) == 0)
      d.option(line.substr(2));
    else if (line.rfind("C: ", 0) == 0)
      d.send(unescape(line.substr(3)) + "\r\n");
    else if (line == "C:")
      d.send("\r\n");
    else if (line.rfind("C~: ", 0) == 0)
      d.send(unescape(line.substr(4)));
    else if (line.rfind("S: ", 0) == 0)
      d.expect(line.substr(3), n);
    else if (line.rfind("= ", 0) == 0)
      d.directive(line.substr(2), n);
    else
      ADD_FAILURE() << GetParam() << ":" << n << ": cannot parse '" << line << "'";
  }
  d.finish();
}

std::vector<std::string> scripts() {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(POSTERN_CONVERSATIONS_DIR))
    if (e.path().extension() == ".txt") out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

INSTANTIATE_TEST_SUITE_P(Smtp, Conversation, ::testing::ValuesIn(scripts()), [](const auto& info) {
  std::string n = info.param.substr(0, info.param.size() - 4);
  for (auto& c : n)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return n;
});

}  // namespace
}  // namespace postern::smtp
