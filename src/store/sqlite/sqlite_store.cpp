// The embedded backend: one SQLite database in WAL mode. One writer connection (delivery and
// admin changes, serialised by a mutex) and a pool of reader connections, so lookups on network
// threads never wait behind a commit's fsync.
#include <algorithm>
#include <cctype>
#include <mutex>
#include <vector>

#include "base/text.hpp"
#include "store/sqlite/db.hpp"
#include "store/sqlite/migrations.hpp"
#include "store/store.hpp"

namespace postern::store {

const std::error_category& category() {
  static const struct : std::error_category {
    const char* name() const noexcept override { return "store"; }
    std::string message(int e) const override {
      switch (static_cast<Errc>(e)) {
        case Errc::not_found:
          return "not found";
        case Errc::exists:
          return "already exists";
        case Errc::corrupt:
          return "database corrupt";
        case Errc::io:
          return "storage I/O error";
        case Errc::full:
          return "storage full";
        case Errc::schema:
          return "database schema newer than this postern";
        case Errc::invalid:
          return "invalid argument";
      }
      return "store error";
    }
  } cat;
  return cat;
}

namespace sqlite {
namespace {

// Every mailbox insert takes its id from here (migration 7: ids are never reused).
#define POSTERN_NEXT_MAILBOX_ID "(SELECT value + 1 FROM sequences WHERE name = 'mailbox')"

constexpr const char* account_columns =
    "id, address, created, storage_public, keyring, quota_bytes";

Account read_account(const Stmt& s) {
  Account a;
  a.id = s.int64(0);
  a.address = s.text(1);
  a.created = s.int64(2);
  a.storage_public = s.blob(3);
  a.keyring = s.blob(4);
  a.quota_bytes = s.int64(5);
  return a;
}

Mailbox read_mailbox(const Stmt& s) {
  Mailbox m;
  m.id = s.int64(0);
  m.account_id = s.int64(1);
  m.name = s.text(2);
  m.special_use = s.text(3);
  m.uidvalidity = static_cast<uint32_t>(s.int64(4));
  m.uidnext = static_cast<uint32_t>(s.int64(5));
  m.highestmodseq = static_cast<uint64_t>(s.int64(6));
  return m;
}

MessageMeta read_meta(const Stmt& s) {
  MessageMeta m;
  m.uid = static_cast<uint32_t>(s.int64(0));
  m.modseq = static_cast<uint64_t>(s.int64(1));
  m.flags = s.text(2);
  m.internal_date = s.int64(3);
  m.size = static_cast<uint64_t>(s.int64(4));
  return m;
}

// Columns: uid, modseq, flags, internal_date, size, blob_id, sealed_key, summary, wrapped_key.
MessageRecord read_record(const Stmt& s, int64_t mailbox_id) {
  MessageRecord m;
  m.mailbox_id = mailbox_id;
  m.uid = static_cast<uint32_t>(s.int64(0));
  m.modseq = static_cast<uint64_t>(s.int64(1));
  m.flags = s.text(2);
  m.internal_date = s.int64(3);
  m.size = static_cast<uint64_t>(s.int64(4));
  m.blob_id = s.text(5);
  m.sealed_key = s.blob(6);
  m.summary = s.blob(7);
  m.wrapped_key = s.blob(8);
  return m;
}

// Flags are stored space separated; keywords compare case-insensitively (RFC 9051 2.3.2).
std::string merge_flags(std::string_view current, FlagOp op, std::span<const std::string> flags) {
  std::vector<std::string> out;
  if (op != FlagOp::replace) {
    std::size_t pos = 0;
    while (pos < current.size()) {
      std::size_t sp = current.find(' ', pos);
      std::string_view f =
          current.substr(pos, sp == std::string_view::npos ? current.npos : sp - pos);
      if (!f.empty()) out.emplace_back(f);
      if (sp == std::string_view::npos) break;
      pos = sp + 1;
    }
  }
  for (const auto& f : flags) {
    auto it = std::find_if(out.begin(), out.end(),
                           [&](const std::string& x) { return base::iequals(x, f); });
    if (op == FlagOp::remove) {
      if (it != out.end()) out.erase(it);
    } else if (it == out.end()) {
      out.push_back(f);
    }
  }
  std::string joined;
  for (const auto& f : out) {
    if (!joined.empty()) joined += ' ';
    joined += f;
  }
  return joined;
}

// One step of a lookup: a row, no row, or an error (never mistaken for "no row").
Result<bool> row(Stmt& s, sqlite3* db, std::string_view what) {
  if (!s.ok()) return sqlite_error(db, SQLITE_ERROR, what);
  int rc = s.step();
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return sqlite_error(db, rc, what);
}

// Steps through every row, handing each to `each`; an error stops the walk.
template <class Each>
Result<void> for_each_row(Stmt& s, sqlite3* db, std::string_view what, Each each) {
  while (true) {
    auto r = row(s, db, what);
    if (!r) return r.error();
    if (!*r) return {};
    each(s);
  }
}

// Steps through rows whose first column is a uid (ascending), handing `each` only the rows
// whose uid is in `uids` (ascending): one range scan for the runs clients ask for ("1:*").
template <class Each>
Result<void> for_each_uid_row(Stmt& s, sqlite3* db, std::string_view what, int64_t mailbox_id,
                              std::span<const uint32_t> uids, Each each) {
  s.bind(1, mailbox_id).bind(2, static_cast<int64_t>(uids.front()));
  s.bind(3, static_cast<int64_t>(uids.back()));
  std::size_t next = 0;
  return for_each_row(s, db, what, [&](Stmt& st) {
    auto uid = static_cast<uint32_t>(st.int64(0));
    while (next < uids.size() && uids[next] < uid) ++next;
    if (next < uids.size() && uids[next] == uid) each(st, uid);
  });
}

class Transaction {
 public:
  explicit Transaction(Connection& c) : c_(c) {}
  Result<void> begin() { return c_.exec("BEGIN IMMEDIATE"); }
  Result<void> commit() {
    auto r = c_.exec("COMMIT");
    if (r) done_ = true;
    return r;
  }
  ~Transaction() {
    if (!done_) (void)c_.exec("ROLLBACK");
  }

 private:
  Connection& c_;
  bool done_ = false;
};

class SqliteStore final : public Store {
 public:
  SqliteStore(std::string path, SqliteOptions opt, Connection writer)
      : path_(std::move(path)), opt_(opt), writer_(std::move(writer)) {}

