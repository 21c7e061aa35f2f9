// X25519 (RFC 7748), Ed25519 (RFC 8032) and sealed boxes, libsodium.
#include <sodium.h>

#include "crypto/crypto.hpp"

namespace postern::crypto {
namespace {
const unsigned char* u(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}
}  // namespace

Result<SecretBytes> x25519(std::string_view scalar, std::string_view point) {
  init();
  if (scalar.size() != crypto_scalarmult_SCALARBYTES) return Error(Errc::bad_key);
  if (point.size() != crypto_scalarmult_BYTES) return Error(Errc::bad_point);
  SecretBytes out(crypto_scalarmult_BYTES);
  if (crypto_scalarmult(out.data(), u(scalar), u(point)) != 0) return Error(Errc::bad_point);
  return out;
}

KeyPair x25519_keypair() {
  init();
  KeyPair kp{std::string(crypto_box_PUBLICKEYBYTES, '\0'), SecretBytes(crypto_box_SECRETKEYBYTES)};
  crypto_box_keypair(reinterpret_cast<unsigned char*>(kp.public_key.data()), kp.secret_key.data());
  return kp;
}

Result<std::string> x25519_public_from_secret(std::string_view secret) {
  init();
  if (secret.size() != crypto_scalarmult_SCALARBYTES) return Error(Errc::bad_key);
  std::string pk(crypto_scalarmult_BYTES, '\0');
  crypto_scalarmult_base(reinterpret_cast<unsigned char*>(pk.data()), u(secret));
  return pk;
}

KeyPair ed25519_keypair() {
  init();
  KeyPair kp{std::string(crypto_sign_PUBLICKEYBYTES, '\0'),
             SecretBytes(crypto_sign_SECRETKEYBYTES)};
  crypto_sign_keypair(reinterpret_cast<unsigned char*>(kp.public_key.data()), kp.secret_key.data());
  return kp;
}

std::string ed25519_sign(const SecretBytes& secret, std::string_view message) {
  std::string sig(crypto_sign_BYTES, '\0');
  crypto_sign_detached(reinterpret_cast<unsigned char*>(sig.data()), nullptr, u(message),
                       message.size(), secret.data());
  return sig;
}

bool ed25519_verify(std::string_view pk, std::string_view message, std::string_view sig) {
  init();
  if (pk.size() != crypto_sign_PUBLICKEYBYTES || sig.size() != crypto_sign_BYTES) return false;
  return crypto_sign_verify_detached(u(sig), u(message), message.size(), u(pk)) == 0;
}

Result<std::string> seal_to(std::string_view pk, std::string_view plain) {
  init();
  if (pk.size() != crypto_box_PUBLICKEYBYTES) return Error(Errc::bad_key);
  std::string out(plain.size() + crypto_box_SEALBYTES, '\0');
  if (crypto_box_seal(reinterpret_cast<unsigned char*>(out.data()), u(plain), plain.size(),
                      u(pk)) != 0)
    return Error(Errc::bad_point);
  return out;
}

Result<Key32> open_sealed_key(std::string_view pk, const SecretBytes& sk, std::string_view sealed) {
  init();
  if (pk.size() != crypto_box_PUBLICKEYBYTES || sk.size() != crypto_box_SECRETKEYBYTES)
    return Error(Errc::bad_key);
  if (sealed.size() != crypto_box_SEALBYTES + Key32::bytes) return Error(Errc::auth_failed);
  Key32 out;
  if (crypto_box_seal_open(out.data(), u(sealed), sealed.size(), u(pk), sk.data()) != 0)
    return Error(Errc::auth_failed);
  return out;
}

}  // namespace postern::crypto
