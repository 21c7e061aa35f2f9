// BLAKE2b (RFC 7693) through libsodium's crypto_generichash.
#include <sodium.h>

#include "crypto/crypto.hpp"

namespace postern::crypto {
namespace {
const unsigned char* u(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}
}  // namespace

Result<std::string> keyed_hash(std::string_view key,
                               std::initializer_list<std::string_view> parts) {
  init();
  if (key.size() != crypto_generichash_KEYBYTES) return Error(Errc::bad_key);
  crypto_generichash_state st;
  crypto_generichash_init(&st, u(key), key.size(), 32);
  for (auto p : parts) {
    unsigned char len[8];
    uint64_t n = p.size();
    for (int i = 7; i >= 0; --i, n >>= 8) len[i] = static_cast<unsigned char>(n & 0xff);
    crypto_generichash_update(&st, len, sizeof len);
    crypto_generichash_update(&st, u(p), p.size());
  }
  std::string out(32, '\0');
  crypto_generichash_final(&st, reinterpret_cast<unsigned char*>(out.data()), out.size());
  sodium_memzero(&st, sizeof st);
  return out;
}

std::string blake2b(std::string_view data, std::size_t out_bytes) {
  init();
  std::string out(out_bytes, '\0');
  crypto_generichash(reinterpret_cast<unsigned char*>(out.data()), out.size(), u(data), data.size(),
                     nullptr, 0);
  return out;
}

}  // namespace postern::crypto
