// The parts of DKIM verification (RFC 6376 6) that ARC (RFC 8617) reuses: an
// ARC-Message-Signature is a DKIM signature with an instance number in i=, and an ARC-Seal is
// checked with DKIM's keys and algorithms. Not part of the module's interface.
#pragma once

#include "mailauth/mailauth.hpp"
#include "mime/mime.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::mailauth::dkim {

bool fws(char c);
std::string_view trim(std::string_view s);
std::string without_fws(std::string_view s);
std::optional<uint64_t> number(std::string_view s, std::size_t max_digits);
// A domain as DKIM compares it: lower case, no final dot.
std::string domain_key(std::string_view d);

// DKIM-Signature, or ARC-Message-Signature (RFC 8617 4.1.2): no v=, i= is the instance (checked
// by the ARC code), and h= must not name ARC-Seal.
enum class SignatureKind { dkim, arc_message };

struct Signature {
  const mime::Header* field = nullptr;
  DkimAlgorithm algorithm = DkimAlgorithm::rsa_sha256;
  bool relaxed_header = false, relaxed_body = false;
  std::string domain, selector, identity;
  std::vector<std::string> headers;  // h=, lower case
  std::string signature, body_hash;  // decoded b= and bh=
  std::optional<uint64_t> length;    // l=
};

// RFC 6376 6.1.1: the reason a signature is PERMFAIL before any lookup, nullopt when it is
// well formed. Fills `out` with what could be read even then.
std::optional<std::string> parse_signature(const mime::Header& field, int64_t now,
                                           SignatureKind kind, Signature& sig, DkimOutcome& out);

struct Key {
  std::string public_key;  // Ed25519: 32 bytes; RSA: SubjectPublicKeyInfo DER
  bool testing = false, strict_identity = false;
};

// RFC 6376 3.6.1; the error is the reason for a PERMFAIL.
Result<Key> parse_key(std::string_view record, DkimAlgorithm algorithm, unsigned min_rsa_bits);

// The key record of a DNS answer: a temperror for a failed lookup, a permerror when there is
// no usable key. `result` is pass when `key` is set.
struct KeyLookup {
  std::optional<Key> key;
  DkimResult result = DkimResult::pass;
  std::string reason;
};
KeyLookup key_from_answer(const Result<dns::Answer>& answer, DkimAlgorithm algorithm,
                          unsigned min_rsa_bits);

// A signature field's value with the value of its b= tag removed (RFC 6376 3.7), everything
// else as it is.
std::string without_b(std::string_view raw_value);

// The signed header data (RFC 6376 3.7): the fields named by h=, each taken bottom-up, then
// the signature field itself with an empty b= and no final CRLF.
std::string header_data(const mime::HeaderSection& hs, const Signature& sig);

// RSA-SHA256 over `data`, or Ed25519 over SHA-256 of `data` (RFC 8463 3).
bool verify_data(DkimAlgorithm algorithm, std::string_view public_key, std::string_view data,
                 std::string_view signature);
Result<std::string> sign_data(const DkimKey& key, std::string_view data);

}  // namespace postern::mailauth::dkim
