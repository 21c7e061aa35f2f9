// A simulated disk for durability tests, installed as base::fs fault hooks (so it sees blob
// writes and, through the VFS shim, every SQLite write). It records what each operation
// overwrites; cut_power() undoes everything that was not made durable (file data not fsync'd,
// directory entries whose directory was not fsync'd), newest first, as a power cut would.
// It can also crash the "machine" after N operations (every later operation fails with EIO)
// or fail operations with a chosen errno (ENOSPC, EIO).
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "base/fs.hpp"

namespace postern::testing {

class PowerLossSimulator final : public base::fs::FaultHooks {
 public:
  PowerLossSimulator();
  ~PowerLossSimulator() override;

  // After `ops` more mutating operations, every operation fails with EIO.
  void crash_after(std::size_t ops);
  bool crashed() const;
  // Every operation for which `match(kind, path)` is true fails with `err` (0 clears).
  void fail_when(std::function<bool(const std::string& kind, const std::string& path)> match,
                 int err);
  // Reverts every change not made durable and clears the crash; the journal starts afresh.
  void cut_power();
  std::size_t operations() const;

  int before_create(const std::string& path) override;
  int before_write(const std::string& path, uint64_t offset, std::size_t len) override;
  int before_truncate(const std::string& path, uint64_t size) override;
  int before_sync(const std::string& path) override;
  int before_rename(const std::string& from, const std::string& to) override;
  int before_remove(const std::string& path) override;
  int before_sync_dir(const std::string& dir) override;

 private:
  struct Undo {
    enum class Kind { write, truncate, create, rename, remove } kind = Kind::write;
    std::string path, path2;
    uint64_t offset = 0;
    std::string old_bytes;
    uint64_t old_size = 0;
    bool existed = false;
    bool is_dir = false;
  };
  static Undo undo(Undo::Kind kind, const std::string& path);
  int gate(const std::string& kind, const std::string& path);
  void forget_directory_entries(const std::string& dir);

  mutable std::mutex mu_;
  std::vector<Undo> journal_;
  std::size_t ops_ = 0;
  std::size_t crash_at_ = SIZE_MAX;
  bool crashed_ = false;
  std::function<bool(const std::string&, const std::string&)> match_;
  int match_err_ = 0;
};

}  // namespace postern::testing
