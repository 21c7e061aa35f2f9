// Internal to server/: password verification shared by IMAP LOGIN/AUTHENTICATE and SMTP AUTH.
#pragma once

#include <mutex>
#include <string_view>
#include <utility>

#include "keys/keys.hpp"
#include "store/store.hpp"

namespace postern::server {

class PasswordCheck {
 public:
  // `params` (the cost of new keyrings) must outlive the check; read when first needed.
  explicit PasswordCheck(const crypto::Argon2Params& params) : params_(&params) {}
  // The account (looked up by its lowercased address) with its keys unwrapped, or
  // keys::Errc::wrong_password. An unknown user costs the same Argon2id run as a known one, so
  // failures do not tell which accounts exist. Blocking: run it on the pool.
  Result<std::pair<store::Account, keys::UnlockedKeys>> verify(store::Store& store,
                                                               std::string_view user,
                                                               std::string_view password);

 private:
  const keys::Keyring& dummy_keyring();
  const crypto::Argon2Params* params_;
  std::once_flag once_;
  keys::Keyring dummy_;
};

}  // namespace postern::server
