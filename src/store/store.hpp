// Storage interfaces. Protocol and delivery code sees only these; the SQLite backend (embedded
// default) lives in store/sqlite and a PostgreSQL backend can implement the same interface.
// Everything stored about message content is ciphertext produced by keys/: the store never sees
// a subject, an address from a header or a body.
#pragma once

#include "base/error.hpp"
#include "base/fs.hpp"

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace postern::store {

enum class Errc { not_found = 1, exists, corrupt, io, full, schema, invalid };
const std::error_category& category();
inline std::error_code make_error_code(Errc e) {
  return {static_cast<int>(e), category()};
}

struct Account {
  int64_t id = 0;
  std::string address;  // lowercased local@domain
  int64_t created = 0;
  std::string storage_public;  // X25519 key delivery seals content keys to
  std::string keyring;         // keys/' serialised wrapped secrets; opaque here
  int64_t quota_bytes = 0;     // storage limit over all mailboxes; 0: none
};

struct Mailbox {
  int64_t id = 0;
  int64_t account_id = 0;
  std::string name;
  std::string special_use;  // "\\Sent" etc., empty for none
  uint32_t uidvalidity = 0;
  uint32_t uidnext = 1;
  uint64_t highestmodseq = 1;
};

struct NewMailbox {
  std::string name;
  std::string special_use;
};

struct NewMessage {
  int64_t mailbox_id = 0;
  std::string blob_id;
  uint64_t size = 0;
  int64_t internal_date = 0;
  std::string sealed_key;  // content key sealed to the account's storage key
  std::string summary;     // encrypted mime::Summary
  std::string flags;       // space separated, canonical case (IMAP APPEND may set them)
  // Keyed digest of (sender, account, content); empty: no duplicate check. A message whose
  // digest was stored in the same mailbox within the dedupe window is not stored again.
  std::string dedupe_digest;
};

struct MessageRecord : NewMessage {
  uint32_t uid = 0;
  uint64_t modseq = 0;
  std::string wrapped_key;  // keys::wrap_content_key form once a session has read it; or empty
};

// What a mailbox listing needs, without the ciphertext.
struct MessageMeta {
  uint32_t uid = 0;
  uint64_t modseq = 0;
  std::string flags;
  int64_t internal_date = 0;
  uint64_t size = 0;
};

// Everything that happened in a mailbox after a modseq (CONDSTORE/QRESYNC, IDLE updates).
struct Changes {
  Mailbox mailbox;                   // current uidnext and highestmodseq
  std::vector<MessageMeta> changed;  // new or re-flagged messages
  std::vector<uint32_t> expunged;    // uids removed
};

enum class FlagOp { add, remove, replace };
struct FlagChange {
  uint32_t uid = 0;
  uint64_t modseq = 0;
  std::string flags;
};
struct FlagResult {
  std::vector<FlagChange> changed;
  std::vector<uint32_t> failed;  // modified after UNCHANGEDSINCE (RFC 7162 3.1.3)
};

struct Removed {
  std::vector<uint32_t> uids;
  uint64_t modseq = 0;
  std::vector<std::string> unreferenced_blobs;  // the caller deletes these files
};

struct Copied {
  uint32_t uidvalidity = 0;                         // of the destination
  std::vector<std::pair<uint32_t, uint32_t>> uids;  // source uid -> new uid
  Removed removed;                                  // MOVE: what left the source
};

struct Assigned {
  uint32_t uid = 0;
  uint64_t modseq = 0;
  bool duplicate = false;  // already stored (uid is the earlier copy's); its blob is unused
};

// A domain's DKIM signing key (server secret, like OpenDKIM's key files).
struct DkimKeyRecord {
  std::string domain;
  std::string selector;
  std::string algorithm;  // "ed25519-sha256" or "rsa-sha256"
  std::string secret;     // Ed25519: 64 bytes; RSA: PKCS#8 DER
  std::string public_key;
  int64_t created = 0;
};

// The outbound queue's rows; queue/ decides what they mean and when to retry.
enum class RecipientState { pending = 0, delivered = 1, failed = 2 };
struct QueuedRecipient {
  int64_t id = 0;       // assigned by enqueue
  std::string address;  // as in RCPT TO
  std::string domain;   // lowercased destination domain (the delivery group)
  RecipientState state = RecipientState::pending;
  int64_t attempts = 0;
  int64_t next_attempt = 0;  // unix seconds
  std::string last_reply;    // the last remote reply or local error, for DSNs and the CLI
  std::string remote_mta;
};
struct QueuedMessage {
  std::string id;      // random token
  std::string sender;  // "" for the null reverse-path
  int64_t created = 0;
  // The encrypted content is in this blob, or (empty) in the row itself (queue_content).
  std::string blob_id;
  uint64_t size = 0;
  bool smtputf8 = false, eight_bit = false, requiretls = false;
  bool held = false;
  bool warned = false;  // the delay notification went out
  std::vector<QueuedRecipient> recipients;
};

class Store {
 public:
  virtual ~Store() = default;

  virtual Result<void> add_domain(std::string_view name) = 0;
  virtual Result<std::vector<std::string>> domains() = 0;
  virtual Result<void> add_dkim_key(const DkimKeyRecord& key) = 0;
  // Newest first.
  virtual Result<std::vector<DkimKeyRecord>> dkim_keys(std::string_view domain) = 0;
  virtual Result<bool> is_local_domain(std::string_view name) = 0;

  // Creates the account, its mailboxes and an alias-free address in one transaction.
  virtual Result<int64_t> create_account(const std::string& address, int64_t created,
                                         std::string_view storage_public, std::string_view keyring,
                                         const std::vector<NewMailbox>& mailboxes) = 0;
  virtual Result<std::optional<Account>> find_account(std::string_view address) = 0;
  virtual Result<std::optional<Account>> account_by_id(int64_t id) = 0;
  virtual Result<std::vector<Account>> accounts() = 0;
  virtual Result<void> update_keyring(int64_t id, std::string_view keyring) = 0;
  virtual Result<void> set_quota(int64_t id, int64_t quota_bytes) = 0;
  // Sum of message sizes over the account's mailboxes (a copy counts again, as in Dovecot).
  virtual Result<uint64_t> usage(int64_t id) = 0;
  // Removes the account, its wrapped keys, mailboxes and message rows; returns the blob ids the
  // caller must delete. Without the wrapped keys the blobs are unreadable anyway.
  virtual Result<std::vector<std::string>> delete_account(int64_t id) = 0;

  virtual Result<void> add_alias(std::string_view alias, int64_t account_id) = 0;
  // Account id for an account address or an alias (lowercased lookup key).
  virtual Result<std::optional<int64_t>> resolve_address(std::string_view address) = 0;

  virtual Result<std::optional<Mailbox>> find_mailbox(int64_t account_id,
                                                      std::string_view name) = 0;
  virtual Result<std::vector<Mailbox>> mailboxes(int64_t account_id) = 0;

  // Appends all messages in one durable transaction (the group commit); returns each UID.
  virtual Result<std::vector<Assigned>> append_messages(std::span<const NewMessage> messages) = 0;
  // Forgets delivery digests received before `before` (unix seconds).
  virtual Result<void> prune_recent_deliveries(int64_t before) = 0;
  // A named per-instance secret; `candidate` is stored and returned when none exists yet.
  virtual Result<std::string> instance_secret(std::string_view name,
                                              std::string_view candidate) = 0;
  virtual Result<std::vector<MessageRecord>> messages(int64_t mailbox_id) = 0;

  // Mailbox management (IMAP). Names are validated UTF-8 with '/' as the hierarchy delimiter.
  virtual Result<Mailbox> create_mailbox(int64_t account_id, const NewMailbox& box,
                                         uint32_t uidvalidity) = 0;
  // Returns the blob ids no message refers to any more.
  virtual Result<std::vector<std::string>> delete_mailbox(int64_t mailbox_id) = 0;
  // Renames the mailbox and its children. Renaming INBOX moves its messages to a new mailbox
  // and leaves INBOX empty (RFC 9051 6.3.6).
  virtual Result<void> rename_mailbox(int64_t account_id, std::string_view from,
                                      std::string_view to, uint32_t uidvalidity) = 0;
  virtual Result<std::vector<std::string>> subscriptions(int64_t account_id) = 0;
  virtual Result<void> set_subscribed(int64_t account_id, std::string_view name, bool on) = 0;

  virtual Result<std::vector<MessageMeta>> message_index(int64_t mailbox_id) = 0;
  virtual Result<Changes> changes_since(int64_t mailbox_id, uint64_t modseq) = 0;
  // Flags, modseq, date and size of `uids` (sorted ascending), skipping ones that are gone.
  virtual Result<std::vector<MessageMeta>> message_meta(int64_t mailbox_id,
                                                        std::span<const uint32_t> uids) = 0;
  // The full records of `uids` (sorted ascending), skipping ones that no longer exist.
  virtual Result<std::vector<MessageRecord>> messages_by_uid(int64_t mailbox_id,
                                                             std::span<const uint32_t> uids) = 0;
  // Saves content keys re-wrapped by a session (uid -> wrapped key); not a change to the
  // message (no modseq).
  virtual Result<void> set_wrapped_keys(int64_t mailbox_id,
                                        std::span<const std::pair<uint32_t, std::string>> keys) = 0;
  // One new modseq for the whole change; flags are canonical (see imap::canonical_flags).
  virtual Result<FlagResult> store_flags(int64_t mailbox_id, std::span<const uint32_t> uids,
                                         FlagOp op, std::span<const std::string> flags,
                                         std::optional<uint64_t> unchanged_since) = 0;
  virtual Result<Removed> expunge(int64_t mailbox_id, std::span<const uint32_t> uids) = 0;
  // Copies (or moves) messages; blobs are shared between copies, never duplicated.
  virtual Result<Copied> copy_messages(int64_t from_mailbox, std::span<const uint32_t> uids,
                                       int64_t to_mailbox, bool move) = 0;
  // Outbound queue. enqueue stores the message, its recipients and (when it has no blob) its
  // encrypted content in one transaction.
  virtual Result<void> enqueue(const QueuedMessage& message, std::string_view content) = 0;
  virtual Result<std::string> queue_content(std::string_view id) = 0;
  // Messages with a pending recipient due at `now` (not held), oldest first, at most `limit`.
  virtual Result<std::vector<QueuedMessage>> queue_due(int64_t now, std::size_t limit) = 0;
  virtual Result<std::vector<QueuedMessage>> queue_all() = 0;
  virtual Result<std::optional<QueuedMessage>> queued(std::string_view id) = 0;
  // Saves the recipients' state, attempts, next attempt and replies (matched by id within the
  // message, so rows of a message deleted meanwhile are never touched).
  virtual Result<void> update_recipients(std::string_view message_id,
                                         std::span<const QueuedRecipient> recipients) = 0;
  virtual Result<void> set_queue_held(std::string_view id, bool held) = 0;
  virtual Result<void> set_queue_warned(std::string_view id) = 0;
  // Every pending recipient of the message becomes due now (`postern queue retry`).
  virtual Result<void> queue_retry_now(std::string_view id, int64_t now) = 0;
  // Removes the message and its recipients; returns its blob id (the caller deletes the
  // file after the commit; empty when the content was in the row), or nullopt when there was
  // no such message.
  virtual Result<std::optional<std::string>> dequeue(std::string_view id) = 0;
  // DMARC aggregate report data: sealed events, read back (oldest first) and removed once
  // reported.
  struct DmarcEventRow {
    int64_t id = 0, time = 0;
    std::string sealed;
  };
  virtual Result<void> add_dmarc_event(int64_t time, std::string_view sealed) = 0;
  virtual Result<std::vector<DmarcEventRow>> dmarc_events_before(int64_t before) = 0;
  virtual Result<void> delete_dmarc_events(std::span<const int64_t> ids) = 0;
  // Every blob a row refers to (messages and the outbound queue).
  virtual Result<std::vector<std::string>> blob_ids() = 0;

  // Backend self-check (SQLite: PRAGMA integrity_check); error when not consistent.
  virtual Result<void> check_integrity() = 0;
};

struct SqliteOptions {
  int busy_timeout_ms = 10000;
};
// Opens (creating if needed) and migrates the database. All file I/O goes through base::fs's
// fault hooks via a VFS shim.
Result<std::unique_ptr<Store>> open_sqlite(const std::string& path, const SqliteOptions& options);

// A blob whose bytes are written but not yet durable.
struct PendingBlob {
  std::string id;
  base::fs::File file;
};

// Encrypted message blobs as files, <root>/<bucket>/<name>. write() creates and fills the file
// and starts its writeback; make_durable() then fdatasyncs a whole batch of them and fsyncs each
// bucket directory once, so a group of messages costs about one journal commit. A bucket holds
// a bounded number of files. write() is thread-safe. A blob no committed row points to (a crash
// before the commit) is unreferenced garbage, unreadable without the account key.
class BlobStore {
 public:
  explicit BlobStore(std::string root);
  Result<void> open();  // creates the root
  Result<PendingBlob> write(std::string_view data);
  Result<void> make_durable(std::span<PendingBlob> blobs);
  Result<std::string> get(std::string_view id) const;
  Result<void> remove(std::string_view id);
  // Every blob on disk, for finding the unreferenced ones a crash leaves behind.
  Result<std::vector<std::string>> list() const;
  const std::string& root() const { return root_; }

 private:
  Result<std::string> claim_bucket();
  std::string root_;
  std::mutex mu_;
  std::string bucket_;
  std::size_t bucket_files_ = 0;
};

}  // namespace postern::store

template <>
struct std::is_error_code_enum<postern::store::Errc> : std::true_type {};
