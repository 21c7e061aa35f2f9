#include <openssl/ssl.h>
#include <boost/asio/ssl/context.hpp>

#include "net/net.hpp"

namespace postern::net {

const std::error_category& category() {
  static const struct : std::error_category {
    const char* name() const noexcept override { return "net"; }
    std::string message(int e) const override {
      switch (static_cast<Errc>(e)) {
        case Errc::bad_address:
          return "bad listen address";
        case Errc::tls_setup:
          return "TLS setup failed";
      }
      return "net error";
    }
  } cat;
  return cat;
}

const char* tls12_ciphers() {
  return "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
         "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
         "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256";
}

Result<std::shared_ptr<boost::asio::ssl::context>> make_server_tls_context(
    const std::string& cert_file, const std::string& key_file) {
  namespace ssl = boost::asio::ssl;
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* raw = ctx->native_handle();
  SSL_CTX_set_min_proto_version(raw, TLS1_2_VERSION);
  SSL_CTX_set_options(raw, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
  // Idle connections (IMAP IDLE, thousands of them) keep no 34 KiB of record buffers.
  SSL_CTX_set_mode(raw, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_set_cipher_list(raw, tls12_ciphers()) != 1)
    return Error(Errc::tls_setup, "cipher list");
  if (SSL_CTX_set1_groups_list(raw, "X25519:P-256:P-384") != 1)
    return Error(Errc::tls_setup, "groups");
  if (SSL_CTX_use_certificate_chain_file(raw, cert_file.c_str()) != 1)
    return Error(Errc::tls_setup, "cannot load certificate " + cert_file);
  if (SSL_CTX_use_PrivateKey_file(raw, key_file.c_str(), SSL_FILETYPE_PEM) != 1)
    return Error(Errc::tls_setup, "cannot load key " + key_file);
  if (SSL_CTX_check_private_key(raw) != 1)
    return Error(Errc::tls_setup, "key does not match certificate " + cert_file);
  return ctx;
}

Result<std::shared_ptr<boost::asio::ssl::context>> make_client_tls_context(
    const std::string& ca_file) {
  namespace ssl = boost::asio::ssl;
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  SSL_CTX* raw = ctx->native_handle();
  // TLS 1.2 floor as on the listeners: with a peer that only speaks older versions the
  // handshake fails and opportunistic delivery retries that host in plaintext (RFC 7435).
  SSL_CTX_set_min_proto_version(raw, TLS1_2_VERSION);
  SSL_CTX_set_options(raw, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_set1_groups_list(raw, "X25519:P-256:P-384") != 1)
    return Error(Errc::tls_setup, "groups");
  int ok = ca_file.empty() ? SSL_CTX_set_default_verify_paths(raw)
                           : SSL_CTX_load_verify_locations(raw, ca_file.c_str(), nullptr);
  if (ok != 1) return Error(Errc::tls_setup, "cannot load CA certificates " + ca_file);
  return ctx;
}

std::string Endpoint::str() const {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
         std::to_string(port);
}

Result<Endpoint> parse_endpoint(const std::string& text) {
  std::string host, port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return Error(Errc::bad_address, text);
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos) return Error(Errc::bad_address, text);
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host.empty() || port.empty() || port.size() > 5) return Error(Errc::bad_address, text);
  unsigned long p = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return Error(Errc::bad_address, text);
    p = p * 10 + static_cast<unsigned long>(c - '0');
  }
  if (p > 65535) return Error(Errc::bad_address, text);
  return Endpoint{host, static_cast<uint16_t>(p)};
}

}  // namespace postern::net
