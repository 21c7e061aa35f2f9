// The embedded backend: one SQLite database in WAL mode. One writer connection (delivery and
// admin changes, serialised by a mutex) and a pool of reader connections, so lookups on network
// threads never wait behind a commit's fsync.
#include <mutex>
#include <vector>

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

constexpr const char* account_columns = "id, address, created, storage_public, keyring";

Account read_account(const Stmt& s) {
  Account a;
  a.id = s.int64(0);
  a.address = s.text(1);
  a.created = s.int64(2);
  a.storage_public = s.blob(3);
  a.keyring = s.blob(4);
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
             "INSERT INTO mailboxes(account_id, name, special_use, uidvalidity) VALUES (?,?,?,?)");
      m.bind(1, id).bind(2, b.name).bind(3, b.special_use).bind(4, created & 0x7fffffff);
      if (auto r = m.run("create mailbox"); !r) return r.error();
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
             "INSERT INTO messages(mailbox_id, uid, modseq, internal_date, size, blob_id, "
             "sealed_key, summary) VALUES (?,?,?,?,?,?,?,?)");
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
      ins.bind_blob(7, m.sealed_key).bind_blob(8, m.summary);
      if (auto r = ins.run("insert message"); !r) return r.error();
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
           "SELECT uid, modseq, flags, internal_date, size, blob_id, sealed_key, summary "
           "FROM messages WHERE mailbox_id = ? ORDER BY uid");
    s.bind(1, mailbox_id);
    std::vector<MessageRecord> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) {
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
      out.push_back(std::move(m));
    }
    if (rc != SQLITE_DONE) return sqlite_error(c->get(), rc, "list messages");
    return out;
  }

  Result<std::vector<std::string>> blob_ids() override {
    auto c = reader();
    if (!c) return c.error();
    Stmt s(c->get(), "SELECT blob_id FROM messages");
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
