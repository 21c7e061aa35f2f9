// The IMAP protocol core (RFC 9051, RFC 3501): reading complete commands (with literals) from
// a byte stream, tokenising them, sequence sets, mailbox names, the SEARCH language, and the
// response pieces built from message headers (ENVELOPE, BODYSTRUCTURE). No I/O, no storage:
// server/ drives it against the store.
//
// Security: every byte here comes from the network. Lines, literals, tokens, nesting, sequence
// ranges and search programs are bounded; malformed input is an error value, never a repair.
#pragma once

#include "base/error.hpp"
#include "mime/mime.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::imap {

enum class Errc {
  syntax = 1,
  too_long,
  too_deep,
  too_many,
  bad_mailbox_name,
  bad_sequence,
  unknown_search_key,
};
const std::error_category& category();
inline std::error_code make_error_code(Errc e) {
  return {static_cast<int>(e), category()};
}

struct Limits {
  std::size_t max_line = std::size_t{64} * 1024;    // one line of a command, literals excluded
  std::size_t max_literal = std::size_t{64} << 20;  // APPEND's message
  // Before login a client may send only small literals (a user name, a password), and no
  // LITERAL+ literal over 4096 bytes (RFC 7888 LITERAL- size).
  std::size_t max_literal_before_login = 8192;
  std::size_t max_command = (std::size_t{64} << 20) + (std::size_t{1} << 20);  // all of it
  std::size_t max_literals = 64;                                               // per command
  std::size_t max_depth = 16;         // parenthesised list nesting
  std::size_t max_tokens = 20000;     // per command
  std::size_t max_ranges = 10000;     // per sequence set
  std::size_t max_search_keys = 200;  // per SEARCH program
};

// Splits the byte stream into complete commands. A synchronising literal ({n}) needs a
// continuation request before the client sends its bytes; next() says when to send one.
class CommandReader {
 public:
  explicit CommandReader(const Limits& limits) : limits_(limits) {}
  // Literals up to max_literal once the client has logged in; max_literal_before_login until.
  void set_logged_in(bool yes) { logged_in_ = yes; }
  void feed(std::string_view data) { buf_.append(data); }

  enum class Status {
    need_more,       // read more bytes
    continuation,    // send "+ ..." then read more
    command,         // take_command()
    too_long,        // line or command over the limits: answer BAD (tag()) and close
    literal_too_big  // a literal over max_literal: answer (tag()); close if !can_continue()
  };
  Status next();
  // The complete command text, literals inline, final CRLF included.
  std::string take_command();
  // The tag of the command being read (for error replies; may be empty or "*").
  std::string tag() const;
  // After literal_too_big: true when the client is waiting (synchronising literal) and the
  // session can go on; false when the literal's bytes are on their way (LITERAL+).
  bool can_continue() const { return can_continue_; }
  std::size_t buffered() const { return buf_.size(); }

 private:
  Limits limits_;
  void consume(std::size_t n);
  std::string buf_;
  std::size_t line_start_ = 0;    // start of the line being scanned
  std::size_t literal_left_ = 0;  // literal bytes still to arrive
  std::size_t literals_ = 0;
  bool can_continue_ = true;
  bool logged_in_ = false;
  std::string ready_;
};

struct Token {
  enum class Kind { atom, string, list };
  Kind kind = Kind::atom;
  std::string text;  // atom or string contents
  std::vector<Token> items;
  bool literal = false;  // the string came as a literal (APPEND: may hold any bytes)
  bool is_nil() const;
};

struct Command {
  std::string tag;
  std::string name;  // upper case; "UID FETCH" etc. for UID commands
  std::vector<Token> args;
};

// Parses one command as returned by CommandReader::take_command(). On error, *tag receives the
// tag when one could be read, so the reply can be "<tag> BAD".
Result<Command> parse_command(std::string_view text, const Limits& limits, std::string* tag);