  Result<void> migrate() {
    std::lock_guard lock(write_mu_);
    if (auto r =
            writer_.exec("CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)");
        !r)
      return r;
    int64_t version = 0;
    {
      Stmt s(writer_.get(), "SELECT COALESCE(MAX(version), 0) FROM schema_version");
      if (s.step() == SQLITE_ROW) version = s.int64(0);
    }
    if (version > static_cast<int64_t>(migrations.size()))
      return Error(Errc::schema, "database version " + std::to_string(version));
    for (auto v = static_cast<std::size_t>(version); v < migrations.size(); ++v) {
      Transaction tx(writer_);
      if (auto r = tx.begin(); !r) return r;
      if (auto r = writer_.exec(migrations[v]); !r) return r;
      Stmt s(writer_.get(), "INSERT INTO schema_version(version) VALUES (?)");
      if (auto r = s.bind(1, static_cast<int64_t>(v + 1)).run("schema version"); !r) return r;
      if (auto r = tx.commit(); !r) return r;
    }
    return {};
  }

  Result<void> add_domain(std::string_view name) override {
    std::lock_guard lock(write_mu_);
    Stmt s(writer_.get(), "INSERT INTO domains(name) VALUES (?)");
    return s.bind(1, name).run("add domain");
  }

  Result<std::vector<std::string>> domains() override {
    auto c = reader();
    if (!c) return c.error();
    Stmt s(c->get(), "SELECT name FROM domains ORDER BY id");
    std::vector<std::string> out;
    if (auto r =
            for_each_row(s, c->get(), "list domains", [&](Stmt& st) { out.push_back(st.text(0)); });
        !r)
      return r.error();
    return out;
  }

  Result<void> add_dkim_key(const DkimKeyRecord& k) override {
    std::lock_guard lock(write_mu_);
    Stmt s(writer_.get(),
           "INSERT INTO dkim_keys(domain, selector, algorithm, secret, public_key, created) "
           "VALUES (?,?,?,?,?,?)");
    s.bind(1, k.domain).bind(2, k.selector).bind(3, k.algorithm).bind_blob(4, k.secret);
    s.bind_blob(5, k.public_key).bind(6, k.created);
    int rc = s.step();
    if (rc == SQLITE_CONSTRAINT)
      return Error(Errc::exists, "DKIM selector " + k.selector + " of " + k.domain);
    if (rc != SQLITE_DONE) return sqlite_error(writer_.get(), rc, "add DKIM key");
    return {};
  }

  Result<std::vector<DkimKeyRecord>> dkim_keys(std::string_view domain) override {
    auto c = reader();
    if (!c) return c.error();
    Stmt s(c->get(),
           "SELECT domain, selector, algorithm, secret, public_key, created FROM dkim_keys "
           "WHERE domain = ? ORDER BY created DESC, selector");
    s.bind(1, domain);
    std::vector<DkimKeyRecord> out;
    if (auto r = for_each_row(s, c->get(), "DKIM keys",
                              [&](Stmt& st) {
                                out.push_back({st.text(0), st.text(1), st.text(2), st.blob(3),
                                               st.blob(4), st.int64(5)});
                              });
        !r)
      return r.error();
    return out;
  }

  Result<bool> is_local_domain(std::string_view name) override {
    auto c = reader();
    if (!c) return c.error();
    Stmt s(c->get(), "SELECT 1 FROM domains WHERE name = ?");
    s.bind(1, name);
    return row(s, c->get(), "find domain");
  }

  Result<int64_t> create_account(const std::string& address, int64_t created,
                                 std::string_view storage_public, std::string_view keyring,
                                 const std::vector<NewMailbox>& boxes) override {
    std::lock_guard lock(write_mu_);
    Transaction tx(writer_);
    if (auto r = tx.begin(); !r) return r.error();
    {
      Stmt s(writer_.get(), "SELECT 1 FROM aliases WHERE address = ?");
      if (s.bind(1, address).step() == SQLITE_ROW)
        return Error(Errc::exists, "an alias named " + address + " exists");
    }
    Stmt s(writer_.get(),
           "INSERT INTO accounts(address, created, storage_public, keyring) VALUES (?,?,?,?)");
    s.bind(1, address).bind(2, created).bind_blob(3, storage_public).bind_blob(4, keyring);
    if (auto r = s.run("create account"); !r) return r.error();
    int64_t id = sqlite3_last_insert_rowid(writer_.get());
    for (const auto& b : boxes) {
      Stmt m(writer_.get(),
             "INSERT INTO mailboxes(id, account_id, name, special_use, uidvalidity) "
             "VALUES (" POSTERN_NEXT_MAILBOX_ID ",?,?,?,?)");
      m.bind(1, id).bind(2, b.name).bind(3, b.special_use);
      m.bind(4, std::max<int64_t>(1, created & 0x7fffffff));  // RFC 9051: nz-number
      if (auto r = m.run("create mailbox"); !r) return r.error();
      Stmt sub(writer_.get(), "INSERT INTO subscriptions(account_id, name) VALUES (?,?)");
      if (auto r = sub.bind(1, id).bind(2, b.name).run("subscribe"); !r) return r.error();
    }
    if (auto r = tx.commit(); !r) return r.error();
    return id;
  }

  Result<std::optional<Account>> find_account(std::string_view address) override {
    auto c = reader();
    if (!c) return c.error();
    Stmt s(c->get(),
           (std::string("SELECT ") + account_columns + " FROM accounts WHERE address = ?").c_str());
    s.bind(1, address);
    auto r = row(s, c->get(), "find account");
    if (!r) return r.error();
    if (!*r) return std::optional<Account>();
    return std::optional<Account>(read_account(s));
  }

  Result<std::optional<Account>> account_by_id(int64_t id) override {
    auto c = reader();
    if (!c) return c.error();
    Stmt s(c->get(),
           (std::string("SELECT ") + account_columns + " FROM accounts WHERE id = ?").c_str());
    s.bind(1, id);
    auto r = row(s, c->get(), "account by id");
    if (!r) return r.error();
    if (!*r) return std::optional<Account>();
    return std::optional<Account>(read_account(s));
  }

  Result<std::vector<Account>> accounts() override {
    auto c = reader();
    if (!c) return c.error();
    Stmt s(c->get(),
           (std::string("SELECT ") + account_columns + " FROM accounts ORDER BY id").c_str());
    std::vector<Account> out;
    if (auto r = for_each_row(s, c->get(), "list accounts",
                              [&](Stmt& st) { out.push_back(read_account(st)); });
        !r)
      return r.error();
    return out;
  }

  Result<void> update_keyring(int64_t id, std::string_view keyring) override {
    std::lock_guard lock(write_mu_);
    Stmt s(writer_.get(), "UPDATE accounts SET keyring=? WHERE id=?");
    s.bind_blob(1, keyring).bind(2, id);
    if (auto r = s.run("update keys"); !r) return r;
    if (sqlite3_changes(writer_.get()) != 1) return Error(Errc::not_found, "account");
    return {};
  }

  Result<void> set_quota(int64_t id, int64_t quota_bytes) override {
    std::lock_guard lock(write_mu_);
    Stmt s(writer_.get(), "UPDATE accounts SET quota_bytes = ? WHERE id = ?");
    s.bind(1, quota_bytes).bind(2, id);
    if (auto r = s.run("set quota"); !r) return r;
    if (sqlite3_changes(writer_.get()) != 1) return Error(Errc::not_found, "account");
    return {};
  }

