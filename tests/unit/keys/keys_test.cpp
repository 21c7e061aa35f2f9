#include <gtest/gtest.h>

#include "keys/keys.hpp"

namespace postern::keys {
namespace {

const crypto::Argon2Params fast{1, 8192 * 1024};

TEST(Keys, CreateUnlockRewrapRecover) {
  auto created = create_account_keys("a@example.test", "correct horse", fast);
  ASSERT_TRUE(created);
  auto ring = Keyring::parse(created->keyring.serialize());
  ASSERT_TRUE(ring);

  auto u = unlock_with_password("a@example.test", *ring, "correct horse");
  ASSERT_TRUE(u);
  EXPECT_EQ(unlock_with_password("a@example.test", *ring, "wrong").error().code(),
            Errc::wrong_password);
  EXPECT_EQ(unlock_with_password("a@example.test", *ring, "").error().code(), Errc::wrong_password);
  // Bound to the address: the same keyring does not open for another account.
  EXPECT_FALSE(unlock_with_password("b@example.test", *ring, "correct horse"));

  auto rewrapped = rewrap_password("a@example.test", *ring, *u, "new pass", fast);
  ASSERT_TRUE(rewrapped);
  EXPECT_FALSE(unlock_with_password("a@example.test", *rewrapped, "correct horse"));
  auto u2 = unlock_with_password("a@example.test", *rewrapped, "new pass");
  ASSERT_TRUE(u2);
  EXPECT_EQ(u2->storage_secret.view(), u->storage_secret.view());

  auto r = unlock_with_recovery("a@example.test", *rewrapped, created->recovery_key);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->identity_sign_secret.view(), u->identity_sign_secret.view());
  std::string upper = created->recovery_key;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_TRUE(unlock_with_recovery("a@example.test", *rewrapped, upper));
  std::string wrong = created->recovery_key;
  wrong[0] = wrong[0] == 'a' ? 'b' : 'a';
  EXPECT_FALSE(unlock_with_recovery("a@example.test", *rewrapped, wrong));
  EXPECT_FALSE(unlock_with_recovery("a@example.test", *rewrapped, "abc"));
}

TEST(Keys, KeyringHoldsNoPlainSecret) {
  auto created = create_account_keys("a@example.test", "pw", fast);
  ASSERT_TRUE(created);
  auto u = unlock_with_password("a@example.test", created->keyring, "pw");
  ASSERT_TRUE(u);
  std::string blob = created->keyring.serialize();
  EXPECT_EQ(blob.find(u->storage_secret.view()), std::string::npos);
  EXPECT_EQ(blob.find(u->identity_dh_secret.view()), std::string::npos);
  EXPECT_EQ(blob.find(u->identity_sign_secret.view().substr(0, 32)), std::string::npos);
}

TEST(Keys, CorruptKeyringRejected) {
  auto created = create_account_keys("a@example.test", "pw", fast);
  std::string blob = created->keyring.serialize();
  EXPECT_FALSE(Keyring::parse(blob.substr(0, blob.size() - 1)));
  EXPECT_FALSE(Keyring::parse(blob + "x"));
  EXPECT_FALSE(Keyring::parse("PKR1\xff\xff\xff\xff"));
}

TEST(Keys, MessageEnvelope) {
  auto created = create_account_keys("a@example.test", "pw", fast);
  auto u = unlock_with_password("a@example.test", created->keyring, "pw");
  auto sealed = seal_message(created->keyring.storage_public, "Subject: s\r\n\r\nbody", "summary");
  ASSERT_TRUE(sealed);
  EXPECT_EQ(sealed->blob.find("body"), std::string::npos);
  auto key = open_content_key(*u, sealed->sealed_key);
  ASSERT_TRUE(key);
  EXPECT_EQ(*open_blob(*key, sealed->blob), "Subject: s\r\n\r\nbody");
  EXPECT_EQ(*open_summary(*key, sealed->summary), "summary");
  // Content and summary are not interchangeable.
  EXPECT_FALSE(open_summary(*key, sealed->blob));
  auto other = create_account_keys("b@example.test", "pw", fast);
  auto uo = unlock_with_password("b@example.test", other->keyring, "pw");
  EXPECT_FALSE(open_content_key(*uo, sealed->sealed_key));
}

TEST(Keys, RewrappedContentKey) {
  auto created = create_account_keys("a@example.test", "pw", fast);
  auto u = unlock_with_password("a@example.test", created->keyring, "pw");
  auto sealed = seal_message(created->keyring.storage_public, "content", "summary");
  auto key = open_content_key(*u, sealed->sealed_key);
  ASSERT_TRUE(key);
  std::string wrapped = wrap_content_key(*u, *key);
  EXPECT_EQ(wrapped.find(std::string(key->view())), std::string::npos);
  auto again = unwrap_content_key(*u, wrapped);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->view(), key->view());
  // The same account unlocked again (a later session) derives the same wrapping key.
  auto u2 = unlock_with_password("a@example.test", created->keyring, "pw");
  EXPECT_TRUE(unwrap_content_key(*u2, wrapped));
  std::string tampered = wrapped;
  tampered[tampered.size() / 2] ^= 1;
  EXPECT_FALSE(unwrap_content_key(*u, tampered));
  auto other = create_account_keys("b@example.test", "pw", fast);
  auto uo = unlock_with_password("b@example.test", other->keyring, "pw");
  EXPECT_FALSE(unwrap_content_key(*uo, wrapped));
}

}  // namespace
}  // namespace postern::keys
