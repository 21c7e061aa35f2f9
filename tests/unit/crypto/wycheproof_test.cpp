// Every crypto wrapper against the Project Wycheproof vectors in ../shared/vectors/wycheproof.
// "valid" must succeed with the expected output; "invalid" must fail (or, for AEAD encryption
// tests, give a different result); "acceptable" may do either but must never give a wrong one.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <sstream>

#include "crypto/crypto.hpp"

namespace postern::crypto {
namespace {

namespace json = boost::json;

json::value load(const std::string& name) {
  std::ifstream in(std::string(POSTERN_VECTORS_DIR) + "/wycheproof/" + name);
  EXPECT_TRUE(in) << name;
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

std::string unhex(std::string_view h) {
  std::string out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2)
    out += static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16));
  return out;
}

std::string field(const json::object& o, const char* k) {
  return unhex(std::string(o.at(k).as_string()));
}

struct Tally {
  int valid = 0, invalid = 0, acceptable = 0;
};

template <class Fn>
Tally each_test(const json::value& doc, Fn fn) {
  Tally t;
  for (const auto& g : doc.at("testGroups").as_array())
    for (const auto& tv : g.at("tests").as_array()) {
      const auto& o = tv.as_object();
      std::string result(o.at("result").as_string());
      fn(g.as_object(), o, result, static_cast<int>(o.at("tcId").as_int64()));
      (result == "valid" ? t.valid : result == "invalid" ? t.invalid : t.acceptable)++;
    }
  return t;
}

TEST(Wycheproof, X25519) {
  auto t = each_test(load("x25519_test.json"), [](const json::object&, const json::object& o,
                                                  const std::string& result, int id) {
    auto shared = x25519(field(o, "private"), field(o, "public"));
    std::string expected = field(o, "shared");
    if (result == "valid") {
      ASSERT_TRUE(shared) << "tcId " << id;
      EXPECT_EQ(shared->view(), expected) << "tcId " << id;
    } else if (shared) {
      // acceptable / invalid: a result, when given, must be the right one and never all-zero.
      EXPECT_EQ(shared->view(), expected) << "tcId " << id;
      EXPECT_NE(shared->view(), std::string(32, '\0')) << "tcId " << id;
    }
  });
  EXPECT_GT(t.valid, 100);
}

TEST(Wycheproof, Ed25519Verify) {
  auto t = each_test(load("ed25519_test.json"), [](const json::object& g, const json::object& o,
                                                   const std::string& result, int id) {
    std::string pk = unhex(std::string(g.at("publicKey").as_object().at("pk").as_string()));
    bool ok = ed25519_verify(pk, field(o, "msg"), field(o, "sig"));
    if (result == "valid") {
      EXPECT_TRUE(ok) << "tcId " << id;
    } else if (result == "invalid") {
      EXPECT_FALSE(ok) << "tcId " << id;
    }
  });
  EXPECT_GT(t.valid, 10);
  EXPECT_GT(t.invalid, 50);
}

TEST(Wycheproof, RsaPkcs1Sha256Verify) {
  auto t = each_test(
      load("rsa_signature_2048_sha256_test.json"),
      [](const json::object& g, const json::object& o, const std::string& result, int id) {
        bool ok = rsa_sha256_verify(field(g, "publicKeyDer"), field(o, "msg"), field(o, "sig"));
        if (result == "valid") {
          EXPECT_TRUE(ok) << "tcId " << id;
        } else if (result == "invalid") {
          EXPECT_FALSE(ok) << "tcId " << id;
        }
      });
  EXPECT_GT(t.valid, 5);
  EXPECT_GT(t.invalid, 50);
}

void aead_vectors(const char* file, Aead alg) {
  auto t = each_test(load(file), [alg](const json::object&, const json::object& o,
                                       const std::string& result, int id) {
    std::string key = field(o, "key"), iv = field(o, "iv"), aad = field(o, "aad");
    std::string msg = field(o, "msg"), ct = field(o, "ct") + field(o, "tag");
    auto dec = aead_decrypt(alg, key, iv, aad, ct);
    auto enc = aead_encrypt(alg, key, iv, aad, msg);
    if (result == "valid") {
      ASSERT_TRUE(dec) << "tcId " << id;
      EXPECT_EQ(*dec, msg) << "tcId " << id;
      ASSERT_TRUE(enc) << "tcId " << id;
      EXPECT_EQ(*enc, ct) << "tcId " << id;
    } else if (result == "invalid") {
      EXPECT_FALSE(dec && *dec == msg) << "tcId " << id;
    }
  });
  EXPECT_GT(t.valid, 50);
  EXPECT_GT(t.invalid, 50);
}

TEST(Wycheproof, ChaCha20Poly1305) {
  aead_vectors("chacha20_poly1305_test.json", Aead::chacha20_poly1305);
}
TEST(Wycheproof, XChaCha20Poly1305) {
  aead_vectors("xchacha20_poly1305_test.json", Aead::xchacha20_poly1305);
}

TEST(Wycheproof, HkdfSha256) {
  auto t = each_test(load("hkdf_sha256_test.json"), [](const json::object&, const json::object& o,
                                                       const std::string& result, int id) {
    auto size = static_cast<std::size_t>(o.at("size").as_int64());
    auto okm = hkdf_sha256(field(o, "ikm"), field(o, "salt"), field(o, "info"), size);
    if (result == "valid") {
      ASSERT_TRUE(okm) << "tcId " << id;
      EXPECT_EQ(okm->view(), field(o, "okm")) << "tcId " << id;
    } else if (result == "invalid") {
      EXPECT_FALSE(okm) << "tcId " << id;
    }
  });
  EXPECT_GT(t.valid, 50);
}

}  // namespace
}  // namespace postern::crypto
