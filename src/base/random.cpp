#include "base/random.hpp"

#include <sodium.h>

#include <array>

namespace postern::base {

uint64_t Random::next_u64() {
  std::array<unsigned char, 8> b{};
  fill(b);
  uint64_t v = 0;
  for (unsigned char c : b) v = (v << 8) | c;
  return v;
}

std::string Random::token(std::size_t n) {
  static constexpr char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
  std::string raw(n, '\0');
  fill(std::span(reinterpret_cast<unsigned char*>(raw.data()), raw.size()));
  std::string out;
  out.reserve(n * 8 / 5 + 1);
  unsigned buffer = 0;
  int bits = 0;
  for (unsigned char c : raw) {
    buffer = (buffer << 8) | c;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(buffer >> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(buffer << (5 - bits)) & 31];
  return out;
}

namespace {
class SodiumRandom final : public Random {
 public:
  SodiumRandom() {
    if (sodium_init() < 0) std::abort();
  }
  void fill(std::span<unsigned char> out) override { randombytes_buf(out.data(), out.size()); }
};
}  // namespace

Random& system_random() {
  static SodiumRandom r;
  return r;
}

}  // namespace postern::base
