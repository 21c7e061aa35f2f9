#include <sodium.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "crypto/crypto.hpp"

namespace postern::crypto {
namespace {
std::atomic<long> g_live{0};
}

void init() {
  static const bool ok = sodium_init() >= 0;
  if (!ok) std::abort();
}

const std::error_category& category() {
  static const struct : std::error_category {
    const char* name() const noexcept override { return "crypto"; }
    std::string message(int e) const override {
      switch (static_cast<Errc>(e)) {
        case Errc::init:
          return "crypto library initialisation failed";
        case Errc::bad_key:
          return "bad key length";
        case Errc::bad_nonce:
          return "bad nonce length";
        case Errc::auth_failed:
          return "authentication failed";
        case Errc::bad_point:
          return "invalid public key";
        case Errc::internal:
          return "crypto library error";
        case Errc::bad_input:
          return "bad input";
      }
      return "crypto error";
    }
  } cat;
  return cat;
}

SecretBytes::SecretBytes(std::size_t n) : n_(n) {
  init();
  if (n == 0) return;
  p_ = static_cast<unsigned char*>(sodium_malloc(n));
  if (!p_) std::abort();
  std::memset(p_, 0, n);
  g_live.fetch_add(1);
}

SecretBytes SecretBytes::copy_of(std::string_view bytes) {
  SecretBytes s(bytes.size());
  if (!bytes.empty()) std::memcpy(s.p_, bytes.data(), bytes.size());
  return s;
}

SecretBytes::SecretBytes(SecretBytes&& o) noexcept
    : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}

SecretBytes& SecretBytes::operator=(SecretBytes&& o) noexcept {
  if (this != &o) {
    if (p_) {
      sodium_free(p_);  // sodium_free wipes before releasing
      g_live.fetch_sub(1);
    }
    p_ = std::exchange(o.p_, nullptr);
    n_ = std::exchange(o.n_, 0);
  }
  return *this;
}

SecretBytes::~SecretBytes() {
  if (p_) {
    sodium_free(p_);
    g_live.fetch_sub(1);
  }
}

long SecretBytes::live_count() {
  return g_live.load();
}

Key32::Key32(Key32&& o) noexcept : b_(o.b_) {
  sodium_memzero(o.b_.data(), bytes);
}

Key32& Key32::operator=(Key32&& o) noexcept {
  if (this != &o) {
    b_ = o.b_;
    sodium_memzero(o.b_.data(), bytes);
  }
  return *this;
}

Key32::~Key32() {
  sodium_memzero(b_.data(), bytes);
}

Key32 Key32::random() {
  init();
  Key32 k;
  randombytes_buf(k.b_.data(), bytes);
  return k;
}

void wipe(std::string& s) {
  if (!s.empty()) sodium_memzero(s.data(), s.size());
  s.clear();
}

void wipe(void* p, std::size_t n) {
  sodium_memzero(p, n);
}

bool equal_ct(std::string_view a, std::string_view b) {
  return a.size() == b.size() && (a.empty() || sodium_memcmp(a.data(), b.data(), a.size()) == 0);
}

std::string random_bytes(std::size_t n) {
  init();
  std::string s(n, '\0');
  randombytes_buf(s.data(), n);
  return s;
}

SecretBytes random_secret(std::size_t n) {
  SecretBytes s(n);
  randombytes_buf(s.data(), n);
  return s;
}

std::string to_hex(std::string_view bytes) {
  std::string out(bytes.size() * 2 + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()),
                 bytes.size());
  out.pop_back();
  return out;
}

std::string base64(std::string_view bytes) {
  init();
  std::size_t len = sodium_base64_ENCODED_LEN(bytes.size(), sodium_base64_VARIANT_ORIGINAL);
  std::string out(len, '\0');
  sodium_bin2base64(out.data(), len, reinterpret_cast<const unsigned char*>(bytes.data()),
                    bytes.size(), sodium_base64_VARIANT_ORIGINAL);
  out.resize(len - 1);
  return out;
}

Result<std::string> from_base64(std::string_view text) {
  init();
  std::string out(text.size(), '\0');
  std::size_t len = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(),
                        text.size(), nullptr, &len, nullptr, sodium_base64_VARIANT_ORIGINAL) != 0)
    return Error(Errc::bad_input, "base64");
  out.resize(len);
  return out;
}

}  // namespace postern::crypto
