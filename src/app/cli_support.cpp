#include "app/cli_support.hpp"

#include "app/app.hpp"
#include "app/services.hpp"
#include "mime/mime.hpp"

namespace postern::app {

std::optional<Opened> open(const std::string& config_path, std::ostream& err, int& code) {
  auto cfg = load_config(config_path);
  if (!cfg) {
    err << "postern: " << cfg.error().detail() << " (" << cfg.error().code().message() << ")\n";
    code = exit_usage;
    return std::nullopt;
  }
  crypto::init();
  auto store = open_store(*cfg);
  if (!store) {
    err << "postern: database: " << store.error().describe() << "\n";
    code = exit_failure;
    return std::nullopt;
  }
  return Opened{std::move(*cfg), std::move(*store)};
}

int report(const Error& e, std::ostream& err) {
  err << "postern: " << e.describe() << "\n";
  if (e.code() == keys::Errc::wrong_password || e.code() == keys::Errc::wrong_recovery_key)
    return exit_denied;
  if (e.code() == store::Errc::not_found) return exit_not_found;
  if (e.code().category() == mime::category() || e.code() == store::Errc::exists ||
      e.code() == keys::Errc::empty_password)
    return exit_usage;
  return exit_failure;
}

Result<store::Account> find(store::Store& s, const std::string& address) {
  auto key = normalise_address(s, address);
  if (!key) return key.error();
  auto acc = s.find_account(*key);
  if (!acc) return acc.error();
  if (!*acc) return Error(store::Errc::not_found, "no account " + *key);
  return std::move(**acc);
}

Result<Unlockable> find_with_keyring(store::Store& s, const std::string& address) {
  auto acc = find(s, address);
  if (!acc) return acc.error();
  auto ring = keys::Keyring::parse(acc->keyring);
  if (!ring) return ring.error();
  return Unlockable{std::move(*acc), std::move(*ring)};
}

}  // namespace postern::app
