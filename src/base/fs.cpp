#include "base/fs.hpp"

#include "base/random.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

namespace postern::base::fs {
namespace {

std::atomic<FaultHooks*> g_hooks{nullptr};

Error io_error(int err, std::string_view what, const std::string& path) {
  return errno_error(err, std::string(what) + " " + path);
}

}  // namespace

void install_fault_hooks(FaultHooks* hooks) {
  g_hooks.store(hooks);
}
FaultHooks* fault_hooks() {
  return g_hooks.load(std::memory_order_relaxed);
}

Result<File> File::open(const std::string& path, Mode mode, mode_t perm) {
  int flags = O_CLOEXEC;
  switch (mode) {
    case Mode::read:
      flags |= O_RDONLY;
      break;
    case Mode::create_new:
      flags |= O_RDWR | O_CREAT | O_EXCL;
      break;
    case Mode::read_write:
      flags |= O_RDWR;
      break;
  }
  if (mode == Mode::create_new)
    if (auto* h = fault_hooks())
      if (int e = h->before_create(path)) return io_error(e, "create", path);
  int fd = ::open(path.c_str(), flags, perm);
  if (fd < 0) return io_error(errno, "open", path);
  File f(fd, path);
  if (mode == Mode::read_write) {
    auto s = f.size();
    if (!s) return s.error();
    f.append_offset_ = *s;
  }
  return f;
}

File::File(File&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), path_(std::move(o.path_)), append_offset_(o.append_offset_) {}

File& File::operator=(File&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    path_ = std::move(o.path_);
    append_offset_ = o.append_offset_;
  }
  return *this;
}

File::~File() {
  if (fd_ >= 0) ::close(fd_);
}

Result<void> File::write_at(uint64_t offset, std::span<const unsigned char> data) {
  if (auto* h = fault_hooks())
    if (int e = h->before_write(path_, offset, data.size())) return io_error(e, "write", path_);
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n =
        ::pwrite(fd_, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error(errno, "write", path_);
    }
    done += static_cast<std::size_t>(n);
  }
  return {};
}

Result<void> File::append(std::span<const unsigned char> data) {
  auto r = write_at(append_offset_, data);
  if (r) append_offset_ += data.size();
  return r;
}

Result<void> File::truncate(uint64_t size) {
  if (auto* h = fault_hooks())
    if (int e = h->before_truncate(path_, size)) return io_error(e, "truncate", path_);
  if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) return io_error(errno, "truncate", path_);
  append_offset_ = size;
  return {};
}

Result<void> File::sync() {
  if (auto* h = fault_hooks())
    if (int e = h->before_sync(path_)) return io_error(e, "fsync", path_);
  if (::fdatasync(fd_) != 0) return io_error(errno, "fsync", path_);
  return {};
}

void File::start_writeback() {
  (void)::sync_file_range(fd_, 0, 0, SYNC_FILE_RANGE_WRITE);
}

Result<uint64_t> File::size() const {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) return io_error(errno, "stat", path_);
  return static_cast<uint64_t>(st.st_size);
}

Result<std::size_t> File::read_at(uint64_t offset, std::span<unsigned char> out) const {
  std::size_t done = 0;
  while (done < out.size()) {
    ssize_t n =
        ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error(errno, "read", path_);
    }
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  return done;
}

Result<void> rename(const std::string& from, const std::string& to) {
  if (auto* h = fault_hooks())
    if (int e = h->before_rename(from, to)) return io_error(e, "rename", from);
  if (::rename(from.c_str(), to.c_str()) != 0) return io_error(errno, "rename", from);
  return {};
}

Result<void> remove(const std::string& path) {
  if (auto* h = fault_hooks())
    if (int e = h->before_remove(path)) return io_error(e, "remove", path);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return io_error(errno, "remove", path);
  return {};
}

Result<void> sync_dir(const std::string& dir) {
  if (auto* h = fault_hooks())
    if (int e = h->before_sync_dir(dir)) return io_error(e, "fsync", dir);
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return io_error(errno, "open", dir);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return io_error(err, "fsync", dir);
  return {};
}

std::string parent_dir(const std::string& path) {
  auto pos = path.find_last_of('/');
  if (pos == std::string::npos) return ".";
  if (pos == 0) return "/";
  return path.substr(0, pos);
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

Result<void> make_dirs(const std::string& path, mode_t perm) {
  if (path.empty() || exists(path)) return {};
  if (auto r = make_dirs(parent_dir(path), perm); !r) return r;
  if (auto* h = fault_hooks())
    if (int e = h->before_create(path)) return io_error(e, "mkdir", path);
  if (::mkdir(path.c_str(), perm) != 0 && errno != EEXIST) return io_error(errno, "mkdir", path);
  return sync_dir(parent_dir(path));
}

Result<std::string> read_file(const std::string& path) {
  auto f = File::open(path, File::Mode::read);
  if (!f) return f.error();
  auto size = f->size();
  if (!size) return size.error();
  std::string data(*size, '\0');
  auto n = f->read_at(0, std::span(reinterpret_cast<unsigned char*>(data.data()), data.size()));
  if (!n) return n.error();
  data.resize(*n);
  return data;
}

Result<void> write_file_durable(const std::string& path, std::string_view data, mode_t perm) {
  std::string tmp = path + "." + system_random().token(10) + ".tmp";
  {
    auto f = File::open(tmp, File::Mode::create_new, perm);
    if (!f) return f.error();
    auto bytes = std::span(reinterpret_cast<const unsigned char*>(data.data()), data.size());
    Result<void> r = f->append(bytes);
    if (r) r = f->sync();
    if (!r) {
      (void)remove(tmp);
      return r;
    }
  }
  if (auto r = rename(tmp, path); !r) {
    (void)remove(tmp);
    return r;
  }
  return sync_dir(parent_dir(path));
}

}  // namespace postern::base::fs
