// DKIM signing (RFC 6376 5, RFC 8463 for Ed25519), relaxed/relaxed.
#include <algorithm>

#include "mailauth/mailauth.hpp"
#include "mime/mime.hpp"

namespace postern::mailauth {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  return out;
}

const char* algorithm_name(DkimAlgorithm a) {
  return a == DkimAlgorithm::ed25519_sha256 ? "ed25519-sha256" : "rsa-sha256";
}

// b= is long: fold it so that no line of the field passes 78 characters. Folding white space
// inside b= is ignored by verifiers (RFC 6376 3.5).
std::string fold_base64(std::string_view b64, std::size_t first_line_room) {
  std::string out;
  std::size_t pos = 0;
  std::size_t room = first_line_room;
  while (pos < b64.size()) {
    std::size_t n = std::min(room, b64.size() - pos);
    out += b64.substr(pos, n);
    pos += n;
    if (pos < b64.size()) out += "\r\n\t";
    room = 72;
  }
  return out;
}

}  // namespace

Result<DkimKey> make_dkim_key(DkimAlgorithm algorithm, std::string domain, std::string selector) {
  DkimKey k;
  k.algorithm = algorithm;
  k.domain = std::move(domain);
  k.selector = std::move(selector);
  if (algorithm == DkimAlgorithm::ed25519_sha256) {
    auto pair = crypto::ed25519_keypair();
    k.public_key = pair.public_key;
    k.secret = std::move(pair.secret_key);
  } else {
    auto pair = crypto::rsa_generate(2048);
    if (!pair) return pair.error();
    k.public_key = pair->public_der;
    k.secret = std::move(pair->private_der);
  }
  return k;
}

std::string dkim_record(const DkimKey& key) {
  return std::string("v=DKIM1; k=") +
         (key.algorithm == DkimAlgorithm::ed25519_sha256 ? "ed25519" : "rsa") +
         "; p=" + crypto::base64(key.public_key);
}

Result<std::string> dkim_sign(std::string_view message, const DkimKey& key,
                              const DkimOptions& options) {
  mime::HeaderLimits limits;
  limits.max_headers = 10000;
  limits.max_header_bytes = message.size();
  auto hs = mime::parse_header_section(message, limits);
  if (!hs) return Error(Errc::bad_message, hs.error().describe());
  std::string_view body = message.substr(std::min(hs->body_offset, message.size()));
  std::string body_hash = crypto::base64(crypto::sha256(relaxed_body(body)));

  // h= and the canonical headers it covers: each occurrence, bottom-up (RFC 6376 5.4.2), plus
  // one more name for over-signed fields, which a verifier matches with nothing.
  std::string h;
  std::string signed_headers;
  for (const auto& name : options.headers) {
    std::vector<const mime::Header*> found;
    for (const auto& hd : hs->headers)
      if (lower(hd.name) == name) found.push_back(&hd);
    for (auto it = found.rbegin(); it != found.rend(); ++it) {
      h += (h.empty() ? "" : ":") + name;
      signed_headers += relaxed_header((*it)->name, (*it)->raw_value);
    }
    if (std::find(options.oversign.begin(), options.oversign.end(), name) != options.oversign.end())
      h += (h.empty() ? "" : ":") + name;
  }
  if (signed_headers.empty()) return Error(Errc::bad_message, "no From header to sign");

  // Tags folded so that no line passes 78 characters; h= may fold before any ':' (RFC 6376
  // 3.5 allows folding white space there).
  std::string value;
  std::size_t column = std::string_view("DKIM-Signature:").size();
  auto put = [&](std::string_view piece, std::string_view separator) {
    if (column + separator.size() + piece.size() > 76) {
      value += "\r\n\t";
      column = 1;
    } else {
      value += separator;
      column += separator.size();
    }
    value += piece;
    column += piece.size();
  };
  put(std::string("v=1;"), " ");
  put(std::string("a=") + algorithm_name(key.algorithm) + ";", " ");
  put("c=relaxed/relaxed;", " ");
  put("d=" + key.domain + ";", " ");
  put("s=" + key.selector + ";", " ");
  if (options.timestamp > 0) put("t=" + std::to_string(options.timestamp) + ";", " ");
  std::size_t start = 0;
  bool first = true;
  while (start <= h.size()) {
    std::size_t colon = h.find(':', start);
    std::string name =
        h.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
    bool last = colon == std::string::npos;
    put((first ? "h=" : ":") + name + (last ? ";" : ""), first ? " " : "");
    first = false;
    if (last) break;
    start = colon + 1;
  }
  put("bh=" + body_hash + ";", " ");
  put("b=", " ");
  // The signature covers this very field with an empty b=, without its final CRLF.
  std::string field = relaxed_header("DKIM-Signature", value);
  field.resize(field.size() - 2);
  std::string input = signed_headers + field;
  std::string signature;
  if (key.algorithm == DkimAlgorithm::ed25519_sha256) {
    // RFC 8463 3: Ed25519 over the SHA-256 hash of the data.
    signature = crypto::ed25519_sign(key.secret, crypto::sha256(input));
  } else {
    auto sig = crypto::rsa_sha256_sign(key.secret, input);
    if (!sig) return Error(Errc::bad_key, sig.error().describe());
    signature = std::move(*sig);
  }
  return "DKIM-Signature:" + value + fold_base64(crypto::base64(signature), 76 - column) + "\r\n";
}

}  // namespace postern::mailauth
