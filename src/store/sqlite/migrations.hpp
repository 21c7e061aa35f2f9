// Internal: the schema, as an append-only list of migrations. Never edit a shipped entry; add one.
#pragma once

#include <array>

namespace postern::store::sqlite {

inline constexpr std::array<const char*, 11> migrations = {
    // 1: accounts, keys, mailboxes, messages.
    R"sql(
CREATE TABLE domains(
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE);
CREATE TABLE accounts(
  id INTEGER PRIMARY KEY,
  address TEXT NOT NULL UNIQUE,
  created INTEGER NOT NULL,
  storage_public BLOB NOT NULL,
  keyring BLOB NOT NULL);
CREATE TABLE aliases(
  address TEXT PRIMARY KEY,
  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE);
CREATE TABLE mailboxes(
  id INTEGER PRIMARY KEY,
  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  special_use TEXT NOT NULL DEFAULT '',
  uidvalidity INTEGER NOT NULL,
  uidnext INTEGER NOT NULL DEFAULT 1,
  highestmodseq INTEGER NOT NULL DEFAULT 1,
  UNIQUE(account_id, name));
CREATE TABLE messages(
  mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
  uid INTEGER NOT NULL,
  modseq INTEGER NOT NULL,
  flags TEXT NOT NULL DEFAULT '',
  internal_date INTEGER NOT NULL,
  size INTEGER NOT NULL,
  blob_id TEXT NOT NULL,
  sealed_key BLOB NOT NULL,
  summary BLOB NOT NULL,
  PRIMARY KEY(mailbox_id, uid)) WITHOUT ROWID;
)sql",
    // 2: per-instance secrets; keyed digests of recent deliveries, so that a client retrying
    // a message whose 250 it never saw (the server was killed after the commit) does not get
    // it stored twice.
    R"sql(
CREATE TABLE instance(
  name TEXT PRIMARY KEY,
  value BLOB NOT NULL);
CREATE TABLE recent_deliveries(
  mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
  digest BLOB NOT NULL,
  received INTEGER NOT NULL,
  uid INTEGER NOT NULL,
  PRIMARY KEY(mailbox_id, digest)) WITHOUT ROWID;
CREATE INDEX recent_deliveries_received ON recent_deliveries(received);
)sql",
    // 3: IMAP: subscriptions (may name mailboxes that do not exist), expunged uids for
    // QRESYNC, and the indexes change tracking and shared blobs need.
    R"sql(
CREATE TABLE subscriptions(
  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  PRIMARY KEY(account_id, name)) WITHOUT ROWID;
INSERT INTO subscriptions(account_id, name) SELECT account_id, name FROM mailboxes;
CREATE TABLE expunged(
  mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
  uid INTEGER NOT NULL,
  modseq INTEGER NOT NULL,
  PRIMARY KEY(mailbox_id, uid)) WITHOUT ROWID;
CREATE INDEX messages_modseq ON messages(mailbox_id, modseq);
CREATE INDEX messages_blob ON messages(blob_id);
)sql",
    // 4: content keys re-wrapped symmetrically after a session first read them.
    R"sql(
ALTER TABLE messages ADD COLUMN wrapped_key BLOB NOT NULL DEFAULT x'';
)sql",
    // 5: per-account storage quota (0: none).
    R"sql(
ALTER TABLE accounts ADD COLUMN quota_bytes INTEGER NOT NULL DEFAULT 0;
)sql",
    // 6: the ciphertext columns move to their own table, so that listing a mailbox (SELECT,
    // flags, sizes) reads small rows and never pages through keys and summaries.
    R"sql(
CREATE TABLE message_data(
  mailbox_id INTEGER NOT NULL,
  uid INTEGER NOT NULL,
  sealed_key BLOB NOT NULL,
  summary BLOB NOT NULL,
  wrapped_key BLOB NOT NULL DEFAULT x'',
  PRIMARY KEY(mailbox_id, uid),
  FOREIGN KEY(mailbox_id, uid) REFERENCES messages(mailbox_id, uid)
    ON DELETE CASCADE ON UPDATE CASCADE) WITHOUT ROWID;
INSERT INTO message_data(mailbox_id, uid, sealed_key, summary, wrapped_key)
  SELECT mailbox_id, uid, sealed_key, summary, wrapped_key FROM messages;
ALTER TABLE messages DROP COLUMN sealed_key;
ALTER TABLE messages DROP COLUMN summary;
ALTER TABLE messages DROP COLUMN wrapped_key;
)sql",
    // 7: mailbox ids are never reused. SQLite hands out max(id)+1, so deleting the newest
    // mailbox would give its id to the next one created, and a session still holding the old
    // id (selected in another connection) would act on the new mailbox.
    R"sql(
CREATE TABLE sequences(
  name TEXT PRIMARY KEY,
  value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO sequences(name, value) SELECT 'mailbox', COALESCE(MAX(id), 0) FROM mailboxes;
CREATE TRIGGER mailbox_ids_only_grow AFTER INSERT ON mailboxes BEGIN
  UPDATE sequences SET value = NEW.id WHERE name = 'mailbox' AND value < NEW.id;
END;
)sql",
    // 8: DKIM signing keys per domain and selector.
    R"sql(
CREATE TABLE dkim_keys(
  domain TEXT NOT NULL,
  selector TEXT NOT NULL,
  algorithm TEXT NOT NULL,
  secret BLOB NOT NULL,
  public_key BLOB NOT NULL,
  created INTEGER NOT NULL,
  PRIMARY KEY(domain, selector)) WITHOUT ROWID;
)sql",
    // 9: the outbound queue.
    R"sql(
CREATE TABLE queue_messages(
  id TEXT PRIMARY KEY,
  sender TEXT NOT NULL,
  created INTEGER NOT NULL,
  blob_id TEXT NOT NULL,
  size INTEGER NOT NULL,
  flags INTEGER NOT NULL,
  held INTEGER NOT NULL DEFAULT 0,
  warned INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE queue_recipients(
  id INTEGER PRIMARY KEY,
  message_id TEXT NOT NULL REFERENCES queue_messages(id) ON DELETE CASCADE,
  address TEXT NOT NULL,
  domain TEXT NOT NULL,
  state INTEGER NOT NULL,
  attempts INTEGER NOT NULL,
  next_attempt INTEGER NOT NULL,
  last_reply TEXT NOT NULL,
  remote_mta TEXT NOT NULL);
CREATE INDEX queue_recipients_due ON queue_recipients(state, next_attempt);
CREATE INDEX queue_recipients_message ON queue_recipients(message_id);
)sql",
    // 10: small queued messages keep their encrypted content in the row: no file to create,
    // sync and unlink per message (blob_id is then '').
    R"sql(
ALTER TABLE queue_messages ADD COLUMN content BLOB;
)sql",
    // 11: per-message DMARC results for aggregate reports, each sealed under an instance key
    // (they name correspondents' domains and addresses); removed once reported.
    R"sql(
CREATE TABLE dmarc_events(
  id INTEGER PRIMARY KEY,
  time INTEGER NOT NULL,
  sealed BLOB NOT NULL);
CREATE INDEX dmarc_events_time ON dmarc_events(time);
)sql",
};

}  // namespace postern::store::sqlite
