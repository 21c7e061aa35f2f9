// The per-message zero-access envelope (docs/crypto.md "Stored messages").
#include "keys/keys.hpp"

namespace postern::keys {
namespace {
constexpr std::string_view content_ad = "postern/v1/message-content";
constexpr std::string_view summary_ad = "postern/v1/message-summary";
constexpr std::string_view wrapped_key_ad = "postern/v1/content-key";
}  // namespace

Result<SealedMessage> seal_message(std::string_view storage_public, std::string_view content,
                                   std::string_view summary) {
  auto key = crypto::Key32::random();
  SealedMessage m;
  auto sealed = crypto::seal_to(storage_public, key.view());
  if (!sealed) return sealed.error();
  m.sealed_key = std::move(*sealed);
  m.blob = crypto::seal_random_nonce(key.view(), content_ad, content);
  m.summary = crypto::seal_random_nonce(key.view(), summary_ad, summary);
  return m;
}

Result<crypto::Key32> open_content_key(const UnlockedKeys& keys, std::string_view sealed_key) {
  return crypto::open_sealed_key(keys.storage_public, keys.storage_secret, sealed_key);
}

std::string wrap_content_key(const UnlockedKeys& keys, const crypto::Key32& content_key) {
  return crypto::seal_random_nonce(keys.content_wrap_key.view(), wrapped_key_ad,
                                   content_key.view());
}

Result<crypto::Key32> unwrap_content_key(const UnlockedKeys& keys, std::string_view wrapped) {
  return crypto::open_random_nonce_key(keys.content_wrap_key.view(), wrapped_key_ad, wrapped);
}

Result<std::string> open_blob(const crypto::Key32& key, std::string_view blob) {
  return crypto::open_random_nonce(key.view(), content_ad, blob);
}

Result<std::string> open_summary(const crypto::Key32& key, std::string_view summary) {
  return crypto::open_random_nonce(key.view(), summary_ad, summary);
}

}  // namespace postern::keys