  Result<uint64_t> usage(int64_t id) override {
    auto c = reader();
    if (!c) return c.error();
    Stmt s(c->get(),
           "SELECT COALESCE(SUM(m.size), 0) FROM messages m JOIN mailboxes b ON m.mailbox_id = "
           "b.id WHERE b.account_id = ?");
    s.bind(1, id);
    auto r = row(s, c->get(), "usage");
    if (!r) return r.error();
    return static_cast<uint64_t>(s.int64(0));
  }

  Result<std::vector<std::string>> delete_account(int64_t id) override {
    std::lock_guard lock(write_mu_);
    Transaction tx(writer_);
    if (auto r = tx.begin(); !r) return r.error();
    std::vector<std::string> blobs;
    {
      Stmt s(writer_.get(),
             "SELECT blob_id FROM messages WHERE mailbox_id IN "
             "(SELECT id FROM mailboxes WHERE account_id = ?)");
      s.bind(1, id);
      if (auto r = for_each_row(s, writer_.get(), "list account blobs",
                                [&](Stmt& st) { blobs.push_back(st.text(0)); });
          !r)
        return r.error();
    }
    Stmt d(writer_.get(), "DELETE FROM accounts WHERE id = ?");
    if (auto r = d.bind(1, id).run("delete account"); !r) return r.error();
    if (sqlite3_changes(writer_.get()) != 1) return Error(Errc::not_found, "account");
    if (auto r = tx.commit(); !r) return r.error();
    return blobs;
  }

  Result<void> add_alias(std::string_view alias, int64_t account_id) override {
    std::lock_guard lock(write_mu_);
    {
      Stmt s(writer_.get(), "SELECT 1 FROM accounts WHERE address = ?");
      if (s.bind(1, alias).step() == SQLITE_ROW)
        return Error(Errc::exists, "an account named " + std::string(alias) + " exists");
    }
    Stmt s(writer_.get(), "INSERT INTO aliases(address, account_id) VALUES (?,?)");
    return s.bind(1, alias).bind(2, account_id).run("add alias");
  }

  Result<std::optional<int64_t>> resolve_address(std::string_view address) override {
    auto c = reader();
    if (!c) return c.error();
    Stmt s(c->get(),
           "SELECT id FROM accounts WHERE address = ?1 "
           "UNION ALL SELECT account_id FROM aliases WHERE address = ?1 LIMIT 1");
    s.bind(1, address);
    auto r = row(s, c->get(), "resolve address");
    if (!r) return r.error();
    if (!*r) return std::optional<int64_t>();
    return std::optional<int64_t>(s.int64(0));
  }

  Result<std::optional<Mailbox>> find_mailbox(int64_t account_id, std::string_view name) override {
    auto c = reader();
    if (!c) return c.error();
    Stmt s(c->get(),
           "SELECT id, account_id, name, special_use, uidvalidity, uidnext, highestmodseq "
           "FROM mailboxes WHERE account_id = ? AND name = ?");
    s.bind(1, account_id).bind(2, name);
    auto r = row(s, c->get(), "find mailbox");
    if (!r) return r.error();
    if (!*r) return std::optional<Mailbox>();
    return std::optional<Mailbox>(read_mailbox(s));
  }

  Result<std::vector<Mailbox>> mailboxes(int64_t account_id) override {
    auto c = reader();
    if (!c) return c.error();
    Stmt s(c->get(),
           "SELECT id, account_id, name, special_use, uidvalidity, uidnext, highestmodseq "
           "FROM mailboxes WHERE account_id = ? ORDER BY id");
    s.bind(1, account_id);
    std::vector<Mailbox> out;
    if (auto r = for_each_row(s, c->get(), "list mailboxes",
                              [&](Stmt& st) { out.push_back(read_mailbox(st)); });
        !r)
      return r.error();
    return out;
  }

  Result<std::vector<Assigned>> append_messages(std::span<const NewMessage> msgs) override {
    std::lock_guard lock(write_mu_);
    Transaction tx(writer_);
    if (auto r = tx.begin(); !r) return r.error();
    std::vector<Assigned> out;
    out.reserve(msgs.size());
    Stmt bump(writer_.get(),
              "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1 "
              "WHERE id = ? RETURNING uidnext - 1, highestmodseq");
    Stmt ins(writer_.get(),
             "INSERT INTO messages(mailbox_id, uid, modseq, internal_date, size, blob_id, flags) "
             "VALUES (?,?,?,?,?,?,?)");
    Stmt data(writer_.get(),
              "INSERT INTO message_data(mailbox_id, uid, sealed_key, summary) VALUES (?,?,?,?)");
    Stmt seen(writer_.get(),
              "SELECT uid FROM recent_deliveries WHERE mailbox_id = ? AND digest = ?");
    Stmt remember(writer_.get(),
                  "INSERT INTO recent_deliveries(mailbox_id, digest, received, uid) "
                  "VALUES (?,?,?,?)");
    for (const auto& m : msgs) {
      if (!m.dedupe_digest.empty()) {
        seen.reset();
        seen.bind(1, m.mailbox_id).bind_blob(2, m.dedupe_digest);
        auto found = row(seen, writer_.get(), "find recent delivery");
        if (!found) return found.error();
        if (*found) {
          out.push_back(Assigned{static_cast<uint32_t>(seen.int64(0)), 0, true});
          continue;
        }
      }
      bump.reset();
      bump.bind(1, m.mailbox_id);
      int rc = bump.step();
      if (rc != SQLITE_ROW) {
        if (rc == SQLITE_DONE) return Error(Errc::not_found, "mailbox");
        return sqlite_error(writer_.get(), rc, "assign uid");
      }
      Assigned a{static_cast<uint32_t>(bump.int64(0)), static_cast<uint64_t>(bump.int64(1))};
      while (bump.step() == SQLITE_ROW) {
      }
      ins.reset();
      ins.bind(1, m.mailbox_id).bind(2, static_cast<int64_t>(a.uid));
      ins.bind(3, static_cast<int64_t>(a.modseq)).bind(4, m.internal_date);
      ins.bind(5, static_cast<int64_t>(m.size)).bind(6, m.blob_id);
      ins.bind(7, m.flags);
      if (auto r = ins.run("insert message"); !r) return r.error();
      data.reset();
      data.bind(1, m.mailbox_id).bind(2, static_cast<int64_t>(a.uid));
      data.bind_blob(3, m.sealed_key).bind_blob(4, m.summary);
      if (auto r = data.run("insert message data"); !r) return r.error();
      if (!m.dedupe_digest.empty()) {
        remember.reset();
        remember.bind(1, m.mailbox_id).bind_blob(2, m.dedupe_digest);
        remember.bind(3, m.internal_date).bind(4, static_cast<int64_t>(a.uid));
        if (auto r = remember.run("remember delivery"); !r) return r.error();
      }
      out.push_back(a);
    }
    if (auto r = tx.commit(); !r) return r.error();
    return out;
  }

