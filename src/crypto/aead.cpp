// AEAD: ChaCha20-Poly1305 (RFC 8439) and XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha), libsodium.
#include <sodium.h>

#include "crypto/crypto.hpp"

namespace postern::crypto {
namespace {
const unsigned char* u(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}
}  // namespace

std::size_t aead_nonce_bytes(Aead a) {
  return a == Aead::chacha20_poly1305 ? crypto_aead_chacha20poly1305_ietf_NPUBBYTES
                                      : crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
}

Result<std::string> aead_encrypt(Aead a, std::string_view key, std::string_view nonce,
                                 std::string_view ad, std::string_view plain) {
  init();
  if (key.size() != aead_key_bytes) return Error(Errc::bad_key);
  if (nonce.size() != aead_nonce_bytes(a)) return Error(Errc::bad_nonce);
  std::string out(plain.size() + aead_tag_bytes, '\0');
  unsigned long long len = 0;
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  int rc = a == Aead::chacha20_poly1305
               ? crypto_aead_chacha20poly1305_ietf_encrypt(o, &len, u(plain), plain.size(), u(ad),
                                                           ad.size(), nullptr, u(nonce), u(key))
               : crypto_aead_xchacha20poly1305_ietf_encrypt(o, &len, u(plain), plain.size(), u(ad),
                                                            ad.size(), nullptr, u(nonce), u(key));
  if (rc != 0) return Error(Errc::internal);
  out.resize(len);
  return out;
}

namespace {
template <class Out>
Result<Out> decrypt_into(Aead a, std::string_view key, std::string_view nonce, std::string_view ad,
                         std::string_view ct) {
  init();
  if (key.size() != aead_key_bytes) return Error(Errc::bad_key);
  if (nonce.size() != aead_nonce_bytes(a)) return Error(Errc::bad_nonce);
  if (ct.size() < aead_tag_bytes) return Error(Errc::auth_failed);
  Out out(ct.size() - aead_tag_bytes);
  unsigned long long len = 0;
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  int rc = a == Aead::chacha20_poly1305
               ? crypto_aead_chacha20poly1305_ietf_decrypt(o, &len, nullptr, u(ct), ct.size(),
                                                           u(ad), ad.size(), u(nonce), u(key))
               : crypto_aead_xchacha20poly1305_ietf_decrypt(o, &len, nullptr, u(ct), ct.size(),
                                                            u(ad), ad.size(), u(nonce), u(key));
  if (rc != 0) return Error(Errc::auth_failed);
  return out;
}
struct ByteString : std::string {
  explicit ByteString(std::size_t n) : std::string(n, '\0') {}
};
}  // namespace

Result<std::string> aead_decrypt(Aead a, std::string_view key, std::string_view nonce,
                                 std::string_view ad, std::string_view ct) {
  auto r = decrypt_into<ByteString>(a, key, nonce, ad, ct);
  if (!r) return r.error();
  return std::string(std::move(*r));
}

std::string seal_random_nonce(std::string_view key, std::string_view ad, std::string_view plain) {
  std::string nonce = random_bytes(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
  auto ct = aead_encrypt(Aead::xchacha20_poly1305, key, nonce, ad, plain);
  return nonce + *ct;  // only fails on a wrong key size: a programming error
}

Result<std::string> open_random_nonce(std::string_view key, std::string_view ad,
                                      std::string_view sealed) {
  constexpr std::size_t n = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
  if (sealed.size() < n) return Error(Errc::auth_failed);
  return aead_decrypt(Aead::xchacha20_poly1305, key, sealed.substr(0, n), ad, sealed.substr(n));
}

Result<SecretBytes> open_random_nonce_secret(std::string_view key, std::string_view ad,
                                             std::string_view sealed) {
  constexpr std::size_t n = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
  if (sealed.size() < n) return Error(Errc::auth_failed);
  return decrypt_into<SecretBytes>(Aead::xchacha20_poly1305, key, sealed.substr(0, n), ad,
                                   sealed.substr(n));
}

Result<Key32> open_random_nonce_key(std::string_view key, std::string_view ad,
                                    std::string_view sealed) {
  init();
  constexpr std::size_t n = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
  if (key.size() != aead_key_bytes) return Error(Errc::bad_key);
  if (sealed.size() != n + Key32::bytes + aead_tag_bytes) return Error(Errc::auth_failed);
  Key32 out;
  std::string_view ct = sealed.substr(n);
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(out.data(), nullptr, nullptr, u(ct), ct.size(),
                                                 u(ad), ad.size(), u(sealed.substr(0, n)),
                                                 u(key)) != 0)
    return Error(Errc::auth_failed);
  return out;
}

}  // namespace postern::crypto
