// DKIM verification, DMARC and Authentication-Results: postern's signatures and dkimpy's
// verify, every single-byte change of a signed part fails, and the DMARC decisions follow
// RFC 7489 for each combination of outcomes.
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

const std::string kMessage =
    "From: Ann <ann@example.test>\r\nTo: bob@example.org\r\nSubject: Hello\r\n"
    "Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@example.test>\r\n"
    "X-Not-Signed: x\r\n\r\nBody line\r\n\r\nsecond\r\n";

std::vector<DkimOutcome> verify(FakeDns& dns, const std::string& message,
                                DkimVerifyOptions opt = {}) {
  opt.now = 1796000000;
  return dns.run([&](Lookups& l) { return verify_dkim(message, opt, l); });
}

// Every letter or digit of the header values and the body, changed one at a time: each
// change must break the signature. (Letters, digits and punctuation only: relaxed
// canonicalisation allows white-space changes by design.)
void expect_every_change_fails(FakeDns& dns, const std::string& signed_message, std::size_t from) {
  std::size_t checked = 0;
  for (std::size_t i = from; i < signed_message.size(); ++i) {
    char c = signed_message[i];
    if (!std::isalnum(static_cast<unsigned char>(c))) continue;
    std::string changed = signed_message;
    changed[i] = c == 'z' ? 'y' : (c == '9' ? '8' : (c == 'Z' ? 'Y' : static_cast<char>(c + 1)));
    auto out = verify(dns, changed);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_NE(out[0].result, DkimResult::pass) << "byte " << i << " of\n" << changed;
    ++checked;
  }
  EXPECT_GT(checked, 50u);
}

class DkimVerify : public ::testing::TestWithParam<DkimAlgorithm> {};

TEST_P(DkimVerify, OwnSignaturesPassAndAnySignedChangeFails) {
  auto key = make_dkim_key(GetParam(), "example.test", "s1");
  ASSERT_TRUE(key);
  auto sig = dkim_sign(kMessage, *key, DkimOptions{});
  ASSERT_TRUE(sig);
  FakeDns dns;
  dns.txt["s1._domainkey.example.test"] = {dkim_record(*key)};
  std::string message = *sig + kMessage;
  auto out = verify(dns, message);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].result, DkimResult::pass) << out[0].reason;
  EXPECT_EQ(out[0].domain, "example.test");
  EXPECT_EQ(out[0].selector, "s1");
  // The signed header values (after "From:" of the first signed field) and the body; the
  // unsigned X-Not-Signed field is skipped.
  std::string head = message.substr(0, message.find("X-Not-Signed"));
  std::string tail = message.substr(message.find("X-Not-Signed"));
  std::string without_unsigned = head + tail.substr(tail.find("\r\n") + 2);
  expect_every_change_fails(dns, without_unsigned, without_unsigned.find("From:") + 5);
  // Added From fields are caught by over-signing.
  std::string extra = message;
  extra.insert(extra.find("From:"), "From: eve@evil.test\r\n");
  EXPECT_EQ(verify(dns, extra)[0].result, DkimResult::fail);
  // An unsigned header may change.
  std::string unsigned_changed = message;
  unsigned_changed.replace(unsigned_changed.find("X-Not-Signed: x"), 15, "X-Not-Signed: y");
  EXPECT_EQ(verify(dns, unsigned_changed)[0].result, DkimResult::pass);
}

INSTANTIATE_TEST_SUITE_P(Algorithms, DkimVerify,
                         ::testing::Values(DkimAlgorithm::ed25519_sha256,
                                           DkimAlgorithm::rsa_sha256),
                         [](const auto& info) {
                           return info.param == DkimAlgorithm::ed25519_sha256 ? "Ed25519Sha256"
                                                                              : "RsaSha256";
                         });