  Result<void> prune_recent_deliveries(int64_t before) override {
    std::lock_guard lock(write_mu_);
    Stmt s(writer_.get(), "DELETE FROM recent_deliveries WHERE received < ?");
    return s.bind(1, before).run("prune recent deliveries");
  }

  Result<void> add_dmarc_event(int64_t time, std::string_view sealed) override {
    std::lock_guard lock(write_mu_);
    Stmt s(writer_.get(), "INSERT INTO dmarc_events(time, sealed) VALUES (?,?)");
    return s.bind(1, time).bind_blob(2, sealed).run("add dmarc event");
  }

  Result<std::vector<DmarcEventRow>> dmarc_events_before(int64_t before) override {
    auto c = reader();
    if (!c) return c.error();
    Stmt s(c->get(), "SELECT id, time, sealed FROM dmarc_events WHERE time < ? ORDER BY id");
    s.bind(1, before);
    std::vector<DmarcEventRow> out;
    if (auto r = for_each_row(s, c->get(), "dmarc events",
                              [&](Stmt& st) {
                                out.push_back({st.int64(0), st.int64(1), st.blob(2)});
                              });
        !r)
      return r.error();
    return out;
  }

  Result<void> delete_dmarc_events(std::span<const int64_t> ids) override {
    std::lock_guard lock(write_mu_);
    Transaction tx(writer_);
    if (auto r = tx.begin(); !r) return r.error();
    Stmt s(writer_.get(), "DELETE FROM dmarc_events WHERE id = ?");
    for (int64_t id : ids) {
      if (auto r = s.bind(1, id).run("delete dmarc event"); !r) return r.error();
      s.reset();
    }
    return tx.commit();
  }

  Result<std::string> instance_secret(std::string_view name, std::string_view candidate) override {
    std::lock_guard lock(write_mu_);
    Stmt ins(writer_.get(), "INSERT OR IGNORE INTO instance(name, value) VALUES (?,?)");
    if (auto r = ins.bind(1, name).bind_blob(2, candidate).run("instance secret"); !r)
      return r.error();
    Stmt sel(writer_.get(), "SELECT value FROM instance WHERE name = ?");
    if (sel.bind(1, name).step() != SQLITE_ROW) return Error(Errc::not_found, "instance secret");
    return sel.blob(0);
  }

  Result<std::vector<MessageRecord>> messages(int64_t mailbox_id) override {
    auto c = reader();
    if (!c) return c.error();
    Stmt s(c->get(),
           "SELECT m.uid, modseq, flags, internal_date, size, blob_id, sealed_key, summary, "
           "wrapped_key FROM messages m JOIN message_data d USING (mailbox_id, uid) "
           "WHERE m.mailbox_id = ? ORDER BY m.uid");
    s.bind(1, mailbox_id);
    std::vector<MessageRecord> out;
    if (auto r = for_each_row(s, c->get(), "list messages",
                              [&](Stmt& st) { out.push_back(read_record(st, mailbox_id)); });
        !r)
      return r.error();
    return out;
  }

  Result<Mailbox> create_mailbox(int64_t account_id, const NewMailbox& box,
                                 uint32_t uidvalidity) override {
    std::lock_guard lock(write_mu_);
    Stmt m(writer_.get(),
           "INSERT INTO mailboxes(id, account_id, name, special_use, uidvalidity) "
           "VALUES (" POSTERN_NEXT_MAILBOX_ID ",?,?,?,?) RETURNING id");
    m.bind(1, account_id).bind(2, box.name).bind(3, box.special_use).bind(4, uidvalidity);
    int rc = m.step();
    if (rc == SQLITE_CONSTRAINT) return Error(Errc::exists, "mailbox " + box.name);
    if (rc != SQLITE_ROW) return sqlite_error(writer_.get(), rc, "create mailbox");
    Mailbox out;
    out.id = m.int64(0);
    out.account_id = account_id;
    out.name = box.name;
    out.special_use = box.special_use;
    out.uidvalidity = uidvalidity;
    while (m.step() == SQLITE_ROW) {
    }
    return out;
  }

  Result<std::vector<std::string>> delete_mailbox(int64_t mailbox_id) override {
    std::lock_guard lock(write_mu_);
    Transaction tx(writer_);
    if (auto r = tx.begin(); !r) return r.error();
    std::vector<std::string> blobs;
    {
      Stmt s(writer_.get(), "SELECT DISTINCT blob_id FROM messages WHERE mailbox_id = ?");
      s.bind(1, mailbox_id);
      if (auto r = for_each_row(s, writer_.get(), "list mailbox blobs",
                                [&](Stmt& st) { blobs.push_back(st.text(0)); });
          !r)
        return r.error();
    }
    Stmt d(writer_.get(), "DELETE FROM mailboxes WHERE id = ?");
    if (auto r = d.bind(1, mailbox_id).run("delete mailbox"); !r) return r.error();
    if (sqlite3_changes(writer_.get()) != 1) return Error(Errc::not_found, "mailbox");
    auto unused = unreferenced(blobs);
    if (!unused) return unused.error();
    if (auto r = tx.commit(); !r) return r.error();
    return std::move(*unused);
  }

