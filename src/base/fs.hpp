// The one layer every durable file write in postern goes through (blobs, config, keys, certs;
// the SQLite VFS shim in store/ calls the same hooks). Tests install FaultHooks to fail any
// operation with ENOSPC/EIO, or to record what an operation overwrites so a simulated power loss
// can undo everything that was not fsync'd.
#pragma once

#include "base/error.hpp"

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace postern::base {
class Random;
}

namespace postern::base::fs {

// Installed only by tests. Each method runs before the operation; returning an errno value makes
// the operation fail with it, returning 0 lets it proceed.
class FaultHooks {
 public:
  virtual ~FaultHooks() = default;
  virtual int before_create(const std::string& path) { return 0; }
  virtual int before_write(const std::string& path, uint64_t offset, std::size_t len) { return 0; }
  virtual int before_truncate(const std::string& path, uint64_t size) { return 0; }
  virtual int before_sync(const std::string& path) { return 0; }
  virtual int before_rename(const std::string& from, const std::string& to) { return 0; }
  virtual int before_remove(const std::string& path) { return 0; }
  virtual int before_sync_dir(const std::string& dir) { return 0; }
};

void install_fault_hooks(FaultHooks* hooks);  // nullptr removes them
FaultHooks* fault_hooks();

class File {
 public:
  enum class Mode { read, create_new, read_write };
  static Result<File> open(const std::string& path, Mode mode, mode_t perm = 0600);

  File(File&& o) noexcept;
  File& operator=(File&& o) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  ~File();

  Result<void> write_at(uint64_t offset, std::span<const unsigned char> data);
  Result<void> append(std::span<const unsigned char> data);
  Result<void> truncate(uint64_t size);
  Result<void> sync();  // fdatasync: content (and size) durable
  // Starts writing dirty pages back without waiting (sync_file_range): a later sync() of many
  // such files then mostly waits for I/O already under way. Durability still needs sync().
  void start_writeback();
  Result<uint64_t> size() const;
  Result<std::size_t> read_at(uint64_t offset, std::span<unsigned char> out) const;
  const std::string& path() const { return path_; }

 private:
  File(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::string path_;
  uint64_t append_offset_ = 0;
};

Result<void> rename(const std::string& from, const std::string& to);
Result<void> remove(const std::string& path);
Result<void> sync_dir(const std::string& dir);
// mkdir -p; each directory created is made durable in its parent.
Result<void> make_dirs(const std::string& path, mode_t perm = 0700);
Result<std::string> read_file(const std::string& path);
bool exists(const std::string& path);
std::string parent_dir(const std::string& path);

// Temp file (O_EXCL) in the same directory, write, fsync, rename over `path`, fsync directory.
// After success the content survives power loss; after failure `path` is untouched.
Result<void> write_file_durable(const std::string& path, std::string_view data, mode_t perm = 0600);

}  // namespace postern::base::fs
