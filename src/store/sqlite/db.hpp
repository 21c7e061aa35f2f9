// Internal: RAII over sqlite3 connections and statements.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "store/store.hpp"

namespace postern::store::sqlite {

Error sqlite_error(sqlite3* db, int rc, std::string_view what);

class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql);
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  bool ok() const { return stmt_ != nullptr; }
  Stmt& bind(int i, int64_t v);
  Stmt& bind(int i, std::string_view text);  // TEXT
  Stmt& bind_blob(int i, std::string_view bytes);
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int step();
  void reset();  // ready to run again with new bindings
  int64_t int64(int col) const;
  std::string text(int col) const;
  std::string blob(int col) const;
  Result<void> run(std::string_view what);  // step to DONE

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

class Connection {
 public:
  static Result<Connection> open(const std::string& path, int busy_timeout_ms);
  Connection(Connection&& o) noexcept : db_(std::exchange(o.db_, nullptr)) {}
  Connection& operator=(Connection&&) = delete;
  ~Connection();
  sqlite3* get() const { return db_; }
  Result<void> exec(const char* sql);

 private:
  explicit Connection(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

}  // namespace postern::store::sqlite
