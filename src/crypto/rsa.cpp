// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017) through OpenSSL 3's EVP API, for DKIM (RFC 6376
// rsa-sha256). Keys travel as DER: PKCS#8 for the private key (in SecretBytes),
// SubjectPublicKeyInfo for the public one (what a DKIM record's p= holds).
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <list>
#include <memory>
#include <mutex>

#include "crypto/crypto.hpp"

namespace postern::crypto {
namespace {

struct Del {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
template <class T>
using Ptr = std::unique_ptr<T, Del>;

const unsigned char* u(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// SHA-256 fetched from the provider once: the implicit fetch of EVP_sha256() takes a global
// lock and a name lookup on every call, more than hashing a DKIM header block.
const EVP_MD* sha256_md() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

// Parsed keys by the SHA-256 of their DER. OpenSSL 3 decodes a DER key through its provider
// machinery, which costs more than the signature itself; a DKIM signer uses the same few keys
// for every message and a verifier sees the same senders' keys again and again. Bounded (LRU).
class ParsedKeys {
 public:
  template <class Decode>
  std::shared_ptr<EVP_PKEY> get(std::string_view der, Decode decode) {
    std::string id = sha256(der);
    std::lock_guard lock(mu_);
    for (auto it = keys_.begin(); it != keys_.end(); ++it)
      if (it->first == id) {
        keys_.splice(keys_.begin(), keys_, it);
        return it->second;
      }
    const unsigned char* p = u(der);
    std::shared_ptr<EVP_PKEY> key(decode(&p, static_cast<long>(der.size())), EVP_PKEY_free);
    if (!key || p != u(der) + der.size() || EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_RSA)
      return nullptr;
    keys_.emplace_front(std::move(id), key);
    if (keys_.size() > 64) keys_.pop_back();
    return key;
  }

 private:
  std::mutex mu_;
  std::list<std::pair<std::string, std::shared_ptr<EVP_PKEY>>> keys_;
};

std::shared_ptr<EVP_PKEY> private_key(const SecretBytes& der) {
  static ParsedKeys cache;  // the keys are server secrets the caller holds anyway
  return cache.get(der.view(), [](const unsigned char** p, long n) {
    return d2i_AutoPrivateKey(nullptr, p, n);
  });
}

std::shared_ptr<EVP_PKEY> public_key(std::string_view der) {
  static ParsedKeys cache;
  return cache.get(der, [](const unsigned char** p, long n) { return d2i_PUBKEY(nullptr, p, n); });
}

}  // namespace

Result<RsaKey> rsa_generate(unsigned bits) {
  Ptr<EVP_PKEY> key(EVP_RSA_gen(bits));
  if (!key) return Error(Errc::internal, "RSA key generation");
  RsaKey out;
  int n = i2d_PrivateKey(key.get(), nullptr);
  if (n <= 0) return Error(Errc::internal, "RSA key encoding");
  out.private_der = SecretBytes(static_cast<std::size_t>(n));
  unsigned char* p = out.private_der.data();
  i2d_PrivateKey(key.get(), &p);
  int m = i2d_PUBKEY(key.get(), nullptr);
  if (m <= 0) return Error(Errc::internal, "RSA key encoding");
  out.public_der.resize(static_cast<std::size_t>(m));
  auto* q = reinterpret_cast<unsigned char*>(out.public_der.data());
  i2d_PUBKEY(key.get(), &q);
  return out;
}

Result<std::string> rsa_sha256_sign(const SecretBytes& private_der, std::string_view message) {
  auto key = private_key(private_der);
  if (!key) return Error(Errc::bad_key);
  Ptr<EVP_MD_CTX> ctx(EVP_MD_CTX_new());
  std::size_t len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, sha256_md(), nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, u(message), message.size()) != 1)
    return Error(Errc::internal, "RSA sign");
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, u(message),
                     message.size()) != 1)
    return Error(Errc::internal, "RSA sign");
  sig.resize(len);
  return sig;
}

bool rsa_sha256_verify(std::string_view public_der, std::string_view message,
                       std::string_view signature) {
  auto key = public_key(public_der);
  if (!key) return false;
  Ptr<EVP_MD_CTX> ctx(EVP_MD_CTX_new());
  return ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, sha256_md(), nullptr, key.get()) == 1 &&
         EVP_DigestVerify(ctx.get(), u(signature), signature.size(), u(message), message.size()) ==
             1;
}

unsigned rsa_public_bits(std::string_view public_der) {
  auto key = public_key(public_der);
  return key ? static_cast<unsigned>(EVP_PKEY_get_bits(key.get())) : 0;
}

std::string sha256(std::string_view data) {
  std::string out(32, '\0');
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), reinterpret_cast<unsigned char*>(out.data()), &len,
             sha256_md(), nullptr);
  return out;
}

}  // namespace postern::crypto
