// Keyring serialisation: "PKR1" then each field as a 4-byte big-endian length and its bytes.
#include "keys/keys.hpp"

#include <array>

namespace postern::keys {
namespace {
constexpr std::string_view tag = "PKR1";
constexpr std::size_t max_field_bytes = 4096;

void put(std::string& out, std::string_view v) {
  auto n = static_cast<uint32_t>(v.size());
  for (int i = 3; i >= 0; --i) out += static_cast<char>((n >> (8 * i)) & 0xff);
  out += v;
}
void put_u64(std::string& out, uint64_t v) {
  std::string b;
  for (int i = 7; i >= 0; --i) b += static_cast<char>((v >> (8 * i)) & 0xff);
  put(out, b);
}
bool get(std::string_view& in, std::string& out) {
  if (in.size() < 4) return false;
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n = (n << 8) | static_cast<unsigned char>(in[i]);
  in.remove_prefix(4);
  if (n > max_field_bytes || n > in.size()) return false;
  out = std::string(in.substr(0, n));
  in.remove_prefix(n);
  return true;
}
bool get_u64(std::string_view& in, uint64_t& v) {
  std::string b;
  if (!get(in, b) || b.size() != 8) return false;
  v = 0;
  for (char c : b) v = (v << 8) | static_cast<unsigned char>(c);
  return true;
}
}  // namespace

std::string Keyring::serialize() const {
  std::string out(tag);
  put(out, storage_public);
  put(out, identity_sign_public);
  put(out, identity_dh_public);
  put(out, password_salt);
  put_u64(out, argon_ops);
  put_u64(out, argon_mem);
  put(out, password_verifier);
  put(out, wrapped_by_password);
  put(out, recovery_salt);
  put(out, wrapped_by_recovery);
  return out;
}

Result<Keyring> Keyring::parse(std::string_view in) {
  if (in.substr(0, tag.size()) != tag) return Error(Errc::corrupt_keyring);
  in.remove_prefix(tag.size());
  Keyring k;
  bool ok = get(in, k.storage_public) && get(in, k.identity_sign_public) &&
            get(in, k.identity_dh_public) && get(in, k.password_salt) && get_u64(in, k.argon_ops) &&
            get_u64(in, k.argon_mem) && get(in, k.password_verifier) &&
            get(in, k.wrapped_by_password) && get(in, k.recovery_salt) &&
            get(in, k.wrapped_by_recovery) && in.empty();
  if (!ok) return Error(Errc::corrupt_keyring);
  return k;
}

}  // namespace postern::keys