// A number as IMAP writes them (RFC 9051 9: number64): digits only, no sign, no spaces.
std::optional<uint64_t> parse_number(std::string_view text);

// Sequence sets (RFC 9051 9: sequence-set). `*` is max_value.
struct Range {
  uint32_t lo = 0, hi = 0;
};
inline constexpr uint32_t star = 0xffffffff;
struct SequenceSet {
  std::vector<Range> ranges;
  bool saved = false;  // "$" (SEARCHRES): not supported, rejected by the parser
  // Whether n is in the set when `*` means `largest`.
  bool contains(uint32_t n, uint32_t largest) const;
};
Result<SequenceSet> parse_sequence_set(std::string_view text, const Limits& limits);
// "1:3,7" form of sorted values (for COPYUID, APPENDUID, VANISHED, ESEARCH ALL).
std::string format_set(std::vector<uint32_t> values);

// The uids of a selected mailbox in sequence-number order, kept as runs of consecutive uids:
// a session idling on a 5000-message mailbox holds a few runs instead of 20 KiB of uids.
class UidList {
 public:
  uint32_t size() const { return size_; }
  uint32_t largest() const {
    return runs_.empty() ? 0 : runs_.back().first + runs_.back().count - 1;
  }
  uint32_t seq_of(uint32_t uid) const;  // 1-based; 0 when absent
  uint32_t at(uint32_t seq) const;      // the uid at a sequence number in 1..size()
  void push_back(uint32_t uid);         // uid > largest()
  // Removes these uids (ascending; absent ones are ignored), in one pass over the runs; later
  // sequence numbers move down.
  void erase_all(const std::vector<uint32_t>& sorted_uids);
  std::vector<uint32_t> between(uint32_t lo, uint32_t hi) const;             // uids in [lo, hi]
  std::vector<uint32_t> slice(uint32_t first_seq, uint32_t last_seq) const;  // by seq, inclusive
  std::vector<uint32_t> all() const { return slice(1, size_); }
  std::size_t runs() const { return runs_.size(); }

 private:
  struct Run {
    uint32_t first = 0, count = 0;
    uint32_t start = 0;  // sequence number - 1 of `first`
  };
  std::vector<Run> runs_;
  uint32_t size_ = 0;
};

// Mailbox names travel as modified UTF-7 (RFC 3501 5.1.3) unless UTF8=ACCEPT is enabled;
// postern stores UTF-8. Names are validated: no control characters, no empty components,
// bounded length and depth; "INBOX" is case-insensitive.
inline constexpr char delimiter = '/';
Result<std::string> decode_mailbox_name(std::string_view wire, bool utf8_enabled);
std::string encode_mailbox_name(std::string_view utf8, bool utf8_enabled);
Result<std::string> normalise_mailbox_name(std::string_view utf8);
// LIST pattern match (RFC 9051 6.3.9: '*' matches anything, '%' anything but the delimiter).
bool list_match(std::string_view pattern, std::string_view name);

// Response helpers.
// A quoted string, or a literal when it must be one. utf8: IMAP4rev2/UTF8=ACCEPT quoting.
std::string quote(std::string_view s, bool utf8 = false);
std::string nstring(std::string_view s);           // like quote() (callers pass absent as nil())
std::string literal(std::string_view s);           // always a literal
std::string format_flags(std::string_view flags);  // "(\\Seen $x)" from the stored form
std::string imap_date_time(int64_t unix_seconds);  // "17-Jul-1996 02:44:25 +0000"
std::optional<int64_t> parse_date_time(std::string_view text);  // INTERNALDATE form
std::optional<int64_t> parse_date(std::string_view text);       // "1-Feb-1994", UTC midnight

// ENVELOPE (RFC 9051 7.5.2) from a header section.
std::string envelope(std::string_view header_section);
// BODYSTRUCTURE (extended) or BODY from a summary. Describing a message/rfc822 part needs its
// content: returns nullopt when the summary alone cannot say and `message` is empty.
std::optional<std::string> body_structure(const mime::Summary& summary, std::string_view message,
                                          bool extended);