// The first line `cmd` prints, without its line end; "" when it fails.
std::string first_line(const std::string& cmd) {
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return "";
  char line[4096] = {};
  std::string out = std::fgets(line, sizeof line, p) ? line : "";
  while (std::fgets(line, sizeof line, p)) {
  }
  if (::pclose(p) != 0) return "";
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

// A message signed elsewhere with `record` at sel._domainkey.example.test: it passes here, and
// every signed byte changed (the unsigned X-Not-Signed field left out) fails.
void expect_independent_signature(const std::string& record, const std::string& message) {
  FakeDns dns;
  dns.txt["sel._domainkey.example.test"] = {record};
  auto out = verify(dns, message);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].result, DkimResult::pass) << out[0].reason << "\n" << message;
  std::string head = message.substr(0, message.find("X-Not-Signed"));
  std::string tail = message.substr(message.find("X-Not-Signed"));
  expect_every_change_fails(dns, head + tail.substr(tail.find("\r\n") + 2),
                            message.find("\nFrom:") + 6);
}

// Messages signed by dkimpy with each algorithm and canonicalisation.
class DkimpySigned : public ::testing::TestWithParam<std::tuple<const char*, const char*>> {};

TEST_P(DkimpySigned, VerifyAndAnySignedChangeFails) {
  auto [algorithm, canon] = GetParam();
  auto dir =
      std::filesystem::temp_directory_path() / ("postern-dkimpy-" + base::system_random().token(6));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "m.eml", std::ios::binary) << kMessage;
  std::string cmd = "/usr/bin/python3 " + std::string(POSTERN_SOURCE_DIR) +
                    "/tests/support/dkim_sign.py " + algorithm + " " + canon +
                    " example.test sel " + (dir / "m.eml").string() + " " +
                    (dir / "out.eml").string();
  std::string record = first_line(cmd);
  ASSERT_FALSE(record.empty()) << cmd;
  std::stringstream ss;
  ss << std::ifstream(dir / "out.eml", std::ios::binary).rdbuf();
  std::string message = ss.str();
  std::filesystem::remove_all(dir);
  // dkimpy folds with bare LF inside the field it adds; on the wire it is CRLF.
  std::string crlf;
  for (std::size_t i = 0; i < message.size(); ++i) {
    if (message[i] == '\n' && (i == 0 || message[i - 1] != '\r')) crlf += '\r';
    crlf += message[i];
  }
  expect_independent_signature(record, crlf);
}

INSTANTIATE_TEST_SUITE_P(Canonicalisations, DkimpySigned,
                         ::testing::Combine(::testing::Values("ed25519-sha256", "rsa-sha256"),
                                            ::testing::Values("relaxed/relaxed", "relaxed/simple",
                                                              "simple/simple", "simple/relaxed")),
                         [](const auto& info) {
                           std::string name =
                               std::string(std::get<0>(info.param)) + "_" + std::get<1>(info.param);
                           for (char& c : name)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return name;
                         });

// Messages signed by the npm mailauth library (tests/interop/mailauth/sign.mjs) with each key
// type and canonicalisation: they pass, and every signed byte changed fails.
class MailauthSigned : public ::testing::TestWithParam<std::tuple<const char*, const char*>> {};

TEST_P(MailauthSigned, VerifyAndAnySignedChangeFails) {
  auto [key_type, canon] = GetParam();
  auto dir = std::filesystem::temp_directory_path() /
             ("postern-mailauth-" + base::system_random().token(6));
  std::filesystem::create_directories(dir);
  std::string src = POSTERN_SOURCE_DIR;
  std::string node_dir = src + "/tests/interop/mailauth";
  if (!std::filesystem::exists(node_dir + "/node_modules/mailauth"))
    ASSERT_EQ(std::system(("cd " + node_dir + " && npm ci --no-audit --no-fund >&2").c_str()), 0);
  std::string pem = (dir / "key.pem").string();
  std::string genkey = std::string(key_type) == "ed25519"
                           ? "openssl genpkey -algorithm ed25519 -out " + pem
                           : "openssl genpkey -algorithm rsa -pkeyopt rsa_keygen_bits:2048 -out " +
                                 pem + " 2>/dev/null";
  ASSERT_EQ(std::system(genkey.c_str()), 0);
  std::ofstream(dir / "m.eml", std::ios::binary) << kMessage;
  // The key's TXT record, as dkim_sign.py prints it for a given key.
  std::string alg = std::string(key_type) == "ed25519" ? "ed25519-sha256" : "rsa-sha256";
  std::string cmd = "/usr/bin/python3 " + src + "/tests/support/dkim_sign.py " + alg +
                    " relaxed/relaxed example.test sel " + (dir / "m.eml").string() + " " +
                    (dir / "unused.eml").string() + " " + pem;
  std::string record = first_line(cmd);
  ASSERT_FALSE(record.empty()) << cmd;
  std::string sign = "cd " + node_dir + " && node sign.mjs " + pem + " example.test sel " + canon +
                     " " + (dir / "m.eml").string() + " " + (dir / "out.eml").string();
  ASSERT_EQ(std::system(sign.c_str()), 0) << sign;
  std::stringstream ss;
  ss << std::ifstream(dir / "out.eml", std::ios::binary).rdbuf();
  std::string message = ss.str();
  std::filesystem::remove_all(dir);
  expect_independent_signature(record, message);
}

