// Blob files: <root>/<bucket>/<id>. A bucket is a directory that receives a bounded number of
// files, so one batch of deliveries touches one directory and needs one directory fsync.
#include <dirent.h>

#include "base/fs.hpp"
#include "base/random.hpp"
#include "store/store.hpp"

namespace postern::store {
namespace {
constexpr std::size_t files_per_bucket = 8192;

bool valid_id(std::string_view id) {
  auto slash = id.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == id.size()) return false;
  for (char c : id)
    if (!((c >= 'a' && c <= 'z') || (c >= '2' && c <= '7') || c == '/')) return false;
  return id.find('/', slash + 1) == std::string_view::npos;
}
}  // namespace

BlobStore::BlobStore(std::string root) : root_(std::move(root)) {}

Result<void> BlobStore::open() {
  if (auto r = base::fs::make_dirs(root_); !r) return r;
  // Temp files belong to writes that were never acknowledged.
  DIR* top = ::opendir(root_.c_str());
  if (!top) return errno_error(errno, "opendir " + root_);
  while (dirent* e = ::readdir(top)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string sub = root_ + "/" + name;
    DIR* d = ::opendir(sub.c_str());
    if (!d) continue;
    while (dirent* f = ::readdir(d)) {
      std::string fn = f->d_name;
      if (fn.size() > 4 && fn.substr(fn.size() - 4) == ".tmp")
        (void)base::fs::remove(sub + "/" + fn);
    }
    ::closedir(d);
  }
  ::closedir(top);
  return {};
}

Result<std::string> BlobStore::claim_bucket() {
  std::lock_guard lock(mu_);
  if (bucket_.empty() || bucket_files_ >= files_per_bucket) {
    std::string b = base::system_random().token(5);
    if (auto r = base::fs::make_dirs(root_ + "/" + b); !r) return r.error();
    bucket_ = b;
    bucket_files_ = 0;
  }
  ++bucket_files_;
  return bucket_;
}

Result<std::string> BlobStore::put(std::string_view data) {
  auto bucket = claim_bucket();
  if (!bucket) return bucket.error();
  std::string id = *bucket + "/" + base::system_random().token(15);
  std::string path = root_ + "/" + id;
  std::string tmp = path + ".tmp";
  {
    auto f = base::fs::File::open(tmp, base::fs::File::Mode::create_new);
    if (!f) return f.error();
    auto r = f->append({reinterpret_cast<const unsigned char*>(data.data()), data.size()});
    if (r) r = f->sync();
    if (!r) {
      (void)base::fs::remove(tmp);
      return r.error();
    }
  }
  if (auto r = base::fs::rename(tmp, path); !r) {
    (void)base::fs::remove(tmp);
    return r.error();
  }
  return id;
}

Result<void> BlobStore::sync_dir(std::string_view bucket) {
  return base::fs::sync_dir(root_ + "/" + std::string(bucket));
}

Result<std::string> BlobStore::get(std::string_view id) const {
  if (!valid_id(id)) return Error(Errc::invalid, "blob id");
  return base::fs::read_file(root_ + "/" + std::string(id));
}

Result<void> BlobStore::remove(std::string_view id) {
  if (!valid_id(id)) return Error(Errc::invalid, "blob id");
  return base::fs::remove(root_ + "/" + std::string(id));
}

}  // namespace postern::store
