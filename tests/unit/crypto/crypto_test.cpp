#include <gtest/gtest.h>

#include <boost/json/src.hpp>  // the one translation unit that compiles Boost.JSON

#include "crypto/crypto.hpp"

namespace postern::crypto {
namespace {

TEST(Crypto, SealedBoxRoundTripAndTamper) {
  auto kp = x25519_keypair();
  const std::string key(32, 'k');
  auto sealed = seal_to(kp.public_key, key);
  ASSERT_TRUE(sealed);
  auto opened = open_sealed_key(kp.public_key, kp.secret_key, *sealed);
  ASSERT_TRUE(opened);
  EXPECT_EQ(opened->view(), key);
  std::string bad = *sealed;
  bad[bad.size() / 2] ^= 1;
  EXPECT_FALSE(open_sealed_key(kp.public_key, kp.secret_key, bad));
  auto other = x25519_keypair();
  EXPECT_FALSE(open_sealed_key(other.public_key, other.secret_key, *sealed));
  EXPECT_FALSE(open_sealed_key(kp.public_key, kp.secret_key, *seal_to(kp.public_key, "short")));
}

TEST(Crypto, RsaSignVerifyAndSha256) {
  auto key = rsa_generate(2048);
  ASSERT_TRUE(key);
  EXPECT_EQ(rsa_public_bits(key->public_der), 2048u);
  auto sig = rsa_sha256_sign(key->private_der, "message");
  ASSERT_TRUE(sig);
  EXPECT_EQ(sig->size(), 256u);
  EXPECT_TRUE(rsa_sha256_verify(key->public_der, "message", *sig));
  EXPECT_FALSE(rsa_sha256_verify(key->public_der, "messagf", *sig));
  EXPECT_FALSE(rsa_sha256_verify("not a key", "message", *sig));
  EXPECT_EQ(rsa_public_bits("not a key"), 0u);
  // FIPS 180-2 "abc".
  EXPECT_EQ(base64(sha256("abc")), "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
}

TEST(Crypto, RandomNonceAeadBindsAssociatedData) {
  std::string key(32, 'k');
  auto a = seal_random_nonce(key, "ad", "plain");
  auto b = seal_random_nonce(key, "ad", "plain");
  EXPECT_NE(a, b);  // fresh nonce each time
  EXPECT_EQ(*open_random_nonce(key, "ad", a), "plain");
  EXPECT_FALSE(open_random_nonce(key, "other", a));
  EXPECT_FALSE(open_random_nonce(key, "ad", a.substr(0, 10)));
}

TEST(Crypto, Ed25519SignVerify) {
  auto kp = ed25519_keypair();
  auto sig = ed25519_sign(kp.secret_key, "msg");
  EXPECT_TRUE(ed25519_verify(kp.public_key, "msg", sig));
  EXPECT_FALSE(ed25519_verify(kp.public_key, "msh", sig));
}

TEST(Crypto, Argon2idDeterministicAndSaltChecked) {
  Argon2Params p{1, 8192 * 1024};
  std::string salt(16, 's');
  auto a = argon2id("pw", salt, p, 32);
  auto b = argon2id("pw", salt, p, 32);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->view(), b->view());
  EXPECT_NE(argon2id("pw2", salt, p, 32)->view(), a->view());
  EXPECT_FALSE(argon2id("pw", "short", p, 32));
}

TEST(Crypto, SecretBytesAreCountedAndWiped) {
  long before = SecretBytes::live_count();
  {
    auto s = SecretBytes::copy_of("secret");
    auto t = std::move(s);
    EXPECT_EQ(SecretBytes::live_count(), before + 1);
  }
  EXPECT_EQ(SecretBytes::live_count(), before);
}

TEST(Crypto, SelfSignedCertificate) {
  auto c = make_self_signed("mail.example.test", 30);
  ASSERT_TRUE(c);
  EXPECT_NE(c->cert_pem.find("BEGIN CERTIFICATE"), std::string::npos);
  EXPECT_NE(c->key_pem.find("PRIVATE KEY"), std::string::npos);
}

}  // namespace
}  // namespace postern::crypto

namespace postern::crypto {
namespace {

TEST(Crypto, Blake2bKnownAnswer) {
  // RFC 7693 Appendix A: BLAKE2b-512("abc").
  EXPECT_EQ(to_hex(blake2b("abc", 64)),
            "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1"
            "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923");
}

TEST(Crypto, KeyedHashSeparatesPartsAndKeys) {
  std::string k1(32, '1'), k2(32, '2');
  EXPECT_EQ(*keyed_hash(k1, {"ab", "c"}), *keyed_hash(k1, {"ab", "c"}));
  EXPECT_NE(*keyed_hash(k1, {"ab", "c"}), *keyed_hash(k1, {"a", "bc"}));
  EXPECT_NE(*keyed_hash(k1, {"abc"}), *keyed_hash(k2, {"abc"}));
  EXPECT_FALSE(keyed_hash("short", {"x"}));
}

}  // namespace
}  // namespace postern::crypto