INSTANTIATE_TEST_SUITE_P(Canonicalisations, MailauthSigned,
                         ::testing::Combine(::testing::Values("ed25519", "rsa"),
                                            ::testing::Values("relaxed/relaxed", "simple/simple")),
                         [](const auto& info) {
                           std::string name =
                               std::string(std::get<0>(info.param)) + "_" + std::get<1>(info.param);
                           for (char& c : name)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return name;
                         });

std::string signed_with(const DkimKey& key, const std::string& message, DkimOptions opt = {}) {
  return dkim_sign(message, key, opt).value() + message;
}

TEST(DkimVerify, KeyProblemsArePermanentAndDnsFailuresTemporary) {
  auto key = make_dkim_key(DkimAlgorithm::ed25519_sha256, "example.test", "s1").value();
  std::string message = signed_with(key, kMessage);
  FakeDns dns;
  auto result = [&] { return verify(dns, message)[0]; };
  EXPECT_EQ(result().result, DkimResult::permerror);  // no key
  EXPECT_EQ(result().reason, "no key");
  dns.txt["s1._domainkey.example.test"] = {"v=DKIM1; k=ed25519; p="};
  EXPECT_EQ(result().reason, "key revoked");
  dns.txt["s1._domainkey.example.test"] = {"v=DKIM1; k=rsa; p=" + crypto::base64(key.public_key)};
  EXPECT_EQ(result().result, DkimResult::permerror);
  dns.txt["s1._domainkey.example.test"] = {dkim_record(key) + "; s=other"};
  EXPECT_EQ(result().result, DkimResult::permerror);
  dns.txt["s1._domainkey.example.test"] = {dkim_record(key) + "; t=y"};
  EXPECT_EQ(result().result, DkimResult::pass);
  EXPECT_TRUE(result().testing);
  dns.txt.clear();
  dns.servfail.insert("s1._domainkey.example.test");
  EXPECT_EQ(result().result, DkimResult::temperror);
}

TEST(DkimVerify, SmallRsaKeysFail) {
  DkimKey key = small_rsa_key("example.test", "weak");
  FakeDns dns;
  dns.txt["weak._domainkey.example.test"] = {dkim_record(key)};
  auto out = verify(dns, signed_with(key, kMessage));
  EXPECT_EQ(out[0].result, DkimResult::permerror);
  EXPECT_EQ(out[0].reason, "RSA key of 768 bits");
}

// Signature fields edited by hand, re-signed where the edit must not be what fails.
TEST(DkimVerify, BadSignatureFieldsArePermanentErrors) {
  auto key = make_dkim_key(DkimAlgorithm::ed25519_sha256, "example.test", "s1").value();
  FakeDns dns;
  dns.txt["s1._domainkey.example.test"] = {dkim_record(key)};
  std::string good = signed_with(key, kMessage);
  auto with = [&](const std::string& from, const std::string& to) {
    std::string m = good;
    auto at = m.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    m.replace(at, from.size(), to);
    return verify(dns, m)[0];
  };
  EXPECT_EQ(with("v=1;", "v=2;").result, DkimResult::permerror);
  EXPECT_EQ(with("a=ed25519-sha256;", "a=rsa-sha1;").reason, "unsupported algorithm rsa-sha1");
  EXPECT_EQ(with("d=example.test;", "d=example.test; d=other.test;").result, DkimResult::permerror);
  EXPECT_EQ(with("d=example.test;", "d=example.test; i=a@elsewhere.test;").reason,
            "i= is not within d=");
  EXPECT_EQ(with("d=example.test;", "d=example.test; x=1000;").reason, "signature expired");
  EXPECT_EQ(with("h=from:from:", "h=").reason, "h= does not cover From");
  // A signature whose body hash does not match, and one over a changed header.
  EXPECT_EQ(with("\r\n\r\nBody line", "\r\n\r\nBody lime").reason, "body hash mismatch");
  EXPECT_EQ(with("Subject: Hello", "Subject: Hullo").reason, "signature does not verify");
}

