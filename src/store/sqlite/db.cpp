#include "store/sqlite/db.hpp"

#include "store/sqlite/vfs.hpp"

namespace postern::store::sqlite {

Error sqlite_error(sqlite3* db, int rc, std::string_view what) {
  std::string msg = std::string(what) + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  int primary = rc & 0xff;
  if (primary == SQLITE_FULL) return Error(Errc::full, msg);
  if (primary == SQLITE_CONSTRAINT) return Error(Errc::exists, msg);
  if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) return Error(Errc::corrupt, msg);
  return Error(Errc::io, msg);
}

Stmt::Stmt(sqlite3* db, const char* sql) : db_(db) {
  if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) stmt_ = nullptr;
}
Stmt::~Stmt() {
  sqlite3_finalize(stmt_);
}

Stmt& Stmt::bind(int i, int64_t v) {
  sqlite3_bind_int64(stmt_, i, v);
  return *this;
}
Stmt& Stmt::bind(int i, std::string_view t) {
  sqlite3_bind_text(stmt_, i, t.data(), static_cast<int>(t.size()), SQLITE_TRANSIENT);
  return *this;
}
Stmt& Stmt::bind_blob(int i, std::string_view b) {
  sqlite3_bind_blob(stmt_, i, b.data(), static_cast<int>(b.size()), SQLITE_TRANSIENT);
  return *this;
}
void Stmt::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}
int Stmt::step() {
  return stmt_ ? sqlite3_step(stmt_) : SQLITE_ERROR;
}
int64_t Stmt::int64(int col) const {
  return sqlite3_column_int64(stmt_, col);
}
std::string Stmt::text(int col) const {
  auto* p = sqlite3_column_text(stmt_, col);
  return p ? std::string(reinterpret_cast<const char*>(p),
                         static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)))
           : std::string();
}
std::string Stmt::blob(int col) const {
  auto* p = sqlite3_column_blob(stmt_, col);
  return p ? std::string(static_cast<const char*>(p),
                         static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)))
           : std::string();
}
Result<void> Stmt::run(std::string_view what) {
  if (!stmt_) return sqlite_error(db_, SQLITE_ERROR, what);
  int rc = step();
  while (rc == SQLITE_ROW) rc = step();
  if (rc != SQLITE_DONE) return sqlite_error(db_, rc, what);
  return {};
}

Result<Connection> Connection::open(const std::string& path, int busy_timeout_ms) {
  sqlite3* db = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, vfs_name());
  if (rc != SQLITE_OK) {
    Error e = sqlite_error(db, rc, "open " + path);
    sqlite3_close_v2(db);
    return e;
  }
  Connection c(db);
  sqlite3_busy_timeout(db, busy_timeout_ms);
  // synchronous=FULL: with NORMAL a committed transaction can roll back after power loss in
  // WAL mode, and 250 must mean durable.
  // mmap_size: an IMAP listing reads every summary of a mailbox; through read() the kernel's
  // copies were a quarter of its CPU time. Writes still go through the VFS (and its fault
  // hooks); only reads of committed pages use the mapping.
  if (auto r = c.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
                      "PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON; "
                      "PRAGMA mmap_size=1073741824;");
      !r)
    return r.error();
  return c;
}

Connection::~Connection() {
  if (db_) sqlite3_close_v2(db_);
}

Result<void> Connection::exec(const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    Error e = sqlite_error(nullptr, rc, msg);
    return Error(e.code(), msg);
  }
  return {};
}

}  // namespace postern::store::sqlite
