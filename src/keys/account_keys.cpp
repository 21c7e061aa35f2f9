// Account key creation, wrapping and unwrapping (docs/crypto.md "Account keys").
#include <cstring>

#include "keys/keys.hpp"

namespace postern::keys {

const std::error_category& category() {
  static const struct : std::error_category {
    const char* name() const noexcept override { return "keys"; }
    std::string message(int e) const override {
      switch (static_cast<Errc>(e)) {
        case Errc::wrong_password:
          return "wrong password";
        case Errc::wrong_recovery_key:
          return "wrong recovery key";
        case Errc::corrupt_keyring:
          return "keyring corrupt";
        case Errc::empty_password:
          return "empty password";
      }
      return "keys error";
    }
  } cat;
  return cat;
}

namespace {
constexpr std::size_t storage_sk_bytes = 32, sign_sk_bytes = 64, dh_sk_bytes = 32;
constexpr std::size_t bundle_bytes = storage_sk_bytes + sign_sk_bytes + dh_sk_bytes;
constexpr std::size_t recovery_key_bytes = 32;

std::string label(std::string_view what, std::string_view address) {
  return "postern/v1/" + std::string(what) + "|" + std::string(address);
}

struct PasswordKeys {
  std::string verifier;
  crypto::SecretBytes wrap_key;
};

// One Argon2id run yields both the verifier and the wrapping key (HKDF with distinct labels).
Result<PasswordKeys> derive_password_keys(std::string_view address, std::string_view password,
                                          std::string_view salt,
                                          const crypto::Argon2Params& params) {
  if (password.empty()) return Error(Errc::empty_password);
  auto master = crypto::argon2id(password, salt, params, 32);
  if (!master) return master.error();
  auto verifier = crypto::hkdf_sha256(master->view(), {}, label("password-verifier", address), 32);
  if (!verifier) return verifier.error();
  auto wrap = crypto::hkdf_sha256(master->view(), {}, label("password-wrap", address), 32);
  if (!wrap) return wrap.error();
  return PasswordKeys{std::string(verifier->view()), std::move(*wrap)};
}

Result<crypto::SecretBytes> recovery_wrap_key(std::string_view address,
                                              const crypto::SecretBytes& recovery,
                                              std::string_view salt) {
  return crypto::hkdf_sha256(recovery.view(), salt, label("recovery-wrap", address), 32);
}

// Display form: base32, groups of four separated by '-'.
std::string display_recovery(const crypto::SecretBytes& key) {
  static constexpr char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
  std::string out;
  unsigned buffer = 0;
  int bits = 0, count = 0;
  auto emit = [&](char c) {
    if (count > 0 && count % 4 == 0) out += '-';
    out += c;
    ++count;
  };
  for (std::size_t i = 0; i < key.size(); ++i) {
    buffer = (buffer << 8) | key.data()[i];
    bits += 8;
    while (bits >= 5) {
      emit(alphabet[(buffer >> (bits - 5)) & 31]);
      bits -= 5;
    }
  }
  if (bits > 0) emit(alphabet[(buffer << (5 - bits)) & 31]);
  return out;
}

Result<crypto::SecretBytes> parse_recovery(std::string_view text) {
  crypto::SecretBytes out(recovery_key_bytes);
  unsigned buffer = 0;
  int bits = 0;
  std::size_t n = 0;
  for (char c : text) {
    if (c == '-' || c == ' ') continue;
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    int v;
    if (c >= 'a' && c <= 'z')
      v = c - 'a';
    else if (c >= '2' && c <= '7')
      v = c - '2' + 26;
    else
      return Error(Errc::wrong_recovery_key);
    buffer = (buffer << 5) | static_cast<unsigned>(v);
    bits += 5;
    if (bits >= 8) {
      if (n >= out.size()) return Error(Errc::wrong_recovery_key);
      out.data()[n++] = static_cast<unsigned char>((buffer >> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  crypto::wipe(&buffer, sizeof buffer);
  if (n != out.size()) return Error(Errc::wrong_recovery_key);
  return out;
}

Result<UnlockedKeys> unbundle(const Keyring& k, const crypto::SecretBytes& bundle) {
  if (bundle.size() != bundle_bytes) return Error(Errc::corrupt_keyring);
  // The public key in the keyring is not authenticated by the wrapping: check it against the
  // secret it must belong to.
  auto derived = crypto::x25519_public_from_secret(bundle.view().substr(0, storage_sk_bytes));
  if (!derived || *derived != k.storage_public) return Error(Errc::corrupt_keyring);
  UnlockedKeys u;
  u.storage_public = k.storage_public;
  u.storage_secret = crypto::SecretBytes::copy_of(bundle.view().substr(0, storage_sk_bytes));
  u.identity_sign_secret =
      crypto::SecretBytes::copy_of(bundle.view().substr(storage_sk_bytes, sign_sk_bytes));
  u.identity_dh_secret = crypto::SecretBytes::copy_of(
      bundle.view().substr(storage_sk_bytes + sign_sk_bytes, dh_sk_bytes));
  auto wrap = crypto::hkdf_sha256(u.storage_secret.view(), {}, "postern/v1/content-key-wrap",
                                  crypto::aead_key_bytes);
  if (!wrap) return wrap.error();
  u.content_wrap_key = std::move(*wrap);
  return u;
}

crypto::SecretBytes bundle(const UnlockedKeys& u) {
  crypto::SecretBytes b(bundle_bytes);
  std::memcpy(b.data(), u.storage_secret.data(), storage_sk_bytes);
  std::memcpy(b.data() + storage_sk_bytes, u.identity_sign_secret.data(), sign_sk_bytes);
  std::memcpy(b.data() + storage_sk_bytes + sign_sk_bytes, u.identity_dh_secret.data(),
              dh_sk_bytes);
  return b;
}

}  // namespace

Result<NewAccountKeys> create_account_keys(std::string_view address, std::string_view password,
                                           const crypto::Argon2Params& params) {
  UnlockedKeys u;
  auto storage = crypto::x25519_keypair();
  auto sign = crypto::ed25519_keypair();
  auto dh = crypto::x25519_keypair();
  u.storage_public = storage.public_key;
  u.storage_secret = std::move(storage.secret_key);
  u.identity_sign_secret = std::move(sign.secret_key);
  u.identity_dh_secret = std::move(dh.secret_key);

  NewAccountKeys out;
  Keyring& k = out.keyring;
  k.storage_public = storage.public_key;
  k.identity_sign_public = sign.public_key;
  k.identity_dh_public = dh.public_key;

  auto recovery = crypto::random_secret(recovery_key_bytes);
  k.recovery_salt = crypto::random_bytes(16);
  auto rwrap = recovery_wrap_key(address, recovery, k.recovery_salt);
  if (!rwrap) return rwrap.error();
  auto b = bundle(u);
  k.wrapped_by_recovery =
      crypto::seal_random_nonce(rwrap->view(), label("keyring", address), b.view());
  out.recovery_key = display_recovery(recovery);

  auto rewrapped = rewrap_password(address, k, u, password, params);
  if (!rewrapped) return rewrapped.error();
  out.keyring = std::move(*rewrapped);
  return out;
}

Result<Keyring> rewrap_password(std::string_view address, const Keyring& keyring,
                                const UnlockedKeys& u, std::string_view new_password,
                                const crypto::Argon2Params& params) {
  Keyring k = keyring;
  k.password_salt = crypto::random_bytes(crypto::argon2_salt_bytes);
  k.argon_ops = params.ops_limit;
  k.argon_mem = params.mem_limit_bytes;
  auto pk = derive_password_keys(address, new_password, k.password_salt, params);
  if (!pk) return pk.error();
  k.password_verifier = pk->verifier;
  auto b = bundle(u);
  k.wrapped_by_password =
      crypto::seal_random_nonce(pk->wrap_key.view(), label("keyring", address), b.view());
  return k;
}

Result<UnlockedKeys> unlock_with_password(std::string_view address, const Keyring& k,
                                          std::string_view password) {
  crypto::Argon2Params params{k.argon_ops, static_cast<std::size_t>(k.argon_mem)};
  auto pk = derive_password_keys(address, password, k.password_salt, params);
  if (!pk) {
    if (pk.error().code() == Errc::empty_password) return Error(Errc::wrong_password);
    return pk.error();
  }
  if (!crypto::equal_ct(pk->verifier, k.password_verifier)) return Error(Errc::wrong_password);
  auto b = crypto::open_random_nonce_secret(pk->wrap_key.view(), label("keyring", address),
                                            k.wrapped_by_password);
  if (!b) return Error(Errc::corrupt_keyring);
  return unbundle(k, *b);
}

Result<UnlockedKeys> unlock_with_recovery(std::string_view address, const Keyring& k,
                                          std::string_view recovery_text) {
  auto recovery = parse_recovery(recovery_text);
  if (!recovery) return recovery.error();
  auto rwrap = recovery_wrap_key(address, *recovery, k.recovery_salt);
  if (!rwrap) return rwrap.error();
  auto b = crypto::open_random_nonce_secret(rwrap->view(), label("keyring", address),
                                            k.wrapped_by_recovery);
  if (!b) return Error(Errc::wrong_recovery_key);
  return unbundle(k, *b);
}

}  // namespace postern::keys