TEST(DkimVerify, LengthLimitLeavingBodyUnsignedIsPolicy) {
  // A signer with l= is simulated: sign the first part, then append content.
  auto key = make_dkim_key(DkimAlgorithm::ed25519_sha256, "example.test", "s1").value();
  FakeDns dns;
  dns.txt["s1._domainkey.example.test"] = {dkim_record(key)};
  std::string sig = dkim_sign(kMessage, key, DkimOptions{}).value();
  // Content appended after signing breaks a signature without l=...
  std::string appended = sig + kMessage + "appended\r\n";
  EXPECT_EQ(verify(dns, appended)[0].result, DkimResult::fail);
  // ...while with l= it would not: such a signature is reported as policy, not pass. (l= is
  // added here after signing, so the signature itself no longer verifies either.)
  std::string with_l = sig + kMessage;
  with_l.replace(with_l.find("bh="), 0, "l=5; ");
  auto out = verify(dns, with_l);
  EXPECT_EQ(out[0].result, DkimResult::policy);
  DkimVerifyOptions accept;
  accept.accept_partial_body = true;
  EXPECT_EQ(verify(dns, with_l, accept)[0].result, DkimResult::fail);  // l= was not signed
}

TEST(DkimVerify, SignatureCountIsBounded) {
  auto key = make_dkim_key(DkimAlgorithm::ed25519_sha256, "example.test", "s1").value();
  FakeDns dns;
  dns.txt["s1._domainkey.example.test"] = {dkim_record(key)};
  std::string sig = dkim_sign(kMessage, key, DkimOptions{}).value();
  std::string many;
  for (int i = 0; i < 8; ++i) many += sig;
  auto out = verify(dns, many + kMessage);
  ASSERT_EQ(out.size(), 8u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(out[i].result, DkimResult::pass);
  for (int i = 5; i < 8; ++i) EXPECT_EQ(out[i].result, DkimResult::policy);
  EXPECT_LE(dns.rounds, 2);
}

TEST(TagList, Syntax) {
  auto t = parse_tag_list(" v=1;\r\n\ta = b c ;x=;");
  ASSERT_TRUE(t);
  ASSERT_EQ(t->size(), 3u);
  EXPECT_EQ((*t)[1].first, "a");
  EXPECT_EQ((*t)[1].second, "b c");
  EXPECT_EQ((*t)[2].second, "");
  EXPECT_FALSE(parse_tag_list("v=1; v=2"));
  EXPECT_FALSE(parse_tag_list("novalue"));
  EXPECT_FALSE(parse_tag_list("a=1;;b=2"));
  EXPECT_FALSE(parse_tag_list("9a=1"));
  EXPECT_FALSE(parse_tag_list(std::string("a=\x01", 3)));
}

TEST(Dmarc, RecordParsing) {
  auto r = parse_dmarc(
      "v=DMARC1; p=reject; sp=quarantine; adkim=s; pct=50; "
      "rua=mailto:agg@example.test,mailto:b@x.test!10m");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->policy, DmarcPolicy::reject);
  EXPECT_EQ(r->subdomain_policy, DmarcPolicy::quarantine);
  EXPECT_TRUE(r->strict_dkim);
  EXPECT_FALSE(r->strict_spf);
  EXPECT_EQ(r->percent, 50);
  EXPECT_EQ(r->rua.size(), 2u);
  EXPECT_FALSE(parse_dmarc("p=reject; v=DMARC1"));
  EXPECT_FALSE(parse_dmarc("v=DMARC1; p=bogus"));
  EXPECT_FALSE(parse_dmarc("v=DMARC1; p=reject; pct=101"));
  // An invalid p= with a report address is treated as p=none (RFC 7489 6.6.3).
  auto none = parse_dmarc("v=DMARC1; p=bogus; rua=mailto:a@example.test");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->policy, DmarcPolicy::none);
}

