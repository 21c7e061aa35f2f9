// Thin wrappers over libsodium and OpenSSL: the only place postern touches primitives.
// Binary data travels as std::string / std::string_view; secrets live in SecretBytes
// (sodium_malloc: guarded, mlock'ed, wiped on destruction) and never in a std::string.
#pragma once

#include "base/error.hpp"

#include <array>
#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace postern::crypto {

enum class Errc { init = 1, bad_key, bad_nonce, auth_failed, bad_point, internal, bad_input };
const std::error_category& category();
inline std::error_code make_error_code(Errc e) {
  return {static_cast<int>(e), category()};
}

// Must run once before anything else (idempotent, thread-safe).
void init();

class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(std::size_t n);  // zero-filled
  static SecretBytes copy_of(std::string_view bytes);
  SecretBytes(SecretBytes&& o) noexcept;
  SecretBytes& operator=(SecretBytes&& o) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;
  ~SecretBytes();

  unsigned char* data() { return p_; }
  const unsigned char* data() const { return p_; }
  std::size_t size() const { return n_; }
  std::string_view view() const { return {reinterpret_cast<const char*>(p_), n_}; }
  bool empty() const { return n_ == 0; }
  // Number of SecretBytes alive in the process (tests check secrets are released).
  static long live_count();

 private:
  unsigned char* p_ = nullptr;
  std::size_t n_ = 0;
};

// A 32-byte key used briefly and often (a message's content key): kept inline and wiped on
// destruction. SecretBytes' per-allocation mmap, mprotect and mlock cost more than the
// decryption itself when a session lists thousands of messages.
class Key32 {
 public:
  static constexpr std::size_t bytes = 32;
  Key32() = default;
  Key32(Key32&& o) noexcept;  // copies, then wipes `o`
  Key32& operator=(Key32&& o) noexcept;
  Key32(const Key32&) = delete;
  Key32& operator=(const Key32&) = delete;
  ~Key32();
  static Key32 random();
  unsigned char* data() { return b_.data(); }
  std::string_view view() const { return {reinterpret_cast<const char*>(b_.data()), bytes}; }

 private:
  std::array<unsigned char, bytes> b_{};
};

// Wipes a buffer that held secret material.
void wipe(std::string& s);
void wipe(void* p, std::size_t n);
bool equal_ct(std::string_view a, std::string_view b);  // constant time, sizes public

enum class Aead { chacha20_poly1305, xchacha20_poly1305 };
std::size_t aead_nonce_bytes(Aead a);
inline constexpr std::size_t aead_key_bytes = 32;
inline constexpr std::size_t aead_tag_bytes = 16;
// Returns ciphertext || tag.
Result<std::string> aead_encrypt(Aead a, std::string_view key, std::string_view nonce,
                                 std::string_view ad, std::string_view plaintext);
Result<std::string> aead_decrypt(Aead a, std::string_view key, std::string_view nonce,
                                 std::string_view ad, std::string_view ciphertext_and_tag);
// XChaCha20-Poly1305 with a random nonce: returns nonce || ciphertext || tag.
std::string seal_random_nonce(std::string_view key, std::string_view ad, std::string_view plain);
Result<std::string> open_random_nonce(std::string_view key, std::string_view ad,
                                      std::string_view sealed);
Result<SecretBytes> open_random_nonce_secret(std::string_view key, std::string_view ad,
                                             std::string_view sealed);
// The same for a sealed 32-byte key.
Result<Key32> open_random_nonce_key(std::string_view key, std::string_view ad,
                                    std::string_view sealed);

inline constexpr std::size_t x25519_bytes = 32;
// RFC 7748 X25519; fails on an all-zero shared secret (low-order input).
Result<SecretBytes> x25519(std::string_view scalar, std::string_view point);
struct KeyPair {
  std::string public_key;
  SecretBytes secret_key;
};
KeyPair x25519_keypair();
Result<std::string> x25519_public_from_secret(std::string_view secret);

// Ed25519 (RFC 8032). The secret is libsodium's 64-byte form (seed || public).
KeyPair ed25519_keypair();
std::string ed25519_sign(const SecretBytes& secret, std::string_view message);
bool ed25519_verify(std::string_view public_key, std::string_view message,
                    std::string_view signature);

// RSASSA-PKCS1-v1_5 with SHA-256 (DKIM rsa-sha256). Private keys as PKCS#8 DER, public keys as
// SubjectPublicKeyInfo DER.
struct RsaKey {
  SecretBytes private_der;
  std::string public_der;
};
Result<RsaKey> rsa_generate(unsigned bits);
Result<std::string> rsa_sha256_sign(const SecretBytes& private_der, std::string_view message);
bool rsa_sha256_verify(std::string_view public_der, std::string_view message,
                       std::string_view signature);
unsigned rsa_public_bits(std::string_view public_der);  // 0: not an RSA public key
std::string sha256(std::string_view data);

// libsodium sealed box: anonymous encryption to an X25519 public key (ephemeral key + XSalsa20-
// Poly1305). Delivery uses it to wrap each message's content key without holding any secret.
Result<std::string> seal_to(std::string_view public_key, std::string_view plaintext);
// crypto_box_seal_open of a sealed 32-byte key.
Result<Key32> open_sealed_key(std::string_view public_key, const SecretBytes& secret,
                              std::string_view sealed);

struct Argon2Params {
  unsigned long long ops_limit = 3;
  std::size_t mem_limit_bytes = 64u << 20;
};
inline constexpr std::size_t argon2_salt_bytes = 16;
Result<SecretBytes> argon2id(std::string_view password, std::string_view salt,
                             const Argon2Params& params, std::size_t out_bytes);

// RFC 5869 HKDF-SHA256 (OpenSSL EVP_KDF).
Result<SecretBytes> hkdf_sha256(std::string_view ikm, std::string_view salt, std::string_view info,
                                std::size_t out_bytes);

// Keyed BLAKE2b-256 (libsodium crypto_generichash) over the parts, each length-prefixed so
// that different splits never collide. `key` is 32 bytes.
Result<std::string> keyed_hash(std::string_view key, std::initializer_list<std::string_view> parts);
// Unkeyed BLAKE2b with the given output length (16..64), for known-answer tests.
std::string blake2b(std::string_view data, std::size_t out_bytes);

std::string random_bytes(std::size_t n);
SecretBytes random_secret(std::size_t n);
std::string to_hex(std::string_view bytes);
std::string base64(std::string_view bytes);
Result<std::string> from_base64(std::string_view text);

// A P-256 key and a self-signed X.509 certificate for `hostname` (PEM), for quickstart.
struct SelfSigned {
  std::string cert_pem;
  std::string key_pem;
};
Result<SelfSigned> make_self_signed(const std::string& hostname, int valid_days);

}  // namespace postern::crypto

template <>
struct std::is_error_code_enum<postern::crypto::Errc> : std::true_type {};
