// The key service: account key creation and wrapping, password verification, and the
// zero-access envelope for stored messages. See docs/crypto.md for the design.
//
// Security: passwords and recovery keys arrive from users; secrets leave this module only inside
// UnlockedKeys (sodium memory, wiped on destruction). Nothing secret is logged or returned as a
// std::string except the recovery key's display form, which is printed once at creation.
#pragma once

#include "base/error.hpp"
#include "crypto/crypto.hpp"

#include <string>
#include <string_view>

namespace postern::keys {

enum class Errc { wrong_password = 1, wrong_recovery_key, corrupt_keyring, empty_password };
const std::error_category& category();
inline std::error_code make_error_code(Errc e) {
  return {static_cast<int>(e), category()};
}

// The account's secrets, unwrapped for the length of a session.
struct UnlockedKeys {
  std::string storage_public;
  crypto::SecretBytes storage_secret;        // X25519
  crypto::SecretBytes identity_sign_secret;  // Ed25519 (libsodium 64-byte form)
  crypto::SecretBytes identity_dh_secret;    // X25519
  // Derived from the storage secret (HKDF): re-wraps content keys so that reading a message
  // again needs no X25519 operation.
  crypto::SecretBytes content_wrap_key;
};

struct Keyring {
  std::string storage_public;
  std::string identity_sign_public;
  std::string identity_dh_public;
  std::string password_salt;
  uint64_t argon_ops = 0;
  uint64_t argon_mem = 0;
  std::string password_verifier;
  std::string wrapped_by_password;
  std::string recovery_salt;
  std::string wrapped_by_recovery;

  std::string serialize() const;
  static Result<Keyring> parse(std::string_view bytes);
};

struct NewAccountKeys {
  Keyring keyring;
  std::string recovery_key;  // display form; shown to the operator once, never stored
};

// One Argon2id run per call; expensive by design (run it off the network threads).
Result<NewAccountKeys> create_account_keys(std::string_view address, std::string_view password,
                                           const crypto::Argon2Params& params);
Result<UnlockedKeys> unlock_with_password(std::string_view address, const Keyring& keyring,
                                          std::string_view password);
Result<UnlockedKeys> unlock_with_recovery(std::string_view address, const Keyring& keyring,
                                          std::string_view recovery_key);
// Re-wraps the same secrets under a new password; the recovery wrapping is kept.
Result<Keyring> rewrap_password(std::string_view address, const Keyring& keyring,
                                const UnlockedKeys& keys, std::string_view new_password,
                                const crypto::Argon2Params& params);

// The zero-access envelope: a fresh content key per message encrypts the content and its
// summary; the content key is sealed to the account's storage public key, so delivery needs
// no secret and only an unlocked session can read.
struct SealedMessage {
  std::string blob;        // nonce || XChaCha20-Poly1305(content)
  std::string sealed_key;  // crypto_box_seal(content key, storage public key)
  std::string summary;     // nonce || XChaCha20-Poly1305(summary)
};
Result<SealedMessage> seal_message(std::string_view storage_public, std::string_view content,
                                   std::string_view summary);
Result<crypto::Key32> open_content_key(const UnlockedKeys& keys, std::string_view sealed_key);
// A content key wrapped with the account's content_wrap_key (XChaCha20-Poly1305), stored next
// to the sealed key after the first read; unwrap is ~100x cheaper than opening the sealed box.
std::string wrap_content_key(const UnlockedKeys& keys, const crypto::Key32& content_key);
Result<crypto::Key32> unwrap_content_key(const UnlockedKeys& keys, std::string_view wrapped);
Result<std::string> open_blob(const crypto::Key32& content_key, std::string_view blob);
Result<std::string> open_summary(const crypto::Key32& content_key, std::string_view summary);

}  // namespace postern::keys

template <>
struct std::is_error_code_enum<postern::keys::Errc> : std::true_type {};