TEST(Dmarc, OrganizationalDomainFromThePublicSuffixList) {
  EXPECT_EQ(organizational_domain("mail.example.co.uk"), "example.co.uk");
  EXPECT_EQ(organizational_domain("a.b.Example.COM."), "example.com");
  EXPECT_EQ(organizational_domain("sub.example.test"), "example.test");
  EXPECT_EQ(organizational_domain("co.uk"), "co.uk");
}

TEST(Dmarc, AuthorDomainMustBeUnambiguous) {
  EXPECT_EQ(author_domain("From: A <a@Example.TEST>\r\n\r\n").value(), "example.test");
  EXPECT_FALSE(author_domain("To: b@x.test\r\n\r\n"));
  EXPECT_FALSE(author_domain("From: a@x.test\r\nFrom: b@y.test\r\n\r\n"));
  EXPECT_FALSE(author_domain("From: a@x.test, b@y.test\r\n\r\n"));
  EXPECT_FALSE(author_domain("From: undisclosed\r\n\r\n"));
  EXPECT_FALSE(author_domain("From: a@localhost\r\n\r\n"));
}

DkimOutcome dkim_pass(const std::string& domain) {
  DkimOutcome d;
  d.result = DkimResult::pass;
  d.domain = domain;
  return d;
}

DmarcOutcome dmarc(FakeDns& dns, const std::string& from, SpfResult spf,
                   const std::string& spf_domain, std::vector<DkimOutcome> dkim,
                   unsigned sample = 0) {
  DmarcRequest req;
  req.from_domain = from;
  req.spf.result = spf;
  req.spf_domain = spf_domain;
  req.dkim = std::move(dkim);
  req.sample = sample;
  return dns.run([&](Lookups& l) { return check_dmarc(req, l); });
}

TEST(Dmarc, AlignmentAndPolicy) {
  FakeDns dns;
  dns.txt["_dmarc.example.test"] = {"v=DMARC1; p=reject; sp=quarantine"};
  dns.txt["_dmarc.strict.test"] = {"v=DMARC1; p=reject; adkim=s; aspf=s"};
  // Relaxed: a subdomain's SPF or DKIM aligns with the organisational domain.
  auto r = dmarc(dns, "example.test", SpfResult::pass, "bounce.example.test", {});
  EXPECT_EQ(r.result, DmarcResult::pass);
  EXPECT_TRUE(r.spf_aligned);
  r = dmarc(dns, "example.test", SpfResult::fail, "example.test", {dkim_pass("mail.example.test")});
  EXPECT_EQ(r.result, DmarcResult::pass);
  EXPECT_TRUE(r.dkim_aligned);
  // Unaligned passes do not count.
  r = dmarc(dns, "example.test", SpfResult::pass, "other.test", {dkim_pass("other.test")});
  EXPECT_EQ(r.result, DmarcResult::fail);
  EXPECT_EQ(r.applied, DmarcPolicy::reject);
  // Strict: only the exact domain.
  r = dmarc(dns, "strict.test", SpfResult::pass, "mx.strict.test", {dkim_pass("a.strict.test")});
  EXPECT_EQ(r.result, DmarcResult::fail);
  r = dmarc(dns, "strict.test", SpfResult::fail, "x.test", {dkim_pass("strict.test")});
  EXPECT_EQ(r.result, DmarcResult::pass);
  // A subdomain without its own record gets the organisational domain's sp=.
  r = dmarc(dns, "news.example.test", SpfResult::fail, "news.example.test", {});
  EXPECT_EQ(r.result, DmarcResult::fail);
  EXPECT_EQ(r.policy_domain, "example.test");
  EXPECT_EQ(r.applied, DmarcPolicy::quarantine);
  // No record anywhere: none.
  r = dmarc(dns, "nopolicy.test", SpfResult::fail, "nopolicy.test", {});
  EXPECT_EQ(r.result, DmarcResult::none);
  // Two records: none (RFC 7489 6.6.3).
  dns.txt["_dmarc.two.test"] = {"v=DMARC1; p=reject", "v=DMARC1; p=none"};
  EXPECT_EQ(dmarc(dns, "two.test", SpfResult::fail, "two.test", {}).result, DmarcResult::none);
  // SERVFAIL: temperror.
  dns.servfail.insert("_dmarc.broken.test");
  EXPECT_EQ(dmarc(dns, "broken.test", SpfResult::pass, "broken.test", {}).result,
            DmarcResult::temperror);
}

