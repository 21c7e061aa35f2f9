// Message and address parsing shared by the protocol cores: RFC 5321 mailboxes (with RFC 6531
// UTF-8), RFC 5322 header sections, and the summary that delivery encrypts for IMAP.
//
// Security: every function here takes bytes straight from the network. They never read past
// the input, enforce the RFC length limits, and reject rather than repair malformed input.
#pragma once

#include "base/error.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::mime {

enum class Errc {
  empty = 1,
  syntax,
  local_part_too_long,
  domain_too_long,
  non_ascii,  // UTF-8 without SMTPUTF8
  bad_utf8,
  too_many_headers,
  header_too_long,
};
const std::error_category& category();
inline std::error_code make_error_code(Errc e) {
  return {static_cast<int>(e), category()};
}

// RFC 5321 4.5.3.1 limits.
inline constexpr std::size_t max_local_part_bytes = 64;
inline constexpr std::size_t max_domain_bytes = 255;

struct Mailbox {
  std::string local;               // as sent (quoted-string content unescaped)
  std::string domain;              // ASCII parts lowercased; an address literal keeps its brackets
  bool utf8 = false;               // contains non-ASCII (needs SMTPUTF8)
  std::string str() const;         // local@domain, re-quoting the local part when needed
  std::string lookup_key() const;  // lowercased form used to find accounts
};

// RFC 5321 4.1.2 Mailbox. allow_utf8: RFC 6531 (SMTPUTF8 was given).
Result<Mailbox> parse_mailbox(std::string_view text, bool allow_utf8);
bool valid_domain(std::string_view domain, bool allow_utf8);
// RFC 5321 4.1.3 address literal without brackets: "192.0.2.1" or "IPv6:2001:db8::1".
bool valid_address_literal(std::string_view literal);
bool valid_utf8(std::string_view s);

struct Header {
  std::string_view name;
  std::string_view raw_value;  // as in the message, folding included
};

struct HeaderLimits {
  std::size_t max_headers = 1000;
  std::size_t max_header_bytes = std::size_t{64} * 1024;  // one field, folded lines included
};

// The header section of an RFC 5322 message (CRLF line ends). `body_offset` is where the body
// starts (after the empty line), or the message size when there is no body.
struct HeaderSection {
  std::vector<Header> headers;
  std::size_t body_offset = 0;
  const Header* find(std::string_view name) const;  // first, case-insensitive
};
Result<HeaderSection> parse_header_section(std::string_view message, const HeaderLimits& limits);
std::string unfold(std::string_view raw_value);
// RFC 2047: a header value with its encoded-words decoded to UTF-8 (words that cannot be
// decoded stay as they are).
std::string decode_header_value(std::string_view value);
// Strict RFC 4648 base64 (SASL responses): nullopt on any character outside the alphabet or
// bad padding.
std::optional<std::string> decode_base64(std::string_view text);
// Text in `charset` as UTF-8; nullopt for an unknown charset or invalid input.
std::optional<std::string> to_utf8(std::string_view charset, std::string_view bytes);

// An entry of an RFC 5322 address list (From, To, Cc...), parsed leniently: every input
// gives an answer, so callers must validate what they act on.
struct ListedAddress {
  enum class Kind { address, group_start, group_end } kind = Kind::address;
  std::optional<std::string> name, adl, mailbox, host;  // host ".MISSING-HOST-NAME." if none
  std::string group;                                    // group_start: the display name
};
std::vector<ListedAddress> parse_address_list(std::string_view value);
// RFC 5322 comments removed (outside quoted strings); a quoted string's content.
std::string strip_comments(std::string_view s);
std::string unquote(std::string_view s);

// One MIME body part below the top level (RFC 2045/2046), located in the whole message.
struct Part {
  std::string path;     // IMAP part number: "1", "1.2", ...
  std::string headers;  // the part's own header section (MIME headers), raw
  uint64_t body_offset = 0;
  uint64_t body_size = 0;
  uint64_t body_lines = 0;
  uint32_t children = 0;  // direct sub-parts when the part is a multipart
};

struct StructureLimits {
  std::size_t max_depth = 16;
  std::size_t max_parts = 500;  // beyond either limit the rest is summarised as plain bodies
};

// Splits a multipart body (RFC 2046 5.1) into parts, depth first, appending to `out`.
// `message` is the whole message; `headers` and `body` are views into it.
void parse_structure(std::string_view message, std::string_view headers, std::string_view body,
                     const std::string& path, const StructureLimits& limits,
                     std::vector<Part>& out);
// The boundary parameter of a multipart Content-Type value, or empty.
std::string multipart_boundary(std::string_view content_type);

// What delivery encrypts next to each message so IMAP can list a mailbox and describe its
// structure without decrypting bodies: the header section, sizes and the MIME parts.
struct Summary {
  std::string header_section;
  uint64_t size = 0;
  uint64_t body_offset = 0;
  uint64_t body_lines = 0;
  std::vector<Part> parts;
  // IMAP's ENVELOPE and BODYSTRUCTURE, computed once at delivery by server/ so that listing a
  // mailbox needs no header parsing; empty when not computed (older summaries).
  std::string envelope_cache;
  std::string structure_cache;
  std::string serialize() const;
  static Result<Summary> parse(std::string_view bytes);
};
Result<Summary> summarize(std::string_view message, const HeaderLimits& limits);

}  // namespace postern::mime

template <>
struct std::is_error_code_enum<postern::mime::Errc> : std::true_type {};
