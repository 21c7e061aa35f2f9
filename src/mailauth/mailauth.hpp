// Message authentication: DKIM (RFC 6376, RFC 8463) signing today; verification, SPF, DMARC
// and ARC build on the same canonicalisation.
//
// Security: messages are hostile input; canonicalisation is total and linear in the input.
// Signing keys are SecretBytes and never leave this module except as signatures.
#pragma once

#include "base/error.hpp"
#include "crypto/crypto.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace postern::mailauth {

enum class Errc { bad_key = 1, bad_message };
const std::error_category& category();
inline std::error_code make_error_code(Errc e) {
  return {static_cast<int>(e), category()};
}

// RFC 6376 3.4.2: one header field, relaxed ("name:value\r\n").
std::string relaxed_header(std::string_view name, std::string_view raw_value);
// RFC 6376 3.4.4 (relaxed) and 3.4.3 (simple) body canonicalisation.
std::string relaxed_body(std::string_view body);
std::string simple_body(std::string_view body);

enum class DkimAlgorithm { ed25519_sha256, rsa_sha256 };

struct DkimKey {
  DkimAlgorithm algorithm = DkimAlgorithm::ed25519_sha256;
  std::string domain;
  std::string selector;
  crypto::SecretBytes secret;  // Ed25519: libsodium's 64 bytes; RSA: PKCS#8 DER
  std::string public_key;      // Ed25519: 32 bytes; RSA: SubjectPublicKeyInfo DER
};
Result<DkimKey> make_dkim_key(DkimAlgorithm algorithm, std::string domain, std::string selector);
// The TXT record to publish at <selector>._domainkey.<domain>.
std::string dkim_record(const DkimKey& key);

struct DkimOptions {
  // Signed in every occurrence when present.
  std::vector<std::string> headers = {"from",
                                      "to",
                                      "cc",
                                      "subject",
                                      "date",
                                      "message-id",
                                      "reply-to",
                                      "in-reply-to",
                                      "references",
                                      "mime-version",
                                      "content-type",
                                      "content-transfer-encoding",
                                      "content-disposition",
                                      "sender",
                                      "list-id",
                                      "list-unsubscribe",
                                      "list-unsubscribe-post",
                                      "autocrypt"};
  // Signed once more than they occur, so that none can be added after signing.
  std::vector<std::string> oversign = {"from", "to", "subject", "date", "message-id"};
  int64_t timestamp = 0;  // t=; 0 leaves it out
};

// The DKIM-Signature header field (folded, CRLF-terminated) to prepend to `message`
// (CRLF line ends), relaxed/relaxed.
Result<std::string> dkim_sign(std::string_view message, const DkimKey& key,
                              const DkimOptions& options);

}  // namespace postern::mailauth

template <>
struct std::is_error_code_enum<postern::mailauth::Errc> : std::true_type {};