TEST(Dmarc, PercentSamplesDownToTheNextPolicy) {
  FakeDns dns;
  dns.txt["_dmarc.example.test"] = {"v=DMARC1; p=reject; pct=25"};
  auto in = dmarc(dns, "example.test", SpfResult::fail, "example.test", {}, 24);
  EXPECT_EQ(in.applied, DmarcPolicy::reject);
  EXPECT_FALSE(in.sampled_out);
  auto out = dmarc(dns, "example.test", SpfResult::fail, "example.test", {}, 25);
  EXPECT_EQ(out.applied, DmarcPolicy::quarantine);
  EXPECT_TRUE(out.sampled_out);
}

TEST(AuthenticationResults, ParsesRfc8601Examples) {
  auto a = parse_authentication_results(" example.com; none");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->authserv_id, "example.com");
  EXPECT_TRUE(a->results.empty());
  a = parse_authentication_results(
      " example.com;\r\n\tspf=pass smtp.mailfrom=example.net\r\n\t(comment (nested)) ;"
      " dkim=pass reason=\"good signature\" header.i=@mail-router.example.net;"
      " dkim=fail header.i=@newyork.example.com header.b=abc/def+");
  ASSERT_TRUE(a) << a.error().detail();
  ASSERT_EQ(a->results.size(), 3u);
  EXPECT_EQ(a->results[0].method, "spf");
  EXPECT_EQ(a->results[0].properties[0].second, "example.net");
  EXPECT_EQ(a->results[1].reason, "good signature");
  EXPECT_EQ(a->results[2].properties[1].second, "abc/def+");
  a = parse_authentication_results("\"quoted id\" 1; auth=pass (cram-md5) smtp.auth=sender@x.y");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->authserv_id, "quoted id");
  EXPECT_FALSE(parse_authentication_results(""));
  EXPECT_FALSE(parse_authentication_results("x; spf"));
  EXPECT_FALSE(parse_authentication_results("x; spf=pass (unclosed"));
  EXPECT_FALSE(parse_authentication_results("x; spf=pass smtp=1"));
  EXPECT_FALSE(parse_authentication_results("x 2; spf=pass"));
  // Folding is white space; a line end or control character inside a quoted string is not.
  EXPECT_TRUE(parse_authentication_results("\"a\r\n b\"; spf=pass"));
  EXPECT_FALSE(parse_authentication_results("\"a\r\nb\"; spf=pass"));
  EXPECT_FALSE(parse_authentication_results(std::string("\"a\x0b\"; spf=pass", 15)));
}

TEST(AuthenticationResults, FormatRoundTrips) {
  AuthResultsHeader h{"mx.example.test",
                      {{"spf", "pass", "", {{"smtp.mailfrom", "a@example.org"}}},
                       {"dkim", "fail", "body hash mismatch", {{"header.b", "ab/c+="}}}}};
  std::string field = format_authentication_results(h);
  ASSERT_TRUE(field.starts_with("Authentication-Results: "));
  auto back =
      parse_authentication_results(std::string_view(field).substr(23, field.size() - 23 - 2));
  ASSERT_TRUE(back) << field;
  EXPECT_EQ(back->authserv_id, h.authserv_id);
  ASSERT_EQ(back->results.size(), 2u);
  EXPECT_EQ(back->results[1].reason, "body hash mismatch");
  EXPECT_EQ(back->results[1].properties[0].second, "ab/c+=");
}

