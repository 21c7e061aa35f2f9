// Argon2id (RFC 9106, libsodium crypto_pwhash) and HKDF-SHA256 (RFC 5869, OpenSSL EVP_KDF).
#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <sodium.h>

#include "crypto/crypto.hpp"

namespace postern::crypto {

Result<SecretBytes> argon2id(std::string_view password, std::string_view salt,
                             const Argon2Params& p, std::size_t out_bytes) {
  init();
  if (salt.size() != crypto_pwhash_SALTBYTES) return Error(Errc::bad_input, "salt length");
  if (p.ops_limit < crypto_pwhash_OPSLIMIT_MIN || p.mem_limit_bytes < crypto_pwhash_MEMLIMIT_MIN)
    return Error(Errc::bad_input, "argon2id parameters below the minimum");
  SecretBytes out(out_bytes);
  if (crypto_pwhash(out.data(), out.size(), password.data(), password.size(),
                    reinterpret_cast<const unsigned char*>(salt.data()), p.ops_limit,
                    p.mem_limit_bytes, crypto_pwhash_ALG_ARGON2ID13) != 0)
    return Error(Errc::internal, "argon2id (out of memory?)");
  return out;
}

Result<SecretBytes> hkdf_sha256(std::string_view ikm, std::string_view salt, std::string_view info,
                                std::size_t out_bytes) {
  if (out_bytes == 0 || out_bytes > 255 * 32) return Error(Errc::bad_input, "hkdf length");
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  if (!kdf) return Error(Errc::internal, "HKDF unavailable");
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
  EVP_KDF_free(kdf);
  if (!ctx) return Error(Errc::internal);
  char digest[] = "SHA256";
  // OpenSSL wants non-const pointers; it does not modify the inputs. An empty salt or key is
  // passed as a one-byte buffer with length 0, since OpenSSL rejects null pointers.
  char empty = 0;
  auto octets = [&](const char* name, std::string_view v) {
    return OSSL_PARAM_construct_octet_string(name, v.empty() ? &empty : const_cast<char*>(v.data()),
                                             v.size());
  };
  OSSL_PARAM params[5];
  std::size_t n = 0;
  params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
  params[n++] = octets(OSSL_KDF_PARAM_KEY, ikm);
  // RFC 5869 2.2: no salt means HashLen zeros, which is what OpenSSL uses when it is absent.
  if (!salt.empty()) params[n++] = octets(OSSL_KDF_PARAM_SALT, salt);
  params[n++] = octets(OSSL_KDF_PARAM_INFO, info);
  params[n] = OSSL_PARAM_construct_end();
  SecretBytes out(out_bytes);
  int rc = EVP_KDF_derive(ctx, out.data(), out.size(), params);
  EVP_KDF_CTX_free(ctx);
  if (rc != 1) return Error(Errc::internal, "HKDF derive");
  return out;
}

}  // namespace postern::crypto