// RFC 2045 Content-Type and friends.
struct ContentType {
  std::string type = "text", subtype = "plain";
  std::vector<std::pair<std::string, std::string>> params;
  std::string param(std::string_view name) const;
};
ContentType parse_content_type(std::string_view value);
// Decodes a part's body for BINARY[]: base64 and quoted-printable; others unchanged.
// nullopt when the encoding is unknown (the server answers UNKNOWN-CTE).
std::optional<std::string> decode_transfer_encoding(std::string_view encoding,
                                                    std::string_view body);

// FETCH body sections (RFC 9051 6.4.5): "", "HEADER", "TEXT", "1.2", "1.2.MIME",
// "2.HEADER.FIELDS (From To)", ...
struct Section {
  enum class What { all, header, header_fields, header_fields_not, text, mime };
  std::vector<uint32_t> path;
  What what = What::all;
  std::vector<std::string> fields;  // upper case
  std::string label() const;        // canonical form for the response, without brackets
};
Result<Section> parse_section(std::string_view spec, const Limits& limits);
// The section's bytes in `message`; nullopt when the part does not exist.
std::optional<std::string> section_bytes(std::string_view message, const Section& s);
// BINARY[path]: the part's content with its transfer encoding undone. nullopt when the part
// does not exist; `unknown_cte` set when its encoding is not one we can undo.
std::optional<std::string> binary_bytes(std::string_view message, const Section& s,
                                        bool* unknown_cte);
// Only the header fields listed (or all but them) of a header section, as FETCH returns them.
std::string filter_headers(std::string_view header_section, const std::vector<std::string>& names,
                           bool keep);

// The SEARCH language (RFC 9051 6.4.4), as a tree.
struct SearchKey {
  enum class Op {
    all,
    and_,
    or_,
    not_,
    answered,
    deleted,
    draft,
    flagged,
    seen,
    recent,
    new_,
    old,  // flag state
    unanswered,
    undeleted,
    undraft,
    unflagged,
    unseen,
    keyword,
    unkeyword,
    before,
    on,
    since,
    sentbefore,
    senton,
    sentsince,  // dates (arg_num: unix day start)
    larger,
    smaller,
    header,
    body,
    text,  // header: arg (field) + arg2 (value)
    uid,
    seqset,
    modseq,
  };
  Op op = Op::all;
  std::string arg, arg2;
  int64_t num = 0;
  SequenceSet set;
  std::vector<SearchKey> children;
};
struct SearchProgram {
  SearchKey root;                    // an AND of the keys
  std::vector<std::string> returns;  // ESEARCH RETURN options (MIN MAX COUNT ALL), upper case
  bool esearch = false;              // RETURN was given
  bool needs_body = false;           // BODY/TEXT present: the content must be decrypted
  bool needs_headers = false;        // HEADER/sent dates/address keys present
  bool uses_modseq = false;
};
// `args` are the tokens after SEARCH (charset and RETURN included).
Result<SearchProgram> parse_search(const std::vector<Token>& args, const Limits& limits);

// What search evaluation asks about one message.
struct SearchSubject {
  uint32_t seq = 0, uid = 0;
  uint32_t largest_seq = 0, largest_uid = 0;
  std::string_view flags;  // stored form, space separated
  bool recent = false;
  int64_t internal_date = 0;
  uint64_t size = 0;
  uint64_t modseq = 0;
  std::string_view header_section;  // when needs_headers
  std::string_view message;         // the whole message, when needs_body
};
bool matches(const SearchKey& key, const SearchSubject& m);

bool has_flag(std::string_view flags, std::string_view flag);  // case-insensitive

}  // namespace postern::imap

template <>
struct std::is_error_code_enum<postern::imap::Errc> : std::true_type {};