TEST(AuthenticationResults, ForgedFieldsClaimingOurIdAreRemoved) {
  std::string m =
      "Authentication-Results: mx.example.test; dkim=pass header.d=bank.test\r\n"
      "Received: from x\r\n"
      "Authentication-Results: other.test; spf=pass smtp.mailfrom=a@b.test\r\n"
      "authentication-results:  MX.Example.Test;\r\n\tspf=pass\r\n"
      "Authentication-Results: mx.example.test; garbage (\r\n"
      "From: a@b.test\r\n\r\nAuthentication-Results: mx.example.test; body stays\r\n";
  EXPECT_EQ(remove_forged_results(m, "mx.example.test"),
            "Received: from x\r\n"
            "Authentication-Results: other.test; spf=pass smtp.mailfrom=a@b.test\r\n"
            "From: a@b.test\r\n\r\nAuthentication-Results: mx.example.test; body stays\r\n");
}

// The whole decision, with SPF from the DNS too.
struct Inbound {
  FakeDns dns;
  DkimKey key = make_dkim_key(DkimAlgorithm::ed25519_sha256, "example.test", "s1").value();
  InboundOptions options;
  Inbound() { dns.txt["s1._domainkey.example.test"] = {dkim_record(key)}; }
  InboundVerdict check(const std::string& message, const std::string& ip = "192.0.2.1",
                       const std::string& mail_from = "ann@example.test") {
    InboundRequest req;
    req.ip = ip;
    req.helo = "mail.example.test";
    req.mail_from = mail_from;
    req.receiver = "mx.postern.test";
    req.message = message;
    req.now = 1796000000;
    return dns.run([&](Lookups& l) { return check_inbound(req, options, l); });
  }
};

TEST(Inbound, DmarcDecides) {
  Inbound t;
  t.dns.txt["example.test"] = {"v=spf1 ip4:192.0.2.0/24 -all"};
  t.dns.txt["_dmarc.example.test"] = {"v=DMARC1; p=reject"};
  std::string signed_message = signed_with(t.key, kMessage);
  // SPF pass and DKIM pass.
  auto v = t.check(signed_message);
  EXPECT_EQ(v.action, InboundVerdict::Action::deliver);
  EXPECT_EQ(v.dmarc.result, DmarcResult::pass);
  EXPECT_NE(v.authentication_results.find("spf=pass"), std::string::npos);
  EXPECT_NE(v.authentication_results.find("dkim=pass"), std::string::npos);
  EXPECT_NE(v.authentication_results.find("dmarc=pass"), std::string::npos);
  EXPECT_TRUE(v.authentication_results.starts_with("Authentication-Results: mx.postern.test;"));
  // SPF fail, DKIM pass: DMARC passes (forwarded mail keeps its signature).
  v = t.check(signed_message, "198.51.100.7");
  EXPECT_EQ(v.spf.result, SpfResult::fail);
  EXPECT_EQ(v.action, InboundVerdict::Action::deliver);
  // SPF fail, no signature: rejected by p=reject.
  v = t.check(kMessage, "198.51.100.7");
  EXPECT_EQ(v.action, InboundVerdict::Action::reject);
  EXPECT_EQ(v.code, 550);
  EXPECT_EQ(v.enhanced, "5.7.1");
  // ... unless the client is a trusted forwarder.
  t.options.trusted_forwarders = {"198.51.100.0/24"};
  EXPECT_EQ(t.check(kMessage, "198.51.100.7").action, InboundVerdict::Action::deliver);
  t.options.trusted_forwarders.clear();
  // Quarantine: Junk.
  t.dns.txt["_dmarc.example.test"] = {"v=DMARC1; p=quarantine"};
  EXPECT_EQ(t.check(kMessage, "198.51.100.7").action, InboundVerdict::Action::junk);
  // p=none: delivered.
  t.dns.txt["_dmarc.example.test"] = {"v=DMARC1; p=none"};
  EXPECT_EQ(t.check(kMessage, "198.51.100.7").action, InboundVerdict::Action::deliver);
  // No DMARC record: SPF fail is refused on its own, softfail is not.
  t.dns.txt.erase("_dmarc.example.test");
  v = t.check(kMessage, "198.51.100.7");
  EXPECT_EQ(v.action, InboundVerdict::Action::reject);
  EXPECT_EQ(v.enhanced, "5.7.23");
  t.dns.txt["example.test"] = {"v=spf1 ip4:192.0.2.0/24 ~all"};
  EXPECT_EQ(t.check(kMessage, "198.51.100.7").action, InboundVerdict::Action::deliver);
}

