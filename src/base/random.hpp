// Randomness is injected so tests can be deterministic; production uses libsodium's CSPRNG.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace postern::base {

class Random {
 public:
  virtual ~Random() = default;
  virtual void fill(std::span<unsigned char> out) = 0;
  uint64_t next_u64();
  // Lowercase base32 token of n random bytes: file names, session ids, queue ids.
  std::string token(std::size_t n);
};

// The system CSPRNG (randombytes_buf).
Random& system_random();

}  // namespace postern::base