  Result<void> rename_mailbox(int64_t account_id, std::string_view from, std::string_view to,
                              uint32_t uidvalidity) override {
    std::lock_guard lock(write_mu_);
    Transaction tx(writer_);
    if (auto r = tx.begin(); !r) return r;
    std::string f(from), t(to);
    {
      Stmt s(writer_.get(),
             "SELECT 1 FROM mailboxes WHERE account_id = ?1 AND (name = ?2 OR "
             "substr(name, 1, length(?2) + 1) = ?2 || '/')");
      s.bind(1, account_id).bind(2, t);
      if (s.step() == SQLITE_ROW) return Error(Errc::exists, "mailbox " + t);
    }
    if (f == "INBOX") {
      // The messages move to a new mailbox; INBOX stays, empty (its children do not move).
      Stmt in(writer_.get(),
              "SELECT id, uidnext, highestmodseq FROM mailboxes WHERE account_id = ? AND name = "
              "'INBOX'");
      in.bind(1, account_id);
      if (in.step() != SQLITE_ROW) return Error(Errc::not_found, "INBOX");
      int64_t inbox = in.int64(0), uidnext = in.int64(1), modseq = in.int64(2);
      Stmt c(writer_.get(),
             "INSERT INTO mailboxes(id, account_id, name, uidvalidity, uidnext, highestmodseq) "
             "VALUES (" POSTERN_NEXT_MAILBOX_ID ",?,?,?,?,?) RETURNING id");
      c.bind(1, account_id).bind(2, t).bind(3, uidvalidity).bind(4, uidnext).bind(5, modseq);
      if (c.step() != SQLITE_ROW) return sqlite_error(writer_.get(), SQLITE_ERROR, "rename");
      int64_t target = c.int64(0);
      while (c.step() == SQLITE_ROW) {
      }
      Stmt gone(writer_.get(),
                "INSERT OR REPLACE INTO expunged(mailbox_id, uid, modseq) "
                "SELECT mailbox_id, uid, ?2 FROM messages WHERE mailbox_id = ?1");
      if (auto r = gone.bind(1, inbox).bind(2, modseq + 1).run("rename inbox"); !r) return r;
      Stmt mv(writer_.get(), "UPDATE messages SET mailbox_id = ? WHERE mailbox_id = ?");
      if (auto r = mv.bind(1, target).bind(2, inbox).run("rename inbox"); !r) return r;
      Stmt bump(writer_.get(), "UPDATE mailboxes SET highestmodseq = ? WHERE id = ?");
      if (auto r = bump.bind(1, modseq + 1).bind(2, inbox).run("rename inbox"); !r) return r;
      return tx.commit();
    }
    Stmt u(writer_.get(),
           "UPDATE mailboxes SET name = ?3 || substr(name, length(?2) + 1) WHERE account_id = ?1 "
           "AND (name = ?2 OR substr(name, 1, length(?2) + 1) = ?2 || '/')");
    u.bind(1, account_id).bind(2, f).bind(3, t);
    if (auto r = u.run("rename mailbox"); !r) return r;
    if (sqlite3_changes(writer_.get()) == 0) return Error(Errc::not_found, "mailbox " + f);
    Stmt sub(writer_.get(),
             "UPDATE OR REPLACE subscriptions SET name = ?3 || substr(name, length(?2) + 1) "
             "WHERE account_id = ?1 AND (name = ?2 OR substr(name, 1, length(?2) + 1) = ?2 || "
             "'/')");
    sub.bind(1, account_id).bind(2, f).bind(3, t);
    if (auto r = sub.run("rename subscriptions"); !r) return r;
    return tx.commit();
  }

  Result<std::vector<std::string>> subscriptions(int64_t account_id) override {
    auto c = reader();
    if (!c) return c.error();
    Stmt s(c->get(), "SELECT name FROM subscriptions WHERE account_id = ? ORDER BY name");
    s.bind(1, account_id);
    std::vector<std::string> out;
    if (auto r = for_each_row(s, c->get(), "list subscriptions",
                              [&](Stmt& st) { out.push_back(st.text(0)); });
        !r)
      return r.error();
    return out;
  }

  Result<void> set_subscribed(int64_t account_id, std::string_view name, bool on) override {
    std::lock_guard lock(write_mu_);
    Stmt s(writer_.get(), on ? "INSERT OR IGNORE INTO subscriptions(account_id, name) VALUES (?,?)"
                             : "DELETE FROM subscriptions WHERE account_id = ? AND name = ?");
    return s.bind(1, account_id).bind(2, name).run("subscribe");
  }

  Result<std::vector<MessageMeta>> message_index(int64_t mailbox_id) override {
    auto c = reader();
    if (!c) return c.error();
    Stmt s(c->get(),
           "SELECT uid, modseq, flags, internal_date, size FROM messages WHERE mailbox_id = ? "
           "ORDER BY uid");
    s.bind(1, mailbox_id);
    std::vector<MessageMeta> out;
    if (auto r = for_each_row(s, c->get(), "message index",
                              [&](Stmt& st) { out.push_back(read_meta(st)); });
        !r)
      return r.error();
    return out;
  }

  Result<Changes> changes_since(int64_t mailbox_id, uint64_t modseq) override {
    auto c = reader();
    if (!c) return c.error();
    // One read transaction, so the mailbox row and the changes agree.
    if (auto r = c->exec("BEGIN"); !r) return r.error();
    struct End {
      Lease& c;
      ~End() { (void)c.exec("COMMIT"); }
    } end{*c};
    Changes out;
    Stmt m(c->get(),
           "SELECT id, account_id, name, special_use, uidvalidity, uidnext, highestmodseq "
           "FROM mailboxes WHERE id = ?");
    m.bind(1, mailbox_id);
    auto found = row(m, c->get(), "mailbox");
    if (!found) return found.error();
    if (!*found) return Error(Errc::not_found, "mailbox");
    out.mailbox = read_mailbox(m);
    if (out.mailbox.highestmodseq <= modseq) return out;
    Stmt s(c->get(),
           "SELECT uid, modseq, flags, internal_date, size FROM messages WHERE mailbox_id = ? "
           "AND modseq > ? ORDER BY uid");
    s.bind(1, mailbox_id).bind(2, static_cast<int64_t>(modseq));
    if (auto r = for_each_row(s, c->get(), "changes",
                              [&](Stmt& st) { out.changed.push_back(read_meta(st)); });
        !r)
      return r.error();
    Stmt e(c->get(), "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid");
    e.bind(1, mailbox_id).bind(2, static_cast<int64_t>(modseq));
    if (auto r = for_each_row(
            e, c->get(), "expunged",
            [&](Stmt& st) { out.expunged.push_back(static_cast<uint32_t>(st.int64(0))); });
        !r)
      return r.error();
    return out;
  }

  Result<std::vector<MessageMeta>> message_meta(int64_t mailbox_id,
                                                std::span<const uint32_t> uids) override {
    std::vector<MessageMeta> out;
    if (uids.empty()) return out;
    auto c = reader();
    if (!c) return c.error();
    Stmt s(c->get(),
           "SELECT uid, modseq, flags, internal_date, size FROM messages WHERE mailbox_id = ? "
           "AND uid BETWEEN ? AND ? ORDER BY uid");
    out.reserve(uids.size());
    if (auto r = for_each_uid_row(s, c->get(), "message meta", mailbox_id, uids,
                                  [&](Stmt& st, uint32_t) { out.push_back(read_meta(st)); });
        !r)
      return r.error();
    return out;
  }

