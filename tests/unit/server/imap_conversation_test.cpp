// Runs the scripted IMAP dialogs in tests/conversation/imap/*.txt against ImapSession, over a
// real SQLite store and blob directory with a real (encrypted) account, the way imap_in.cpp
// drives it: bytes go through CommandReader; continuations, literals and IDLE as on a socket.
//
// Script lines: "C: text" the client sends text + CRLF (escapes as in support/script.hpp);
// "C~: text" without CRLF; "S: line" matches the next response line ('*' at the end matches any
// rest); "C2:"/"S2:" are the same for a second session of the same account. "! plain" starts
// the sessions without TLS. "= deliver SUBJECT|BODY" delivers a message to INBOX through the
// SMTP delivery path; "= updates" / "= updates2" asks an idling session for its updates;
// "= closed" checks the session ended; "= keys N" checks how many accounts have unwrapped keys
// in memory; "= quota BYTES" sets the account's quota. '#' starts a comment. Every response line
// must be matched.
#include <gtest/gtest.h>

#include <deque>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>

#include "server/imap_session.hpp"
#include "support/mail_env.hpp"
#include "support/script.hpp"

namespace postern::server {
namespace {

using testing::glob;
using testing::unescape;

class Client {
 public:
  Client(ImapContext& ctx, bool tls)
      : session_(ctx, "192.0.2.9", tls), reader_(ctx.settings.limits) {
    push(session_.greeting());
  }

  void send(const std::string& bytes) {
    reader_.feed(bytes);
    pump();
  }
  void updates() {
    std::string out;
    session_.idle_updates(out);
    push(out);
  }
  bool closed() const { return closed_; }
  std::deque<std::string>& lines() { return lines_; }
  ImapSession& session() { return session_; }

 private:
  void push(const std::string& out) {
    std::size_t pos = 0;
    while (pos < out.size()) {
      std::size_t eol = out.find("\r\n", pos);
      if (eol == std::string::npos) {
        lines_.push_back(out.substr(pos) + "<no CRLF>");
        break;
      }
      lines_.push_back(out.substr(pos, eol - pos));
      pos = eol + 2;
    }
  }

  void pump() {
    while (!closed_) {
      auto st = reader_.next();
      using S = imap::CommandReader::Status;
      if (st == S::need_more) return;
      if (st == S::continuation) {
        push("+ Ready for literal data\r\n");
        continue;
      }
      if (st == S::too_long) {
        push(reader_.tag() + " BAD Command line too long\r\n* BYE Closing\r\n");
        closed_ = true;
        return;
      }
      if (st == S::literal_too_big) {
        push(reader_.tag() + " NO [TOOBIG] Literal too large\r\n");
        if (!reader_.can_continue()) closed_ = true;
        continue;
      }
      std::string text = reader_.take_command();
      std::string out;
      if (idling_) {
        session_.idle_done(text, out);
        idling_ = false;
        push(out);
        continue;
      }
      auto o = session_.execute(text, out);
      while (o.more) o = session_.resume(out);
      reader_.set_logged_in(session_.authenticated());
      push(out);
      if (o.close) closed_ = true;
      if (o.idle) idling_ = true;
      if (o.start_tls) session_.tls_started();
    }
  }

  ImapSession session_;
  imap::CommandReader reader_;
  std::deque<std::string> lines_;
  bool closed_ = false;
  bool idling_ = false;
};

class Dialog {
 public:
  explicit Dialog(std::string name) : name_(std::move(name)) {
    for (const char* box : {"Sent", "Drafts", "Trash", "Junk", "Archive"})
      (void)env_.store->create_mailbox(env_.account_id, {box, std::string("\\") + box}, 7);
    committer_ = std::make_unique<Committer>(*env_.store, *env_.blobs, 64, env_.clock,
                                             std::chrono::seconds(0));
    ctx_.services = env_.services();
    ctx_.services.committer = committer_.get();
    ctx_.settings.hostname = "imap.example.test";
    ctx_.settings.limits.max_literal = 1 << 20;
    ctx_.settings.limits.max_line = 8192;
    ctx_.settings.argon2 = crypto::Argon2Params{1, 8192 * 1024};
  }
  ~Dialog() { committer_->stop(); }

  void option(const std::string& o) {
    if (o == "plain")
      tls_ = false;
    else
      ADD_FAILURE() << name_ << ": unknown option " << o;
  }

