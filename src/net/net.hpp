// Network plumbing shared by the protocol servers: hardened TLS contexts and listener addresses.
// Keep Asio out of headers above this layer: this header only forward-declares.
#pragma once

#include "base/error.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace boost::asio::ssl {
class context;
}

namespace postern::net {

enum class Errc { bad_address = 1, tls_setup };
const std::error_category& category();
inline std::error_code make_error_code(Errc e) {
  return {static_cast<int>(e), category()};
}

struct Endpoint {
  std::string host;  // IPv4 or IPv6 literal
  uint16_t port = 0;
  std::string str() const;
};
// "127.0.0.1:25", "[::1]:25".
Result<Endpoint> parse_endpoint(const std::string& text);

// TLS 1.2 and 1.3 only; TLS 1.2 limited to ECDHE with AEAD ciphers (forward secrecy, no CBC,
// no RSA key exchange); no compression, no renegotiation; server cipher preference.
Result<std::shared_ptr<boost::asio::ssl::context>> make_server_tls_context(
    const std::string& cert_file, const std::string& key_file);

// Outbound SMTP: TLS 1.2+, verification decided per connection (opportunistic TLS does not
// verify; REQUIRETLS does, against `ca_file` or the system store when empty).
Result<std::shared_ptr<boost::asio::ssl::context>> make_client_tls_context(
    const std::string& ca_file);

// The TLS 1.2 cipher list above, for tests and the audit.
const char* tls12_ciphers();

}  // namespace postern::net

template <>
struct std::is_error_code_enum<postern::net::Errc> : std::true_type {};