  Result<std::vector<MessageRecord>> messages_by_uid(int64_t mailbox_id,
                                                     std::span<const uint32_t> uids) override {
    std::vector<MessageRecord> out;
    if (uids.empty()) return out;
    auto c = reader();
    if (!c) return c.error();
    // Two range scans merged by uid (clients ask for runs of uids, "1:*"): a join would seek
    // message_data once per row. One read transaction keeps both scans consistent.
    if (auto r = c->exec("BEGIN"); !r) return r.error();
    struct End {
      Lease& c;
      ~End() { (void)c.exec("COMMIT"); }
    } end{*c};
    Stmt m(c->get(),
           "SELECT uid, modseq, flags, internal_date, size, blob_id FROM messages "
           "WHERE mailbox_id = ? AND uid BETWEEN ? AND ? ORDER BY uid");
    Stmt d(c->get(),
           "SELECT uid, sealed_key, summary, wrapped_key FROM message_data "
           "WHERE mailbox_id = ? AND uid BETWEEN ? AND ? ORDER BY uid");
    out.reserve(uids.size());
    if (auto r = for_each_uid_row(m, c->get(), "messages", mailbox_id, uids,
                                  [&](Stmt& st, uint32_t uid) {
                                    MessageRecord rec;
                                    rec.mailbox_id = mailbox_id;
                                    rec.uid = uid;
                                    rec.modseq = static_cast<uint64_t>(st.int64(1));
                                    rec.flags = st.text(2);
                                    rec.internal_date = st.int64(3);
                                    rec.size = static_cast<uint64_t>(st.int64(4));
                                    rec.blob_id = st.text(5);
                                    out.push_back(std::move(rec));
                                  });
        !r)
      return r.error();
    d.bind(1, mailbox_id).bind(2, static_cast<int64_t>(uids.front()));
    d.bind(3, static_cast<int64_t>(uids.back()));
    std::size_t i = 0;
    if (auto r = for_each_row(d, c->get(), "message data",
                              [&](Stmt& st) {
                                auto uid = static_cast<uint32_t>(st.int64(0));
                                while (i < out.size() && out[i].uid < uid) ++i;
                                if (i < out.size() && out[i].uid == uid) {
                                  out[i].sealed_key = st.blob(1);
                                  out[i].summary = st.blob(2);
                                  out[i].wrapped_key = st.blob(3);
                                }
                              });
        !r)
      return r.error();
    return out;
  }

  Result<void> set_wrapped_keys(int64_t mailbox_id,
                                std::span<const std::pair<uint32_t, std::string>> keys) override {
    if (keys.empty()) return {};
    std::lock_guard lock(write_mu_);
    Transaction tx(writer_);
    if (auto r = tx.begin(); !r) return r;
    Stmt u(writer_.get(),
           "UPDATE message_data SET wrapped_key = ? WHERE mailbox_id = ? AND uid = ?");
    for (const auto& [uid, key] : keys) {
      u.reset();
      u.bind_blob(1, key).bind(2, mailbox_id).bind(3, static_cast<int64_t>(uid));
      if (auto r = u.run("save wrapped key"); !r) return r;
    }
    return tx.commit();
  }

  Result<FlagResult> store_flags(int64_t mailbox_id, std::span<const uint32_t> uids, FlagOp op,
                                 std::span<const std::string> flags,
                                 std::optional<uint64_t> unchanged_since) override {
    std::lock_guard lock(write_mu_);
    Transaction tx(writer_);
    if (auto r = tx.begin(); !r) return r.error();
    FlagResult out;
    Stmt get(writer_.get(), "SELECT flags, modseq FROM messages WHERE mailbox_id = ? AND uid = ?");
    std::vector<std::pair<uint32_t, std::string>> updates;
    for (uint32_t uid : uids) {
      get.reset();
      get.bind(1, mailbox_id).bind(2, static_cast<int64_t>(uid));
      auto r = row(get, writer_.get(), "flags");
      if (!r) return r.error();
      if (!*r) continue;
      std::string current = get.text(0);
      auto modseq = static_cast<uint64_t>(get.int64(1));
      if (unchanged_since && modseq > *unchanged_since) {
        out.failed.push_back(uid);
        continue;
      }
      std::string next = merge_flags(current, op, flags);
      if (next != current) updates.emplace_back(uid, std::move(next));
    }
    if (updates.empty()) return out;
    auto modseq = bump_modseq(mailbox_id);
    if (!modseq) return modseq.error();
    Stmt set(writer_.get(),
             "UPDATE messages SET flags = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?");
    for (auto& [uid, f] : updates) {
      set.reset();
      set.bind(1, f).bind(2, static_cast<int64_t>(*modseq)).bind(3, mailbox_id);
      set.bind(4, static_cast<int64_t>(uid));
      if (auto r = set.run("store flags"); !r) return r.error();
      out.changed.push_back({uid, *modseq, std::move(f)});
    }
    if (auto r = tx.commit(); !r) return r.error();
    return out;
  }

  Result<Removed> expunge(int64_t mailbox_id, std::span<const uint32_t> uids) override {
    std::lock_guard lock(write_mu_);
    Transaction tx(writer_);
    if (auto r = tx.begin(); !r) return r.error();
    auto removed = remove_locked(mailbox_id, uids);
    if (!removed) return removed.error();
    if (auto r = tx.commit(); !r) return r.error();
    return std::move(*removed);
  }

  Result<Copied> copy_messages(int64_t from, std::span<const uint32_t> uids, int64_t to,
                               bool move) override {
    std::lock_guard lock(write_mu_);
    Transaction tx(writer_);
    if (auto r = tx.begin(); !r) return r.error();
    Copied out;
    {
      Stmt v(writer_.get(), "SELECT uidvalidity FROM mailboxes WHERE id = ?");
      v.bind(1, to);
      if (v.step() != SQLITE_ROW) return Error(Errc::not_found, "mailbox");
      out.uidvalidity = static_cast<uint32_t>(v.int64(0));
    }
    Stmt bump(writer_.get(),
              "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1 "
              "WHERE id = ? RETURNING uidnext - 1, highestmodseq");
    Stmt cp(writer_.get(),
            "INSERT INTO messages(mailbox_id, uid, modseq, flags, internal_date, size, blob_id) "
            "SELECT ?1, ?2, ?3, flags, internal_date, size, blob_id FROM messages "
            "WHERE mailbox_id = ?4 AND uid = ?5");
    Stmt cp_data(writer_.get(),
                 "INSERT INTO message_data(mailbox_id, uid, sealed_key, summary, wrapped_key) "
                 "SELECT ?1, ?2, sealed_key, summary, wrapped_key FROM message_data "
                 "WHERE mailbox_id = ?3 AND uid = ?4");
    std::vector<uint32_t> copied;
    for (uint32_t uid : uids) {
      bump.reset();
      bump.bind(1, to);
      if (bump.step() != SQLITE_ROW) return sqlite_error(writer_.get(), SQLITE_ERROR, "copy");
      auto new_uid = bump.int64(0);
      auto modseq = bump.int64(1);
      while (bump.step() == SQLITE_ROW) {
      }
      cp.reset();
      cp.bind(1, to).bind(2, new_uid).bind(3, modseq).bind(4, from);
      cp.bind(5, static_cast<int64_t>(uid));
      if (auto r = cp.run("copy message"); !r) return r.error();
      if (sqlite3_changes(writer_.get()) == 1) {
        cp_data.reset();
        cp_data.bind(1, to).bind(2, new_uid).bind(3, from).bind(4, static_cast<int64_t>(uid));
        if (auto r = cp_data.run("copy message data"); !r) return r.error();
        out.uids.emplace_back(uid, static_cast<uint32_t>(new_uid));
        copied.push_back(uid);
      }
    }
    if (move) {
      auto removed = remove_locked(from, copied);
      if (!removed) return removed.error();
      out.removed = std::move(*removed);
    }
    if (auto r = tx.commit(); !r) return r.error();
    return out;
  }

