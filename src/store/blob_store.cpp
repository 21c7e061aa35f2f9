// Blob files: <root>/<bucket>/<id>. A bucket is a directory that receives a bounded number of
// files, so one batch of deliveries touches one directory and needs one directory fsync.
#include <filesystem>
#include <set>

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
  return base::fs::make_dirs(root_);
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

Result<PendingBlob> BlobStore::write(std::string_view data) {
  auto bucket = claim_bucket();
  if (!bucket) return bucket.error();
  std::string id = *bucket + "/" + base::system_random().token(15);
  std::string path = root_ + "/" + id;
  auto f = base::fs::File::open(path, base::fs::File::Mode::create_new);
  if (!f) return f.error();
  if (auto r = f->append({reinterpret_cast<const unsigned char*>(data.data()), data.size()}); !r) {
    (void)base::fs::remove(path);
    return r.error();
  }
  f->start_writeback();
  return PendingBlob{std::move(id), std::move(*f)};
}

Result<void> BlobStore::make_durable(std::span<PendingBlob> blobs) {
  std::set<std::string> buckets;
  for (auto& b : blobs) {
    if (auto r = b.file.sync(); !r) return r;
    buckets.insert(b.id.substr(0, b.id.find('/')));
  }
  // The directory entries, so the files are found after a power loss.
  for (const auto& bucket : buckets)
    if (auto r = base::fs::sync_dir(root_ + "/" + bucket); !r) return r;
  return {};
}

Result<std::vector<std::string>> BlobStore::list() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& bucket : std::filesystem::directory_iterator(root_, ec)) {
    if (!bucket.is_directory()) continue;
    for (const auto& f : std::filesystem::directory_iterator(bucket.path(), ec)) {
      std::string id = bucket.path().filename().string() + "/" + f.path().filename().string();
      if (valid_id(id)) out.push_back(std::move(id));
    }
    if (ec) break;
  }
  if (ec) return errno_error(ec.value(), "list " + root_);
  return out;
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
