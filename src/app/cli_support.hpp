// Internal to app/: what the administration subcommands share: opening the config and store,
// turning errors into exit codes, finding an account with its keyring.
#pragma once

#include <memory>
#include <optional>
#include <ostream>
#include <string>

#include "app/config.hpp"
#include "keys/keys.hpp"
#include "store/store.hpp"

namespace postern::app {

struct Opened {
  Config config;
  std::unique_ptr<store::Store> store;
};
// The config and its store; on failure prints why, sets `code` and returns nullopt.
std::optional<Opened> open(const std::string& config_path, std::ostream& err, int& code);
// Prints the error; returns the exit code it calls for.
int report(const Error& e, std::ostream& err);
Result<store::Account> find(store::Store& s, const std::string& address);
struct Unlockable {
  store::Account account;
  keys::Keyring keyring;
};
Result<Unlockable> find_with_keyring(store::Store& s, const std::string& address);

}  // namespace postern::app
