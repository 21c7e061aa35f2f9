#include "server/password_check.hpp"

#include "base/random.hpp"
#include "base/text.hpp"

namespace postern::server {

const keys::Keyring& PasswordCheck::dummy_keyring() {
  std::call_once(once_, [this] {
    auto made =
        keys::create_account_keys("unknown@invalid", base::system_random().token(16), *params_);
    if (made) dummy_ = std::move(made->keyring);
  });
  return dummy_;
}

Result<std::pair<store::Account, keys::UnlockedKeys>> PasswordCheck::verify(
    store::Store& store, std::string_view user, std::string_view password) {
  std::string address = base::ascii_lower(user);
  auto account = store.find_account(address);
  if (!account) return account.error();
  auto ring = *account ? keys::Keyring::parse((*account)->keyring)
                       : Result<keys::Keyring>(Error(keys::Errc::corrupt_keyring));
  if (!ring) {
    (void)keys::unlock_with_password("unknown@invalid", dummy_keyring(), password);
    return Error(keys::Errc::wrong_password);
  }
  auto unlocked = keys::unlock_with_password(address, *ring, password);
  if (!unlocked) return unlocked.error();
  return std::make_pair(std::move(**account), std::move(*unlocked));
}

}  // namespace postern::server