  Client& client(int n) {
    auto& c = n == 1 ? c1_ : c2_;
    if (!c) c = std::make_unique<Client>(ctx_, tls_);
    return *c;
  }

  void expect(int n, const std::string& pattern, int line) {
    auto& lines = client(n).lines();
    if (lines.empty()) {
      ADD_FAILURE() << name_ << ":" << line << ": expected '" << pattern << "', got nothing";
      return;
    }
    std::string got = lines.front();
    lines.pop_front();
    EXPECT_TRUE(glob(pattern, got))
        << name_ << ":" << line << ": expected '" << pattern << "', got '" << got << "'";
  }

  void directive(const std::string& d, int line) {
    std::string what = d.substr(0, d.find(' '));
    std::string rest = d.size() > what.size() ? d.substr(what.size() + 1) : "";
    if (what == "deliver") {
      auto bar = rest.find('|');
      auto req = env_.request(rest.substr(0, bar));
      if (bar != std::string::npos)
        req.message = "Subject: " + rest.substr(0, bar) + "\r\nFrom: Ann <ann@example.org>\r\n" +
                      "To: rcpt@example.test\r\n\r\n" + unescape(rest.substr(bar + 1)) + "\r\n";
      auto p = prepare_delivery(ctx_.services, req);
      ASSERT_TRUE(p) << name_ << ":" << line;
      std::promise<bool> ok;
      committer_->submit(std::move(*p), [&](Result<void> r) { ok.set_value(bool(r)); });
      ASSERT_TRUE(ok.get_future().get()) << name_ << ":" << line;
    } else if (what == "updates" || what == "updates2") {
      client(what == "updates" ? 1 : 2).updates();
    } else if (what == "closed") {
      EXPECT_TRUE(client(1).closed()) << name_ << ":" << line;
    } else if (what == "keys") {
      EXPECT_EQ(ctx_.keys.live(), std::stoul(rest)) << name_ << ":" << line;
    } else if (what == "quota") {
      ASSERT_TRUE(env_.store->set_quota(env_.account_id, std::stoll(rest)));
    } else if (what == "drop") {
      (rest == "2" ? c2_ : c1_).reset();
    } else {
      ADD_FAILURE() << name_ << ":" << line << ": unknown directive " << what;
    }
  }

  void finish() {
    for (auto* c : {c1_.get(), c2_.get()})
      if (c)
        for (const auto& l : c->lines())
          ADD_FAILURE() << name_ << ": unexpected line '" << l << "'";
  }

 private:
  std::string name_;
  testing::MailEnv env_;
  std::unique_ptr<Committer> committer_;
  ImapContext ctx_;
  bool tls_ = true;
  std::unique_ptr<Client> c1_, c2_;
};

class ImapConversation : public ::testing::TestWithParam<std::string> {};

TEST_P(ImapConversation, Script) {
  std::filesystem::path path = std::filesystem::path(POSTERN_IMAP_CONVERSATIONS_DIR) / GetParam();
  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  Dialog d(GetParam());
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty() || line[0] == '#') continue;
    int who = line.rfind("C2", 0) == 0 || line.rfind("S2", 0) == 0 ? 2 : 1;
    std::string l = who == 2 ? line.substr(0, 1) + line.substr(2) : line;
    if (l.rfind("! ", 0) == 0)
      d.option(l.substr(2));
    else if (l.rfind("C: ", 0) == 0)
      d.client(who).send(unescape(l.substr(3)) + "\r\n");
    else if (l.rfind("C~: ", 0) == 0)
      d.client(who).send(unescape(l.substr(4)));
    else if (l.rfind("S: ", 0) == 0)
      d.expect(who, l.substr(3), n);
    else if (l.rfind("= ", 0) == 0)
      d.directive(l.substr(2), n);
    else
      ADD_FAILURE() << GetParam() << ":" << n << ": cannot parse '" << line << "'";
  }
  d.finish();
}

std::vector<std::string> scripts() {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(POSTERN_IMAP_CONVERSATIONS_DIR))
    if (e.path().extension() == ".txt") out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

INSTANTIATE_TEST_SUITE_P(Imap, ImapConversation, ::testing::ValuesIn(scripts()),
                         [](const auto& info) {
                           std::string n = info.param.substr(0, info.param.size() - 4);
                           for (char& c : n)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

}  // namespace
}  // namespace postern::server
