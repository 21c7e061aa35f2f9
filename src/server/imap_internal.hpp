// Internal to the IMAP session files: the selected mailbox's state and small helpers.
#pragma once

#include <algorithm>
#include <cctype>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/text.hpp"
#include "server/imap_session.hpp"

namespace postern::server {

inline std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// The selected mailbox as this session has reported it: sequence numbers change only when
// the session tells the client (EXISTS, EXPUNGE), never behind its back. Only the uids are
// kept (as runs): flags, dates and sizes are read from the store when a command needs them,
// so a thousand idle sessions on a large mailbox cost little memory.
struct ImapSession::Selected {
  store::Mailbox box;
  bool read_only = false;
  imap::UidList uids;
  uint64_t modseq = 0;  // every change up to here has been reported
  // This session's own flag changes above `modseq` (uid, modseq): already reported to the
  // client, so the next refresh skips them.
  std::vector<std::pair<uint32_t, uint64_t>> own_changes;

  uint32_t seq_of(uint32_t uid) const { return uids.seq_of(uid); }
  uint32_t largest_uid() const { return uids.largest(); }
};

struct FetchItem {
  enum class Kind {
    uid,
    flags,
    internaldate,
    size,
    envelope,
    bodystructure,
    body,
    modseq,
    section,
    binary,
    binary_size
  };
  Kind kind = Kind::uid;
  imap::Section section;
  bool peek = false;
  bool has_partial = false;
  uint64_t partial_start = 0, partial_length = 0;
  std::string label;  // the response's item name ("BODY[HEADER]<0>", "RFC822.TEXT")
};

struct ImapSession::Fetch {
  std::string tag;
  bool uid = false;
  std::vector<uint32_t> uids;  // to fetch, ascending
  std::size_t next = 0;
  std::vector<FetchItem> items;
  bool needs_summary = false, needs_content = false, sets_seen = false;
  std::optional<uint64_t> changed_since;
  std::vector<uint32_t> now_seen;  // set \Seen by this FETCH (ascending): FLAGS go with them
};

// Flags as clients send them, checked and in canonical case: system flags as RFC 9051 spells
// them, keywords as atoms. \Recent cannot be set.
Result<std::vector<std::string>> parse_flag_list(const std::vector<imap::Token>& tokens);

}  // namespace postern::server
