// DKIM canonicalisation against RFC 6376's own example, and signatures checked by an
// independent implementation (dkimpy): valid as signed, invalid after any change.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "base/random.hpp"
#include "mailauth/mailauth.hpp"

namespace postern::mailauth {
namespace {

TEST(DkimCanonical, Rfc6376Example) {
  // RFC 6376 3.4.5.
  EXPECT_EQ(relaxed_header("A", " X"), "a:X\r\n");
  EXPECT_EQ(relaxed_header("B ", " Y\t\r\n\tZ  "), "b:Y Z\r\n");
  EXPECT_EQ(relaxed_body(" C \r\nD \t E\r\n\r\n\r\n"), " C\r\nD E\r\n");
  EXPECT_EQ(simple_body(" C \r\nD \t E\r\n\r\n\r\n"), " C \r\nD \t E\r\n");
  EXPECT_EQ(relaxed_body(""), "");
  EXPECT_EQ(simple_body(""), "\r\n");
  EXPECT_EQ(relaxed_body("no final line end"), "no final line end\r\n");
}

class DkimpyCheck {
 public:
  DkimpyCheck() {
    dir_ =
        std::filesystem::temp_directory_path() / ("postern-dkim-" + base::system_random().token(6));
    std::filesystem::create_directories(dir_);
  }
  ~DkimpyCheck() { std::filesystem::remove_all(dir_); }
  // True when dkimpy verifies every signature of `message` with `record`.
  bool verifies(const std::string& message, const std::string& record) {
    write("m.eml", message);
    write("r.txt", record);
    std::string cmd = "/usr/bin/python3 " + std::string(POSTERN_SOURCE_DIR) +
                      "/tests/support/dkim_verify.py " + (dir_ / "m.eml").string() + " " +
                      (dir_ / "r.txt").string();
    int rc = std::system(cmd.c_str());
    EXPECT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) <= 1) << cmd;
    return WIFEXITED(rc) && WEXITSTATUS(rc) == 0;
  }

 private:
  void write(const char* name, const std::string& text) {
    std::ofstream(dir_ / name, std::ios::binary) << text;
  }
  std::filesystem::path dir_;
};

const std::string kMessage =
    "From: Ann <ann@example.test>\r\nTo: bob@example.org\r\nSubject:  Hello\r\n\tthere\r\n"
    "Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@example.test>\r\n"
    "X-Not-Signed: x\r\n\r\nBody  line\t\r\n\r\nsecond\r\n\r\n";

class DkimSign : public ::testing::TestWithParam<DkimAlgorithm> {};

TEST_P(DkimSign, VerifiedByDkimpyAndBrokenByAnyChange) {
  auto key = make_dkim_key(GetParam(), "example.test", "s2026");
  ASSERT_TRUE(key);
  DkimOptions opt;
  opt.timestamp = 1796000000;
  auto sig = dkim_sign(kMessage, *key, opt);
  ASSERT_TRUE(sig) << sig.error().describe();
  for (std::size_t pos = 0, eol; (eol = sig->find("\r\n", pos)) != std::string::npos; pos = eol + 2)
    EXPECT_LE(eol - pos, 78u) << *sig;
  std::string unfolded;
  for (char c : *sig)
    if (c != '\r' && c != '\n' && c != '\t') unfolded += c;
  EXPECT_NE(unfolded.find("h=from:from:to:to:subject:subject:date:date:message-id:message-id;"),
            std::string::npos)
      << *sig;
  std::string record = dkim_record(*key);
  DkimpyCheck dkimpy;
  std::string signed_message = *sig + kMessage;
  EXPECT_TRUE(dkimpy.verifies(signed_message, record));
  // Relaxed canonicalisation: re-folding and trailing blank lines do not matter...
  std::string refolded = signed_message;
  refolded.replace(refolded.find("Subject:  Hello"), 15, "Subject: Hello ");
  EXPECT_TRUE(dkimpy.verifies(refolded + "\r\n", record));
  // ...but every change of a signed byte does.
  std::string body_changed = signed_message;
  body_changed[body_changed.find("second")] = 'S';
  EXPECT_FALSE(dkimpy.verifies(body_changed, record));
  std::string from_changed = signed_message;
  from_changed.replace(from_changed.find("ann@"), 4, "eve@");
  EXPECT_FALSE(dkimpy.verifies(from_changed, record));
  // An added From (or To, Subject...) is caught by over-signing.
  std::string extra_from = signed_message;
  extra_from.insert(extra_from.find("From:"), "From: Eve <eve@evil.test>\r\n");
  EXPECT_FALSE(dkimpy.verifies(extra_from, record));
  // The unsigned header can change.
  std::string unsigned_changed = signed_message;
  unsigned_changed.replace(unsigned_changed.find("X-Not-Signed: x"), 15, "X-Not-Signed: y");
  EXPECT_TRUE(dkimpy.verifies(unsigned_changed, record));
  // Another key with the same selector does not verify.
  auto other = make_dkim_key(GetParam(), "example.test", "s2026");
  EXPECT_FALSE(dkimpy.verifies(signed_message, dkim_record(*other)));
}

INSTANTIATE_TEST_SUITE_P(Algorithms, DkimSign,
                         ::testing::Values(DkimAlgorithm::ed25519_sha256,
                                           DkimAlgorithm::rsa_sha256),
                         [](const auto& info) {
                           return info.param == DkimAlgorithm::ed25519_sha256 ? "Ed25519Sha256"
                                                                              : "RsaSha256";
                         });

TEST(DkimSign, RefusesAMessageWithoutSignableHeaders) {
  auto key = make_dkim_key(DkimAlgorithm::ed25519_sha256, "example.test", "s");
  EXPECT_FALSE(dkim_sign("X-Only: 1\r\n\r\nbody\r\n", *key, DkimOptions{}));
}

}  // namespace
}  // namespace postern::mailauth
