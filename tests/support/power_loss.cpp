#include "support/power_loss.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

namespace postern::testing {
namespace {

std::string parent(const std::string& p) {
  return base::fs::parent_dir(p);
}

bool is_sqlite_journal(const std::string& p) {
  auto ends = [&](std::string_view s) {
    return p.size() >= s.size() && p.compare(p.size() - s.size(), s.size(), s) == 0;
  };
  return ends("-wal") || ends("-journal");
}

std::string read_range(const std::string& path, uint64_t off, std::size_t len, uint64_t& size) {
  struct stat st {};
  size = ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  std::string out;
  if (off >= size) return out;
  len = static_cast<std::size_t>(std::min<uint64_t>(len, size - off));
  out.resize(len);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  ssize_t n = ::pread(fd, out.data(), len, static_cast<off_t>(off));
  ::close(fd);
  out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return out;
}

void write_range(const std::string& path, uint64_t off, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  if (!data.empty()) (void)::pwrite(fd, data.data(), data.size(), static_cast<off_t>(off));
  ::close(fd);
}

void set_size(const std::string& path, uint64_t size) {
  (void)::truncate(path.c_str(), static_cast<off_t>(size));
}

}  // namespace

PowerLossSimulator::PowerLossSimulator() {
  base::fs::install_fault_hooks(this);
}
PowerLossSimulator::~PowerLossSimulator() {
  base::fs::install_fault_hooks(nullptr);
}

void PowerLossSimulator::crash_after(std::size_t ops) {
  std::lock_guard l(mu_);
  crash_at_ = ops_ + ops;
}

bool PowerLossSimulator::crashed() const {
  std::lock_guard l(mu_);
  return crashed_;
}

std::size_t PowerLossSimulator::operations() const {
  std::lock_guard l(mu_);
  return ops_;
}

void PowerLossSimulator::fail_when(std::function<bool(const std::string&, const std::string&)> m,
                                   int err) {
  std::lock_guard l(mu_);
  match_ = std::move(m);
  match_err_ = err;
}

int PowerLossSimulator::gate(const std::string& kind, const std::string& path) {
  static const bool trace = std::getenv("POSTERN_SIM_TRACE") != nullptr;
  if (trace)
    std::fprintf(stderr, "sim %zu %s %s%s\n", ops_, kind.c_str(), path.c_str(),
                 crashed_ || ops_ >= crash_at_ ? " (dead)" : "");
  if (crashed_) return EIO;
  if (ops_++ >= crash_at_) {
    crashed_ = true;
    return EIO;
  }
  if (match_err_ && match_ && match_(kind, path)) return match_err_;
  return 0;
}

PowerLossSimulator::Undo PowerLossSimulator::undo(Undo::Kind kind, const std::string& path) {
  Undo u;
  u.kind = kind;
  u.path = path;
  return u;
}

int PowerLossSimulator::before_create(const std::string& path) {
  std::lock_guard l(mu_);
  if (int e = gate("create", path)) return e;
  Undo u = undo(Undo::Kind::create, path);
  u.existed = std::filesystem::exists(path);
  if (!u.existed) journal_.push_back(u);
  return 0;
}

int PowerLossSimulator::before_write(const std::string& path, uint64_t offset, std::size_t len) {
  std::lock_guard l(mu_);
  if (int e = gate("write", path)) return e;
  Undo u = undo(Undo::Kind::write, path);
  u.offset = offset;
  u.old_bytes = read_range(path, offset, len, u.old_size);
  journal_.push_back(std::move(u));
  return 0;
}

int PowerLossSimulator::before_truncate(const std::string& path, uint64_t size) {
  std::lock_guard l(mu_);
  if (int e = gate("truncate", path)) return e;
  Undo u = undo(Undo::Kind::truncate, path);
  u.offset = size;
  u.old_bytes = read_range(path, size, SIZE_MAX / 2, u.old_size);
  journal_.push_back(std::move(u));
  return 0;
}

int PowerLossSimulator::before_sync(const std::string& path) {
  std::lock_guard l(mu_);
  if (int e = gate("sync", path)) return e;
  std::erase_if(journal_, [&](const Undo& u) {
    return u.path == path && (u.kind == Undo::Kind::write || u.kind == Undo::Kind::truncate);
  });
  // SQLite's unix VFS also fsyncs the directory on a new WAL's first sync (UNIXFILE_DIRSYNC),
  // which the shim does not see: model it as a directory sync.
  if (is_sqlite_journal(path)) forget_directory_entries(parent(path));
  return 0;
}

void PowerLossSimulator::forget_directory_entries(const std::string& dir) {
  std::erase_if(journal_, [&](const Undo& u) {
    switch (u.kind) {
      case Undo::Kind::create:
      case Undo::Kind::remove:
        return parent(u.path) == dir;
      case Undo::Kind::rename:
        return parent(u.path) == dir && parent(u.path2) == dir;
      default:
        return false;
    }
  });
}

int PowerLossSimulator::before_rename(const std::string& from, const std::string& to) {
  std::lock_guard l(mu_);
  if (int e = gate("rename", from)) return e;
  Undo u = undo(Undo::Kind::rename, from);
  u.path2 = to;
  u.existed = std::filesystem::exists(to);
  if (u.existed) u.old_bytes = read_range(to, 0, SIZE_MAX / 2, u.old_size);
  journal_.push_back(std::move(u));
  return 0;
}

int PowerLossSimulator::before_remove(const std::string& path) {
  std::lock_guard l(mu_);
  if (int e = gate("remove", path)) return e;
  Undo u = undo(Undo::Kind::remove, path);
  u.existed = std::filesystem::exists(path);
  if (u.existed) {
    u.old_bytes = read_range(path, 0, SIZE_MAX / 2, u.old_size);
    journal_.push_back(std::move(u));
  }
  return 0;
}

int PowerLossSimulator::before_sync_dir(const std::string& dir) {
  std::lock_guard l(mu_);
  if (int e = gate("syncdir", dir)) return e;
  forget_directory_entries(dir);
  return 0;
}

void PowerLossSimulator::cut_power() {
  std::lock_guard l(mu_);
  for (auto it = journal_.rbegin(); it != journal_.rend(); ++it) {
    const Undo& u = *it;
    switch (u.kind) {
      case Undo::Kind::write:
        write_range(u.path, u.offset, u.old_bytes);
        set_size(u.path, u.old_size);
        break;
      case Undo::Kind::truncate:
        set_size(u.path, u.old_size);
        write_range(u.path, u.offset, u.old_bytes);
        break;
      case Undo::Kind::create: {
        std::error_code ec;
        std::filesystem::remove_all(u.path, ec);
        break;
      }
      case Undo::Kind::rename: {
        std::error_code ec;
        std::filesystem::rename(u.path2, u.path, ec);
        if (u.existed) {
          int fd = ::open(u.path2.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
          if (fd >= 0) {
            (void)::write(fd, u.old_bytes.data(), u.old_bytes.size());
            ::close(fd);
          }
        }
        break;
      }
      case Undo::Kind::remove: {
        int fd = ::open(u.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd >= 0) {
          (void)::write(fd, u.old_bytes.data(), u.old_bytes.size());
          ::close(fd);
        }
        break;
      }
    }
  }
  journal_.clear();
  crashed_ = false;
  crash_at_ = SIZE_MAX;
  match_err_ = 0;
}

}  // namespace postern::testing