  Result<void> enqueue(const QueuedMessage& m, std::string_view content) override {
    std::lock_guard lock(write_mu_);
    Transaction tx(writer_);
    if (auto r = tx.begin(); !r) return r.error();
    Stmt ins(writer_.get(),
             "INSERT INTO queue_messages(id, sender, created, blob_id, size, flags, held, warned, "
             "content) VALUES (?,?,?,?,?,?,?,?,?)");
    ins.bind(1, m.id).bind(2, m.sender).bind(3, m.created).bind(4, m.blob_id);
    ins.bind(5, static_cast<int64_t>(m.size)).bind(6, queue_flags(m));
    ins.bind(7, m.held ? 1 : 0).bind(8, m.warned ? 1 : 0).bind_blob(9, content);
    if (auto r = ins.run("enqueue"); !r) return r;
    Stmt rcpt(writer_.get(),
              "INSERT INTO queue_recipients(message_id, address, domain, state, attempts, "
              "next_attempt, last_reply, remote_mta) VALUES (?,?,?,?,?,?,?,?)");
    for (const auto& r : m.recipients) {
      rcpt.reset();
      rcpt.bind(1, m.id).bind(2, r.address).bind(3, r.domain);
      rcpt.bind(4, static_cast<int64_t>(r.state)).bind(5, r.attempts).bind(6, r.next_attempt);
      rcpt.bind(7, r.last_reply).bind(8, r.remote_mta);
      if (auto res = rcpt.run("enqueue recipient"); !res) return res;
    }
    return tx.commit();
  }

  Result<std::vector<QueuedMessage>> queue_due(int64_t now, std::size_t limit) override {
    return load_queue(
        "WHERE NOT m.held AND m.id IN (SELECT message_id FROM queue_recipients "
        "WHERE state = 0 AND next_attempt <= ?1) ORDER BY m.created, m.id LIMIT ?2",
        now, static_cast<int64_t>(limit), "");
  }

  Result<std::string> queue_content(std::string_view id) override {
    auto c = reader();
    if (!c) return c.error();
    Stmt s(c->get(), "SELECT content FROM queue_messages WHERE id = ?");
    s.bind(1, id);
    auto found = row(s, c->get(), "queue content");
    if (!found) return found.error();
    if (!*found) return Error(Errc::not_found, "queue id");
    return s.blob(0);
  }

  Result<std::vector<QueuedMessage>> queue_all() override {
    return load_queue("ORDER BY m.created, m.id", 0, 0, "");
  }

  Result<std::optional<QueuedMessage>> queued(std::string_view id) override {
    auto all = load_queue("WHERE m.id = ?3", 0, 0, id);
    if (!all) return all.error();
    if (all->empty()) return std::optional<QueuedMessage>();
    return std::optional<QueuedMessage>(std::move(all->front()));
  }

  Result<void> update_recipients(std::string_view message_id,
                                 std::span<const QueuedRecipient> rs) override {
    std::lock_guard lock(write_mu_);
    Transaction tx(writer_);
    if (auto r = tx.begin(); !r) return r.error();
    Stmt up(writer_.get(),
            "UPDATE queue_recipients SET state = ?, attempts = ?, next_attempt = ?, "
            "last_reply = ?, remote_mta = ? WHERE id = ? AND message_id = ?");
    for (const auto& r : rs) {
      up.reset();
      up.bind(1, static_cast<int64_t>(r.state)).bind(2, r.attempts).bind(3, r.next_attempt);
      up.bind(4, r.last_reply).bind(5, r.remote_mta).bind(6, r.id).bind(7, message_id);
      if (auto res = up.run("update queue recipient"); !res) return res;
    }
    return tx.commit();
  }

  Result<void> set_queue_held(std::string_view id, bool held) override {
    std::lock_guard lock(write_mu_);
    Stmt s(writer_.get(), "UPDATE queue_messages SET held = ? WHERE id = ?");
    s.bind(1, held ? 1 : 0).bind(2, id);
    if (auto r = s.run("hold queue message"); !r) return r;
    if (sqlite3_changes(writer_.get()) == 0) return Error(Errc::not_found, "queue id");
    return {};
  }

  Result<void> set_queue_warned(std::string_view id) override {
    std::lock_guard lock(write_mu_);
    Stmt s(writer_.get(), "UPDATE queue_messages SET warned = 1 WHERE id = ?");
    s.bind(1, id);
    return s.run("mark queue message warned");
  }

  Result<void> queue_retry_now(std::string_view id, int64_t now) override {
    std::lock_guard lock(write_mu_);
    Stmt s(writer_.get(),
           "UPDATE queue_recipients SET next_attempt = ? WHERE message_id = ? AND state = 0");
    s.bind(1, now).bind(2, id);
    return s.run("retry queue message");
  }

  Result<std::optional<std::string>> dequeue(std::string_view id) override {
    std::lock_guard lock(write_mu_);
    Stmt s(writer_.get(), "DELETE FROM queue_messages WHERE id = ? RETURNING blob_id");
    s.bind(1, id);
    int rc = s.step();
    if (rc == SQLITE_DONE) return std::optional<std::string>();
    if (rc != SQLITE_ROW) return sqlite_error(writer_.get(), rc, "dequeue");
    std::string blob = s.blob(0);
    // The delete commits when the statement completes; only then may the blob go.
    if (int done = s.step(); done != SQLITE_DONE)
      return sqlite_error(writer_.get(), done, "dequeue");
    return std::optional<std::string>(std::move(blob));
  }

  Result<std::vector<std::string>> blob_ids() override {
    auto c = reader();
    if (!c) return c.error();
    Stmt s(c->get(),
           "SELECT blob_id FROM messages UNION ALL "
           "SELECT blob_id FROM queue_messages WHERE blob_id != ''");
    std::vector<std::string> out;
    if (auto r =
            for_each_row(s, c->get(), "list blobs", [&](Stmt& st) { out.push_back(st.text(0)); });
        !r)
      return r.error();
    return out;
  }

  Result<void> check_integrity() override {
    std::lock_guard lock(write_mu_);
    Stmt s(writer_.get(), "PRAGMA integrity_check");
    std::string verdict;
    while (s.step() == SQLITE_ROW) verdict += s.text(0);
    if (verdict != "ok") return Error(Errc::corrupt, verdict.empty() ? "no verdict" : verdict);
    Stmt fk(writer_.get(), "PRAGMA foreign_key_check");
    if (fk.step() == SQLITE_ROW) return Error(Errc::corrupt, "foreign key violation");
    return {};
  }

 private:
  static int64_t queue_flags(const QueuedMessage& m) {
    return (m.smtputf8 ? 1 : 0) | (m.eight_bit ? 2 : 0) | (m.requiretls ? 4 : 0);
  }