TEST(Inbound, TemporaryFailuresDefer) {
  Inbound t;
  t.dns.servfail.insert("_dmarc.example.test");
  t.dns.txt["example.test"] = {"v=spf1 -all"};
  auto v = t.check(kMessage);
  EXPECT_EQ(v.action, InboundVerdict::Action::defer);
  EXPECT_EQ(v.code, 451);
  // p=reject, SPF temperror and no DKIM: the verdict could change, so defer instead of reject.
  t.dns.servfail = {"example.test"};
  t.dns.txt["_dmarc.example.test"] = {"v=DMARC1; p=reject"};
  v = t.check(kMessage);
  EXPECT_EQ(v.spf.result, SpfResult::temperror);
  EXPECT_EQ(v.action, InboundVerdict::Action::defer);
}

TEST(Inbound, AmbiguousAuthorIsRefused) {
  Inbound t;
  for (const char* m : {"From: a@example.test\r\nFrom: b@example.test\r\n\r\nx\r\n",
                        "From: a@example.test, b@other.test\r\n\r\nx\r\n",
                        "From: nobody\r\n\r\nx\r\n", "Subject: no author\r\n\r\nx\r\n"}) {
    auto v = t.check(m);
    EXPECT_EQ(v.action, InboundVerdict::Action::reject) << m;
    EXPECT_EQ(v.code, 550);
    EXPECT_TRUE(v.enhanced.starts_with("5.7.")) << v.enhanced;
    EXPECT_EQ(t.dns.rounds, 0) << "no lookups for a message that is refused anyway";
  }
}

TEST(Inbound, HeloIsCheckedOnItsOwnAndRecorded) {
  Inbound t;
  t.dns.txt["mail.example.test"] = {"v=spf1 ip4:192.0.2.1 -all"};
  t.dns.txt["example.test"] = {"v=spf1 -all"};
  auto v = t.check(kMessage, "192.0.2.1");
  ASSERT_TRUE(v.helo_spf);
  EXPECT_EQ(v.helo_spf->result, SpfResult::pass);
  EXPECT_EQ(v.spf.result, SpfResult::fail);
  EXPECT_NE(v.authentication_results.find("spf=fail smtp.mailfrom=ann@example.test"),
            std::string::npos);
  EXPECT_NE(v.authentication_results.find("spf=pass smtp.helo=mail.example.test"),
            std::string::npos);
  // Not a domain (an address literal): not checked.
  InboundRequest req;
  req.ip = "192.0.2.1";
  req.helo = "[192.0.2.1]";
  req.mail_from = "ann@example.test";
  req.receiver = "mx.postern.test";
  req.message = kMessage;
  auto w = t.dns.run([&](Lookups& l) { return check_inbound(req, t.options, l); });
  EXPECT_FALSE(w.helo_spf);
}

TEST(Inbound, NullSenderChecksHelo) {
  Inbound t;
  t.dns.txt["mail.example.test"] = {"v=spf1 ip4:192.0.2.1 -all"};
  t.dns.txt["_dmarc.example.test"] = {"v=DMARC1; p=reject"};
  auto v = t.check(kMessage, "192.0.2.1", "");
  EXPECT_TRUE(v.spf_helo);
  EXPECT_EQ(v.spf.result, SpfResult::pass);
  EXPECT_EQ(v.dmarc.result, DmarcResult::pass);  // HELO domain aligns (relaxed)
  EXPECT_NE(v.authentication_results.find("smtp.helo=mail.example.test"), std::string::npos);
}

}  // namespace
}  // namespace postern::mailauth
