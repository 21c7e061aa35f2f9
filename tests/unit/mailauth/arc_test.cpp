// ARC (RFC 8617): chains sealed by postern pass and every change to a sealed part fails; sets
// removed, duplicated, renumbered or with a wrong cv= fail; key lookups; chains sealed by the
// npm mailauth library pass here and ours pass there; a trusted sealer's chain lifts a DMARC
// failure in check_inbound, an untrusted or broken one does not.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/random.hpp"
#include "mailauth/mailauth.hpp"
#include "support/fake_dns.hpp"

namespace postern::mailauth {
namespace {

constexpr int64_t kNow = 1796000000;

const std::string kMessage =
    "From: Ann <ann@example.test>\r\nTo: bob@example.org\r\nSubject: Hello\r\n"
    "Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@example.test>\r\n"
    "X-Not-Signed: x\r\n\r\nBody line\r\n\r\nsecond\r\n";

ArcOutcome verify(FakeDns& dns, const std::string& message, ArcVerifyOptions opt = {}) {
  opt.now = kNow;
  return dns.run([&](Lookups& l) { return verify_arc(message, opt, l); });
}

// The hops of a chain: each seals with its own key, published in `dns`.
struct Hops {
  FakeDns dns;
  std::vector<DkimKey> keys;
  explicit Hops(DkimAlgorithm algorithm, int n = 3) {
    for (int i = 1; i <= n; ++i) {
      std::string domain = "hop" + std::to_string(i) + ".test";
      keys.push_back(make_dkim_key(algorithm, domain, "arc").value());
      dns.txt["arc._domainkey." + domain] = {dkim_record(keys.back())};
    }
  }
  // `message` with the next set by hop `hop` (0-based), its results naming it.
  std::string seal(const std::string& message, std::size_t hop,
                   ArcResult chain = ArcResult::none) const {
    std::string results =
        "spf=pass smtp.mailfrom=ann@example.test; dkim=pass header.d=example.test";
    auto set = arc_seal(message, keys.at(hop), "mx." + keys[hop].domain, results, chain, kNow);
    if (!set) {
      ADD_FAILURE() << set.error().describe();
      return message;
    }
    return *set + message;
  }
  std::string chain_of(int n) const {
    std::string m = kMessage;
    for (int i = 0; i < n; ++i) m = seal(m, i, i == 0 ? ArcResult::none : ArcResult::pass);
    return m;
  }
};

// Replaces the first `from` with `to`.
std::string with(std::string m, const std::string& from, const std::string& to) {
  auto at = m.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) m.replace(at, from.size(), to);
  return m;
}

// The header fields of `m` in order, each with its CRLF, and the rest (empty line and body).
std::pair<std::vector<std::string>, std::string> split_fields(const std::string& m) {
  std::vector<std::string> fields;
  std::size_t pos = 0;
  while (pos < m.size() && m.compare(pos, 2, "\r\n") != 0) {
    std::size_t end = pos;
    do {
      end = m.find("\r\n", end) + 2;
    } while (end < m.size() && (m[end] == ' ' || m[end] == '\t'));
    fields.push_back(m.substr(pos, end - pos));
    pos = end;
  }
  return {fields, m.substr(pos)};
}

std::string join(const std::vector<std::string>& fields, const std::string& rest) {
  std::string out;
  for (const auto& f : fields) out += f;
  return out + rest;
}

// The fields of instance `i` (all three) in `m`, by position.
std::vector<std::size_t> fields_of(const std::vector<std::string>& fields, int i) {
  std::vector<std::size_t> out;
  std::string tag = "i=" + std::to_string(i) + ";";
  for (std::size_t k = 0; k < fields.size(); ++k)
    if (fields[k].starts_with("ARC-") && fields[k].find(tag) != std::string::npos) out.push_back(k);
  return out;
}

class ArcChain : public ::testing::TestWithParam<DkimAlgorithm> {};

TEST_P(ArcChain, OwnChainsOfOneTwoAndThreeSetsPass) {
  Hops hops(GetParam());
  for (int n = 1; n <= 3; ++n) {
    std::string m = hops.chain_of(n);
    auto out = verify(hops.dns, m);
    EXPECT_EQ(out.result, ArcResult::pass) << n << ": " << out.reason << "\n" << m;
    EXPECT_EQ(out.instances, n);
    ASSERT_EQ(out.sets.size(), static_cast<std::size_t>(n));
    for (int i = 1; i <= n; ++i) {
      EXPECT_EQ(out.set(i)->instance, i);
      EXPECT_EQ(out.set(i)->sealer, "hop" + std::to_string(i) + ".test");
      EXPECT_EQ(out.set(i)->ams_domain, out.set(i)->sealer);
      EXPECT_EQ(out.set(i)->aar_payload, "mx.hop" + std::to_string(i) +
                                             ".test; spf=pass smtp.mailfrom=ann@example.test; "
                                             "dkim=pass header.d=example.test");
    }
    EXPECT_EQ(out.set(n + 1), nullptr);
  }
  EXPECT_LE(hops.dns.rounds, 6);  // one round of keys per verification
}

TEST_P(ArcChain, AnyChangeToASealedPartFails) {
  Hops hops(GetParam(), 2);
  std::string m = hops.chain_of(2);
  ASSERT_EQ(verify(hops.dns, m).result, ArcResult::pass);
  // Every letter or digit of every field (names included) and of the body, one at a time,
  // except the unsigned X-Not-Signed field: the newest AMS covers the message, the seals
  // cover every ARC field. (White space may change: relaxed canonicalisation.)
  std::size_t unsigned_at = m.find("X-Not-Signed");
  std::size_t unsigned_end = m.find("\r\n", unsigned_at);
  std::size_t checked = 0;
  for (std::size_t i = 0; i < m.size(); ++i) {
    char c = m[i];
    if (!std::isalnum(static_cast<unsigned char>(c))) continue;
    if (i >= unsigned_at && i < unsigned_end) continue;
    // The last base64 digit before padding carries bits that decoding drops.
    if (i + 2 < m.size() && m[i + 1] == '=' && !std::isalnum(static_cast<unsigned char>(m[i + 2])))
      continue;
    std::string changed = m;
    changed[i] = c == 'z' ? 'y' : (c == '9' ? '8' : (c == 'Z' ? 'Y' : static_cast<char>(c + 1)));
    auto out = verify(hops.dns, changed);
    EXPECT_EQ(out.result, ArcResult::fail) << "byte " << i << " of\n" << changed;
    ++checked;
  }
  EXPECT_GT(checked, 1000u);
  // The unsigned field may change; white space may too.
  EXPECT_EQ(verify(hops.dns, with(m, "X-Not-Signed: x", "X-Not-Signed: y")).result,
            ArcResult::pass);
  EXPECT_EQ(verify(hops.dns, with(m, "Subject: Hello", "Subject:   Hello ")).result,
            ArcResult::pass);
}

INSTANTIATE_TEST_SUITE_P(Algorithms, ArcChain,
                         ::testing::Values(DkimAlgorithm::ed25519_sha256,
                                           DkimAlgorithm::rsa_sha256),
                         [](const auto& info) {
                           return info.param == DkimAlgorithm::ed25519_sha256 ? "Ed25519Sha256"
                                                                              : "RsaSha256";
                         });

TEST(ArcChain, NoArcFieldsIsNone) {
  FakeDns dns;
  auto out = verify(dns, kMessage);
  EXPECT_EQ(out.result, ArcResult::none);
  EXPECT_EQ(out.instances, 0);
  EXPECT_EQ(dns.rounds, 0);
}

TEST(ArcChain, OnlyTheNewestMessageSignatureMustStillValidate) {
  // A mailing list changes the subject and adds a footer after hop 1 sealed: hop 1's AMS no
  // longer validates, but the list seals what it received and the chain passes.
  Hops hops(DkimAlgorithm::ed25519_sha256, 3);
  std::string m = hops.seal(kMessage, 0);
  m = with(m, "Subject: Hello", "Subject: [list] Hello") + "-- \r\nlist footer\r\n";
  m = hops.seal(m, 1, ArcResult::pass);
  m = hops.seal(m, 2, ArcResult::pass);
  ArcVerifyOptions opt;
  auto out = verify(hops.dns, m, opt);
  EXPECT_EQ(out.result, ArcResult::pass) << out.reason;
  EXPECT_EQ(out.oldest_pass, 0);  // not asked for
  opt.oldest_pass = true;
  out = verify(hops.dns, m, opt);
  EXPECT_EQ(out.result, ArcResult::pass) << out.reason;
  EXPECT_EQ(out.oldest_pass, 2);
  // Nothing changed along the way: every AMS validates.
  out = verify(hops.dns, hops.chain_of(3), opt);
  EXPECT_EQ(out.result, ArcResult::pass);
  EXPECT_EQ(out.oldest_pass, 0);
}

TEST(ArcChain, BrokenStructureFails) {
  Hops hops(DkimAlgorithm::ed25519_sha256, 3);
  std::string m = hops.chain_of(3);
  auto [fields, rest] = split_fields(m);
  auto result = [&](const std::vector<std::string>& f) { return verify(hops.dns, join(f, rest)); };
  auto i2 = fields_of(fields, 2);
  ASSERT_EQ(i2.size(), 3u);

  // A whole set removed: the newest, a middle one, the first.
  for (int i = 1; i <= 3; ++i) {
    auto f = fields;
    auto at = fields_of(f, i);
    for (auto it = at.rbegin(); it != at.rend(); ++it) f.erase(f.begin() + *it);
    auto out = result(f);
    if (i == 3) {
      EXPECT_EQ(out.result, ArcResult::pass) << "a chain cut back to i=2 is still hop 2's";
    } else {
      EXPECT_EQ(out.result, ArcResult::fail) << "without i=" << i;
      EXPECT_EQ(out.reason, "i=" + std::to_string(i) + " is missing");
      EXPECT_TRUE(out.sets.empty());
    }
  }
  // One field of a set removed, and each field duplicated.
  for (std::size_t k : i2) {
    auto f = fields;
    f.erase(f.begin() + k);
    EXPECT_EQ(result(f).result, ArcResult::fail) << fields[k];
    f = fields;
    f.insert(f.begin() + k, fields[k]);
    auto out = result(f);
    EXPECT_EQ(out.result, ArcResult::fail) << fields[k];
    EXPECT_NE(out.reason.find("has two"), std::string::npos) << out.reason;
  }
  // A whole set duplicated.
  {
    auto f = fields;
    f.insert(f.begin(), {fields[i2[0]], fields[i2[1]], fields[i2[2]]});
    EXPECT_EQ(result(f).result, ArcResult::fail);
  }
  // The position of the fields does not matter (the instance does): sets moved around, and
  // the fields of a set in another order, still pass.
  {
    auto f = fields;
    std::rotate(f.begin(), f.begin() + 3, f.begin() + 9);  // i=2 above i=3
    std::swap(f[0], f[2]);
    EXPECT_EQ(result(f).result, ArcResult::pass) << join(f, rest);
  }
  // Two sets renumbered into each other's place: the seals no longer verify.
  {
    auto f = fields;
    for (auto k : fields_of(fields, 2)) f[k] = with(f[k], "i=2;", "i=9;");
    for (auto k : fields_of(fields, 1)) f[k] = with(f[k], "i=1;", "i=2;");
    for (auto k : fields_of(fields, 2)) f[k] = with(f[k], "i=9;", "i=1;");
    EXPECT_EQ(result(f).result, ArcResult::fail);
  }
  // A gap: i=3 renumbered to i=4.
  {
    auto f = fields;
    for (auto k : fields_of(fields, 3)) f[k] = with(f[k], "i=3;", "i=4;");
    auto out = result(f);
    EXPECT_EQ(out.result, ArcResult::fail);
    EXPECT_EQ(out.reason, "i=3 is missing");
  }
  // Instances beyond 50, and unreadable ones.
  EXPECT_EQ(verify(hops.dns, with(m, "i=3;", "i=51;")).result, ArcResult::fail);
  EXPECT_EQ(verify(hops.dns, with(m, "i=3;", "i=x;")).result, ArcResult::fail);
  EXPECT_EQ(verify(hops.dns, "ARC-Seal: garbage\r\n" + m).result, ArcResult::fail);
  EXPECT_EQ(hops.dns.rounds, 2) << "structure errors need no keys";
}

TEST(ArcChain, WrongChainValidationStatusFails) {
  Hops hops(DkimAlgorithm::ed25519_sha256, 3);
  std::string two = hops.chain_of(2);
  // cv= edited: i=1 must be none, later ones pass.
  auto out = verify(hops.dns, with(two, "cv=none;", "cv=pass;"));
  EXPECT_EQ(out.result, ArcResult::fail);
  EXPECT_EQ(out.reason, "i=1 cv=pass");
  out = verify(hops.dns, with(two, "cv=pass;", "cv=none;"));
  EXPECT_EQ(out.reason, "i=2 cv=none");
  out = verify(hops.dns, with(two, "cv=pass;", "cv=bogus;"));
  EXPECT_EQ(out.result, ArcResult::fail);
  // A hop that found the chain failed says so; the chain stays failed after it, even under
  // a later seal that claims pass.
  std::string failed = hops.seal(two, 2, ArcResult::fail);
  out = verify(hops.dns, failed);
  EXPECT_EQ(out.result, ArcResult::fail);
  EXPECT_EQ(out.reason, "i=3 cv=fail");
  EXPECT_FALSE(arc_seal(failed, hops.keys[0], "mx.test", "", ArcResult::pass, kNow));
  auto on_top = arc_seal(failed, hops.keys[0], "mx.test", "", ArcResult::fail, kNow);
  ASSERT_TRUE(on_top);
  EXPECT_NE(on_top->find("i=4;"), std::string::npos);
  EXPECT_EQ(verify(hops.dns, *on_top + failed).result, ArcResult::fail);
}

TEST(ArcChain, SealsAtMostFiftySets) {
  auto key = make_dkim_key(DkimAlgorithm::ed25519_sha256, "loop.test", "arc").value();
  FakeDns dns;
  dns.txt["arc._domainkey.loop.test"] = {dkim_record(key)};
  std::string m = kMessage;
  for (int i = 1; i <= 50; ++i) {
    auto set = arc_seal(m, key, "mx.loop.test", "arc=pass",
                        i == 1 ? ArcResult::none : ArcResult::pass, kNow);
    ASSERT_TRUE(set) << i << ": " << set.error().describe();
    m = *set + m;
  }
  auto out = verify(dns, m);
  EXPECT_EQ(out.result, ArcResult::pass) << out.reason;
  EXPECT_EQ(out.instances, 50);
  EXPECT_EQ(dns.rounds, 1);
  EXPECT_FALSE(arc_seal(m, key, "mx.loop.test", "arc=pass", ArcResult::pass, kNow));
}

TEST(ArcChain, KeyProblems) {
  Hops hops(DkimAlgorithm::ed25519_sha256, 2);
  std::string m = hops.chain_of(2);
  // No key for hop 1: its seal fails, permanently.
  hops.dns.txt.erase("arc._domainkey.hop1.test");
  auto out = verify(hops.dns, m);
  EXPECT_EQ(out.result, ArcResult::fail);
  EXPECT_EQ(out.reason, "i=1 ARC-Seal: no key for arc._domainkey.hop1.test");
  EXPECT_FALSE(out.temporary);
  ASSERT_EQ(out.sets.size(), 2u);  // the structure was fine: who sealed is known
  // A DNS failure: fail too (ARC has no temperror), but marked temporary.
  hops.dns.servfail.insert("arc._domainkey.hop1.test");
  out = verify(hops.dns, m);
  EXPECT_EQ(out.result, ArcResult::fail);
  EXPECT_TRUE(out.temporary);
  EXPECT_NE(out.reason.find("key lookup failed"), std::string::npos) << out.reason;
  // The newest AMS is checked first: its key missing fails there.
  hops.dns.servfail.clear();
  hops.dns.txt["arc._domainkey.hop1.test"] = {dkim_record(hops.keys[0])};
  hops.dns.txt["arc._domainkey.hop2.test"] = {"v=DKIM1; k=ed25519; p="};
  out = verify(hops.dns, m);
  EXPECT_EQ(out.reason, "i=2 ARC-Message-Signature: key revoked for arc._domainkey.hop2.test");
  // A key of the wrong type, and another hop's key.
  hops.dns.txt["arc._domainkey.hop2.test"] = {"v=DKIM1; k=rsa; p=" +
                                              crypto::base64(hops.keys[1].public_key)};
  EXPECT_EQ(verify(hops.dns, m).result, ArcResult::fail);
  hops.dns.txt["arc._domainkey.hop2.test"] = {dkim_record(hops.keys[0])};
  EXPECT_EQ(verify(hops.dns, m).result, ArcResult::fail);
}

TEST(ArcChain, SmallRsaKeysFail) {
  DkimKey key = small_rsa_key("weak.test", "arc");
  FakeDns dns;
  dns.txt["arc._domainkey.weak.test"] = {dkim_record(key)};
  std::string m =
      arc_seal(kMessage, key, "mx.weak.test", "", ArcResult::none, kNow).value() + kMessage;
  auto out = verify(dns, m);
  EXPECT_EQ(out.result, ArcResult::fail);
  EXPECT_NE(out.reason.find("RSA key of 768 bits"), std::string::npos) << out.reason;
}

TEST(ArcSeal, FieldsAndRefusals) {
  auto key = make_dkim_key(DkimAlgorithm::ed25519_sha256, "lists.test", "arc").value();
  auto set = arc_seal(kMessage, key, "mx.lists.test", ";\r\n\tspf=pass smtp.mailfrom=a@b.test",
                      ArcResult::none, kNow);
  ASSERT_TRUE(set) << set.error().describe();
  EXPECT_TRUE(
      set->starts_with("ARC-Seal: i=1; a=ed25519-sha256; t=1796000000; cv=none; "
                       "d=lists.test; s=arc;"))
      << *set;
  EXPECT_NE(set->find("\r\nARC-Message-Signature: i=1; a=ed25519-sha256; c=relaxed/relaxed;"),
            std::string::npos)
      << *set;
  EXPECT_NE(set->find("d=lists.test;", set->find("ARC-Message-Signature")), std::string::npos);
  EXPECT_TRUE(
      set->ends_with("\r\nARC-Authentication-Results: i=1; mx.lists.test;\r\n spf=pass "
                     "smtp.mailfrom=a@b.test\r\n"))
      << *set;
  EXPECT_EQ(set->find("arc-seal", set->find("h=")), std::string::npos) << "no ARC-Seal in h=";
  for (std::size_t pos = 0, eol; (eol = set->find("\r\n", pos)) != std::string::npos; pos = eol + 2)
    EXPECT_LE(eol - pos, 78u) << set->substr(pos, eol - pos);
  // Empty results are "none".
  auto none = arc_seal(kMessage, key, "mx.lists.test", "", ArcResult::none, 0).value();
  EXPECT_NE(none.find("ARC-Authentication-Results: i=1; mx.lists.test;\r\n none\r\n"),
            std::string::npos);
  EXPECT_EQ(none.find("t="), std::string::npos);
  // Refused: a cv= that does not fit the message, results that would end the field or do
  // not parse, an authserv-id that is not a token, a message without From.
  std::string sealed = *set + kMessage;
  EXPECT_FALSE(arc_seal(sealed, key, "mx", "", ArcResult::none, kNow));
  EXPECT_FALSE(arc_seal(kMessage, key, "mx", "", ArcResult::pass, kNow));
  EXPECT_FALSE(arc_seal(kMessage, key, "mx", "", ArcResult::fail, kNow));
  EXPECT_TRUE(arc_seal(sealed, key, "mx", "", ArcResult::pass, kNow));
  EXPECT_FALSE(arc_seal(kMessage, key, "mx", "spf=pass\r\nX-Injected: 1", ArcResult::none, kNow));
  EXPECT_FALSE(arc_seal(kMessage, key, "mx", "spf=pass\r\n;dkim=pass", ArcResult::none, kNow));
  EXPECT_FALSE(arc_seal(kMessage, key, "mx", "spf", ArcResult::none, kNow));
  EXPECT_FALSE(arc_seal(kMessage, key, "mx; dkim=pass", "", ArcResult::none, kNow));
  EXPECT_FALSE(arc_seal(kMessage, key, "", "", ArcResult::none, kNow));
  EXPECT_FALSE(arc_seal("To: a@b.test\r\n\r\nx\r\n", key, "mx", "", ArcResult::none, kNow));
}

// ---------------------------------------------------------------------------------------------
// The npm mailauth library (tests/interop/mailauth) as the independent implementation.

std::filesystem::path mailauth_dir() {
  return std::filesystem::path(POSTERN_SOURCE_DIR) / "tests/interop/mailauth";
}

// Whether node and the mailauth package are there; installs the package (npm ci) if not.
bool have_mailauth() {
  static const bool ok = [] {
    if (std::system("node --version >/dev/null 2>&1") != 0) return false;
    if (std::filesystem::exists(mailauth_dir() / "node_modules/mailauth")) return true;
    std::string cmd = "cd " + mailauth_dir().string() + " && npm ci --no-audit --no-fund >&2";
    return std::system(cmd.c_str()) == 0 &&
           std::filesystem::exists(mailauth_dir() / "node_modules/mailauth");
  }();
  return ok;
}

// Runs `cmd`; its exit status and first output line.
std::pair<int, std::string> run(const std::string& cmd) {
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return {-1, ""};
  char line[4096] = {};
  std::string out = std::fgets(line, sizeof line, p) ? line : "";
  while (std::fgets(line, sizeof line, p)) {
  }
  int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// An RSA DkimKey's secret is OpenSSL's i2d_PrivateKey output: PKCS#1 RSAPrivateKey.
std::string pem_rsa_private_key(const DkimKey& key) {
  std::string b64 = crypto::base64(key.secret.view());
  std::string pem = "-----BEGIN RSA PRIVATE KEY-----\n";
  for (std::size_t i = 0; i < b64.size(); i += 64) pem += b64.substr(i, 64) + "\n";
  return pem + "-----END RSA PRIVATE KEY-----\n";
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

class MailauthInterop : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(have_mailauth()) << "node or the mailauth package is not available";
    dir_ =
        std::filesystem::temp_directory_path() / ("postern-arc-" + base::system_random().token(6));
    std::filesystem::create_directories(dir_);
    for (const char* domain : {"hop1.test", "hop2.test", "hop3.test"}) {
      keys_.push_back(make_dkim_key(DkimAlgorithm::rsa_sha256, domain, "arc").value());
      dns_.txt[std::string("arc._domainkey.") + domain] = {dkim_record(keys_.back())};
    }
    std::ofstream records(dir_ / "records.json");
    records << "{";
    for (std::size_t i = 0; i < keys_.size(); ++i)
      records << (i ? "," : "") << json_string("arc._domainkey." + keys_[i].domain) << ":"
              << json_string(dkim_record(keys_[i]));
    records << "}";
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // `message` with the next set added by mailauth, as hop `hop`.
  std::string mailauth_seal(const std::string& message, std::size_t hop) {
    std::ofstream(dir_ / "key.pem") << pem_rsa_private_key(keys_[hop]);
    std::ofstream(dir_ / "in.eml", std::ios::binary) << message;
    std::string cmd = "cd " + mailauth_dir().string() + " && node arc_seal.mjs " +
                      (dir_ / "key.pem").string() + " " + keys_[hop].domain + " arc mx." +
                      keys_[hop].domain + " 'spf=pass smtp.mailfrom=ann@example.test' " +
                      std::to_string(kNow) + " " + (dir_ / "in.eml").string() + " " +
                      (dir_ / "out.eml").string();
    auto [status, out] = run(cmd);
    EXPECT_EQ(status, 0) << cmd << "\n" << out;
    std::stringstream ss;
    ss << std::ifstream(dir_ / "out.eml", std::ios::binary).rdbuf();
    return ss.str();
  }
  // mailauth's verdict on the chain: exit status 0 for pass, and its output line.
  std::pair<int, std::string> mailauth_verify(const std::string& message) {
    std::ofstream(dir_ / "check.eml", std::ios::binary) << message;
    return run("cd " + mailauth_dir().string() + " && node arc_verify.mjs " +
               (dir_ / "check.eml").string() + " " + (dir_ / "records.json").string());
  }
  std::string postern_seal(const std::string& message, std::size_t hop, ArcResult chain) {
    auto set = arc_seal(message, keys_[hop], "mx." + keys_[hop].domain,
                        "spf=pass smtp.mailfrom=ann@example.test", chain, kNow);
    if (!set) {
      ADD_FAILURE() << set.error().describe();
      return message;
    }
    return *set + message;
  }

  std::filesystem::path dir_;
  std::vector<DkimKey> keys_;
  FakeDns dns_;
};

TEST_F(MailauthInterop, SealedByMailauthPassesHere) {
  std::string one = mailauth_seal(kMessage, 0);
  auto out = verify(dns_, one);
  EXPECT_EQ(out.result, ArcResult::pass) << out.reason << "\n" << one;
  std::string two = mailauth_seal(one, 1);
  out = verify(dns_, two);
  EXPECT_EQ(out.result, ArcResult::pass) << out.reason << "\n" << two;
  EXPECT_EQ(out.instances, 2);
  ASSERT_NE(out.set(2), nullptr);
  EXPECT_EQ(out.set(2)->sealer, "hop2.test");
  EXPECT_EQ(out.set(2)->aar_payload, "mx.hop2.test; spf=pass smtp.mailfrom=ann@example.test");
  EXPECT_EQ(mailauth_verify(two).first, 0);
  // A changed body fails here as it does there.
  std::string changed = with(two, "Body line", "Body lime");
  EXPECT_EQ(verify(dns_, changed).result, ArcResult::fail);
  EXPECT_NE(mailauth_verify(changed).first, 0);
}

TEST_F(MailauthInterop, SealedByPosternPassesThere) {
  std::string one = postern_seal(kMessage, 0, ArcResult::none);
  auto [status, line] = mailauth_verify(one);
  EXPECT_EQ(status, 0) << line << "\n" << one;
  std::string two = postern_seal(one, 1, ArcResult::pass);
  std::tie(status, line) = mailauth_verify(two);
  EXPECT_EQ(status, 0) << line << "\n" << two;
  EXPECT_TRUE(line.starts_with("pass i=2")) << line;
  EXPECT_NE(mailauth_verify(with(two, "Subject: Hello", "Subject: Hullo")).first, 0);
}

TEST_F(MailauthInterop, MixedChainsPassBothWays) {
  // postern, then mailauth, then postern again.
  std::string m = postern_seal(kMessage, 0, ArcResult::none);
  m = mailauth_seal(m, 1);
  m = postern_seal(m, 2, ArcResult::pass);
  EXPECT_EQ(verify(dns_, m).result, ArcResult::pass) << m;
  auto [status, line] = mailauth_verify(m);
  EXPECT_EQ(status, 0) << line << "\n" << m;
}

// ---------------------------------------------------------------------------------------------
// check_inbound: a trusted sealer's chain and DMARC.

struct ListForwarding {
  FakeDns dns;
  DkimKey author = make_dkim_key(DkimAlgorithm::ed25519_sha256, "example.test", "s1").value();
  DkimKey list = make_dkim_key(DkimAlgorithm::ed25519_sha256, "lists.test", "arc").value();
  InboundOptions options;

  ListForwarding() {
    dns.txt["s1._domainkey.example.test"] = {dkim_record(author)};
    dns.txt["arc._domainkey.lists.test"] = {dkim_record(list)};
    dns.txt["example.test"] = {"v=spf1 ip4:192.0.2.0/24 -all"};
    dns.txt["_dmarc.example.test"] = {"v=DMARC1; p=reject"};
    dns.txt["lists.test"] = {"v=spf1 ip4:198.51.100.0/24 -all"};
  }
  // The author's signed message as the list resends it: subject tagged, footer added (the
  // DKIM signature breaks), sealed by the list with what it saw on arrival.
  std::string through_list(const std::string& results =
                               "spf=pass smtp.mailfrom=ann@example.test; "
                               "dkim=pass header.d=example.test; dmarc=pass "
                               "header.from=example.test") {
    std::string original = dkim_sign(kMessage, author, DkimOptions{}).value() + kMessage;
    std::string resent =
        with(original, "Subject: Hello", "Subject: [list] Hello") + "-- \r\nlist footer\r\n";
    return arc_seal(resent, list, "mx.lists.test", results, ArcResult::none, kNow).value() + resent;
  }
  InboundVerdict check(const std::string& message) {
    InboundRequest req;
    req.ip = "198.51.100.7";
    req.helo = "mail.lists.test";
    req.mail_from = "bounce@lists.test";
    req.receiver = "mx.postern.test";
    req.message = message;
    req.now = kNow;
    return dns.run([&](Lookups& l) { return check_inbound(req, options, l); });
  }
};

// The Authentication-Results field parsed, as a receiver's filter would.
AuthResultsHeader parsed_results(const InboundVerdict& v) {
  std::string_view f = v.authentication_results;
  auto colon = f.find(':');
  auto parsed = parse_authentication_results(f.substr(colon + 1, f.size() - colon - 3));
  if (!parsed) {
    ADD_FAILURE() << v.authentication_results;
    return {};
  }
  return *parsed;
}

const AuthResult* result_of(const AuthResultsHeader& h, const std::string& method) {
  for (const auto& r : h.results)
    if (r.method == method) return &r;
  return nullptr;
}

TEST(InboundArc, TrustedSealerRescuesDmarcReject) {
  ListForwarding t;
  std::string m = t.through_list();
  // Without trust: DKIM broke, SPF is the list's, DMARC p=reject refuses it.
  auto v = t.check(m);
  EXPECT_EQ(v.dmarc.result, DmarcResult::fail);
  EXPECT_EQ(v.arc.result, ArcResult::pass) << v.arc.reason;
  EXPECT_EQ(v.action, InboundVerdict::Action::reject);
  EXPECT_TRUE(v.arc_override.empty());
  auto ar = parsed_results(v);
  ASSERT_TRUE(result_of(ar, "arc"));
  EXPECT_EQ(result_of(ar, "arc")->result, "pass");
  // Trusted: delivered, and the field says why.
  t.options.arc_trusted_sealers = {"Lists.Test."};
  v = t.check(m);
  EXPECT_EQ(v.action, InboundVerdict::Action::deliver);
  EXPECT_EQ(v.arc_override, "lists.test");
  EXPECT_EQ(v.dmarc.result, DmarcResult::fail);
  ar = parsed_results(v);
  ASSERT_TRUE(result_of(ar, "dmarc"));
  EXPECT_EQ(result_of(ar, "dmarc")->result, "fail");
  EXPECT_EQ(result_of(ar, "dmarc")->reason, "p=reject dis=none arc override from lists.test");
  EXPECT_EQ(result_of(ar, "arc")->result, "pass");
  // p=quarantine is lifted the same way.
  t.dns.txt["_dmarc.example.test"] = {"v=DMARC1; p=quarantine"};
  EXPECT_EQ(t.check(m).action, InboundVerdict::Action::deliver);
  // Each kind of aligned pass in the sealer's results is enough, strictness as the policy.
  t.dns.txt["_dmarc.example.test"] = {"v=DMARC1; p=reject"};
  EXPECT_EQ(t.check(t.through_list("dkim=pass header.d=mail.example.test")).action,
            InboundVerdict::Action::deliver);
  EXPECT_EQ(t.check(t.through_list("spf=pass smtp.mailfrom=ann@example.test")).action,
            InboundVerdict::Action::deliver);
  t.dns.txt["_dmarc.example.test"] = {"v=DMARC1; p=reject; adkim=s"};
  EXPECT_EQ(t.check(t.through_list("dkim=pass header.d=mail.example.test")).action,
            InboundVerdict::Action::reject);
}

TEST(InboundArc, NoRescueWithoutTrustedPassingChainAndPassingResults) {
  ListForwarding t;
  t.options.arc_trusted_sealers = {"lists.test"};
  // Another sealer is trusted, not this one.
  {
    ListForwarding other;
    other.options.arc_trusted_sealers = {"elsewhere.test"};
    EXPECT_EQ(other.check(other.through_list()).action, InboundVerdict::Action::reject);
  }
  // The chain fails: the message changed after the list sealed it.
  auto v = t.check(with(t.through_list(), "list footer", "list f00ter"));
  EXPECT_EQ(v.arc.result, ArcResult::fail);
  EXPECT_EQ(v.action, InboundVerdict::Action::reject);
  EXPECT_EQ(result_of(parsed_results(v), "arc")->result, "fail");
  // The list saw no pass for the author, or only unaligned ones.
  for (const char* results :
       {"dkim=fail header.d=example.test; dmarc=fail header.from=example.test",
        "dkim=pass header.d=other.test; spf=pass smtp.mailfrom=a@other.test",
        "dmarc=pass header.from=other.test", "none"}) {
    v = t.check(t.through_list(results));
    EXPECT_EQ(v.arc.result, ArcResult::pass);
    EXPECT_EQ(v.action, InboundVerdict::Action::reject) << results;
  }
  // A trusted sealer below an untrusted newest one does not count.
  {
    std::string m = t.through_list();
    DkimKey hop = make_dkim_key(DkimAlgorithm::ed25519_sha256, "relay.test", "arc").value();
    t.dns.txt["arc._domainkey.relay.test"] = {dkim_record(hop)};
    m = arc_seal(m, hop, "mx.relay.test", "arc=pass", ArcResult::pass, kNow).value() + m;
    v = t.check(m);
    EXPECT_EQ(v.arc.result, ArcResult::pass);
    EXPECT_EQ(v.action, InboundVerdict::Action::reject);
  }
  // The sealer's key cannot be looked up: defer, the chain might still pass.
  t.dns.servfail.insert("arc._domainkey.lists.test");
  v = t.check(t.through_list());
  EXPECT_TRUE(v.arc.temporary);
  EXPECT_EQ(v.action, InboundVerdict::Action::defer);
  EXPECT_EQ(v.code, 451);
}

TEST(InboundArc, ResultsRecordArcForEveryMessage) {
  ListForwarding t;
  t.dns.txt["_dmarc.example.test"] = {"v=DMARC1; p=none"};
  auto v = t.check(kMessage);
  EXPECT_EQ(v.arc.result, ArcResult::none);
  auto ar = parsed_results(v);
  ASSERT_TRUE(result_of(ar, "arc"));
  EXPECT_EQ(result_of(ar, "arc")->result, "none");
  // p=none: nothing to lift, delivered without an override.
  t.options.arc_trusted_sealers = {"lists.test"};
  v = t.check(t.through_list());
  EXPECT_EQ(v.action, InboundVerdict::Action::deliver);
  EXPECT_TRUE(v.arc_override.empty());
  // header.oldest-pass when asked for.
  t.options.arc.oldest_pass = true;
  ar = parsed_results(t.check(t.through_list()));
  ASSERT_TRUE(result_of(ar, "arc"));
  ASSERT_EQ(result_of(ar, "arc")->properties.size(), 1u);
  EXPECT_EQ(result_of(ar, "arc")->properties[0].first, "header.oldest-pass");
  EXPECT_EQ(result_of(ar, "arc")->properties[0].second, "0");
}

}  // namespace
}  // namespace postern::mailauth