  // Queue rows with their recipients, in one read transaction. `where` may use ?1 (an int),
  // ?2 (a limit) and ?3 (an id).
  Result<std::vector<QueuedMessage>> load_queue(const std::string& where, int64_t a, int64_t b,
                                                std::string_view id) {
    auto c = reader();
    if (!c) return c.error();
    // One read transaction, so the messages and their recipients agree.
    if (auto r = c->exec("BEGIN"); !r) return r.error();
    struct End {
      Lease& c;
      ~End() { (void)c.exec("COMMIT"); }
    } end{*c};
    std::string sql =
        "SELECT m.id, m.sender, m.created, m.blob_id, m.size, m.flags, m.held, m.warned "
        "FROM queue_messages m " +
        where;
    Stmt s(c->get(), sql.c_str());
    if (sql.find("?1") != std::string::npos) s.bind(1, a);
    if (sql.find("?2") != std::string::npos) s.bind(2, b);
    if (sql.find("?3") != std::string::npos) s.bind(3, id);
    std::vector<QueuedMessage> out;
    if (auto r = for_each_row(s, c->get(), "queue",
                              [&](Stmt& st) {
                                QueuedMessage m;
                                m.id = st.text(0);
                                m.sender = st.text(1);
                                m.created = st.int64(2);
                                m.blob_id = st.text(3);
                                m.size = static_cast<uint64_t>(st.int64(4));
                                int64_t f = st.int64(5);
                                m.smtputf8 = f & 1;
                                m.eight_bit = f & 2;
                                m.requiretls = f & 4;
                                m.held = st.int64(6) != 0;
                                m.warned = st.int64(7) != 0;
                                out.push_back(std::move(m));
                              });
        !r)
      return r.error();
    Stmt rs(c->get(),
            "SELECT id, address, domain, state, attempts, next_attempt, last_reply, remote_mta "
            "FROM queue_recipients WHERE message_id = ? ORDER BY id");
    for (auto& m : out) {
      rs.reset();
      rs.bind(1, m.id);
      if (auto r = for_each_row(rs, c->get(), "queue recipients",
                                [&](Stmt& st) {
                                  QueuedRecipient q;
                                  q.id = st.int64(0);
                                  q.address = st.text(1);
                                  q.domain = st.text(2);
                                  q.state = static_cast<RecipientState>(st.int64(3));
                                  q.attempts = st.int64(4);
                                  q.next_attempt = st.int64(5);
                                  q.last_reply = st.text(6);
                                  q.remote_mta = st.text(7);
                                  m.recipients.push_back(std::move(q));
                                });
          !r)
        return r.error();
    }
    return out;
  }

  // Within a write transaction: the next modseq of a mailbox.
  Result<uint64_t> bump_modseq(int64_t mailbox_id) {
    Stmt b(writer_.get(),
           "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ? "
           "RETURNING highestmodseq");
    b.bind(1, mailbox_id);
    if (b.step() != SQLITE_ROW) return Error(Errc::not_found, "mailbox");
    auto v = static_cast<uint64_t>(b.int64(0));
    while (b.step() == SQLITE_ROW) {
    }
    return v;
  }

  // Within a write transaction: which of `blobs` no message row refers to any more.
  Result<std::vector<std::string>> unreferenced(const std::vector<std::string>& blobs) {
    std::vector<std::string> out;
    Stmt s(writer_.get(), "SELECT 1 FROM messages WHERE blob_id = ? LIMIT 1");
    for (const auto& b : blobs) {
      s.reset();
      s.bind(1, b);
      auto r = row(s, writer_.get(), "blob references");
      if (!r) return r.error();
      if (!*r) out.push_back(b);
    }
    return out;
  }

  // Within a write transaction: removes messages, remembering them for QRESYNC.
  Result<Removed> remove_locked(int64_t mailbox_id, std::span<const uint32_t> uids) {
    Removed out;
    if (uids.empty()) return out;
    auto modseq = bump_modseq(mailbox_id);
    if (!modseq) return modseq.error();
    out.modseq = *modseq;
    Stmt del(writer_.get(),
             "DELETE FROM messages WHERE mailbox_id = ? AND uid = ? RETURNING blob_id");
    Stmt rec(writer_.get(),
             "INSERT OR REPLACE INTO expunged(mailbox_id, uid, modseq) VALUES (?,?,?)");
    std::vector<std::string> blobs;
    for (uint32_t uid : uids) {
      del.reset();
      del.bind(1, mailbox_id).bind(2, static_cast<int64_t>(uid));
      int rc = del.step();
      if (rc == SQLITE_DONE) continue;
      if (rc != SQLITE_ROW) return sqlite_error(writer_.get(), rc, "expunge");
      blobs.push_back(del.text(0));
      while (del.step() == SQLITE_ROW) {
      }
      rec.reset();
      rec.bind(1, mailbox_id).bind(2, static_cast<int64_t>(uid));
      rec.bind(3, static_cast<int64_t>(*modseq));
      if (auto r = rec.run("remember expunge"); !r) return r.error();
      out.uids.push_back(uid);
    }
    auto unused = unreferenced(blobs);
    if (!unused) return unused.error();
    out.unreferenced_blobs = std::move(*unused);
    return out;
  }

  // A reader connection borrowed from the pool for one call.
  class Lease {
   public:
    Lease(SqliteStore& s, std::unique_ptr<Connection> c) : s_(&s), c_(std::move(c)) {}
    Lease(Lease&& o) noexcept : s_(o.s_), c_(std::move(o.c_)) {}
    ~Lease() {
      if (c_) {
        std::lock_guard lock(s_->pool_mu_);
        s_->pool_.push_back(std::move(c_));
      }
    }
    sqlite3* get() { return c_->get(); }
    Result<void> exec(const char* sql) { return c_->exec(sql); }

   private:
    SqliteStore* s_;
    std::unique_ptr<Connection> c_;
  };

  Result<Lease> reader() {
    {
      std::lock_guard lock(pool_mu_);
      if (!pool_.empty()) {
        auto c = std::move(pool_.back());
        pool_.pop_back();
        return Lease(*this, std::move(c));
      }
    }
    auto c = Connection::open(path_, opt_.busy_timeout_ms);
    if (!c) return c.error();
    return Lease(*this, std::make_unique<Connection>(std::move(*c)));
  }

  std::string path_;
  SqliteOptions opt_;
  std::mutex write_mu_;
  Connection writer_;
  std::mutex pool_mu_;
  std::vector<std::unique_ptr<Connection>> pool_;
};

}  // namespace
}  // namespace sqlite

Result<std::unique_ptr<Store>> open_sqlite(const std::string& path, const SqliteOptions& opt) {
  auto c = sqlite::Connection::open(path, opt.busy_timeout_ms);
  if (!c) return c.error();
  auto store = std::make_unique<sqlite::SqliteStore>(path, opt, std::move(*c));
  if (auto r = store->migrate(); !r) return r.error();
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace postern::store
