#include "store/sqlite/vfs.hpp"

#include <sqlite3.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>

#include "base/fs.hpp"

namespace postern::store::sqlite {
namespace {

struct ShimFile {
  sqlite3_file base;
  sqlite3_file* real;
  std::string* path;
};

sqlite3_vfs* g_real = nullptr;
sqlite3_io_methods g_methods{};

sqlite3_file* real(sqlite3_file* f) {
  return reinterpret_cast<ShimFile*>(f)->real;
}
const std::string& path_of(sqlite3_file* f) {
  return *reinterpret_cast<ShimFile*>(f)->path;
}

int map_errno(int e, int generic) {
  return e == ENOSPC ? SQLITE_FULL : generic;
}

int x_close(sqlite3_file* f) {
  auto* s = reinterpret_cast<ShimFile*>(f);
  int rc = s->real->pMethods ? s->real->pMethods->xClose(s->real) : SQLITE_OK;
  delete s->path;
  s->path = nullptr;
  return rc;
}
int x_read(sqlite3_file* f, void* b, int n, sqlite3_int64 o) {
  return real(f)->pMethods->xRead(real(f), b, n, o);
}
int x_write(sqlite3_file* f, const void* b, int n, sqlite3_int64 o) {
  if (auto* h = base::fs::fault_hooks())
    if (int e = h->before_write(path_of(f), static_cast<uint64_t>(o), static_cast<std::size_t>(n)))
      return map_errno(e, SQLITE_IOERR_WRITE);
  return real(f)->pMethods->xWrite(real(f), b, n, o);
}
int x_truncate(sqlite3_file* f, sqlite3_int64 size) {
  if (auto* h = base::fs::fault_hooks())
    if (int e = h->before_truncate(path_of(f), static_cast<uint64_t>(size)))
      return map_errno(e, SQLITE_IOERR_TRUNCATE);
  return real(f)->pMethods->xTruncate(real(f), size);
}
int x_sync(sqlite3_file* f, int flags) {
  if (auto* h = base::fs::fault_hooks())
    if (int e = h->before_sync(path_of(f))) return map_errno(e, SQLITE_IOERR_FSYNC);
  return real(f)->pMethods->xSync(real(f), flags);
}
int x_file_size(sqlite3_file* f, sqlite3_int64* s) {
  return real(f)->pMethods->xFileSize(real(f), s);
}
int x_lock(sqlite3_file* f, int l) {
  return real(f)->pMethods->xLock(real(f), l);
}
int x_unlock(sqlite3_file* f, int l) {
  return real(f)->pMethods->xUnlock(real(f), l);
}
int x_check_reserved(sqlite3_file* f, int* r) {
  return real(f)->pMethods->xCheckReservedLock(real(f), r);
}
int x_file_control(sqlite3_file* f, int op, void* a) {
  return real(f)->pMethods->xFileControl(real(f), op, a);
}
int x_sector_size(sqlite3_file* f) {
  return real(f)->pMethods->xSectorSize(real(f));
}
int x_device_chars(sqlite3_file* f) {
  return real(f)->pMethods->xDeviceCharacteristics(real(f));
}
int x_shm_map(sqlite3_file* f, int pg, int sz, int ext, void volatile** p) {
  return real(f)->pMethods->xShmMap(real(f), pg, sz, ext, p);
}
int x_shm_lock(sqlite3_file* f, int o, int n, int fl) {
  return real(f)->pMethods->xShmLock(real(f), o, n, fl);
}
void x_shm_barrier(sqlite3_file* f) {
  real(f)->pMethods->xShmBarrier(real(f));
}
int x_shm_unmap(sqlite3_file* f, int d) {
  return real(f)->pMethods->xShmUnmap(real(f), d);
}
int x_fetch(sqlite3_file* f, sqlite3_int64 o, int n, void** p) {
  return real(f)->pMethods->xFetch(real(f), o, n, p);
}
int x_unfetch(sqlite3_file* f, sqlite3_int64 o, void* p) {
  return real(f)->pMethods->xUnfetch(real(f), o, p);
}

int x_open(sqlite3_vfs* vfs, sqlite3_filename name, sqlite3_file* f, int flags, int* out_flags) {
  auto* s = reinterpret_cast<ShimFile*>(f);
  s->real = reinterpret_cast<sqlite3_file*>(s + 1);
  s->path = new std::string(name ? name : "");
  s->base.pMethods = nullptr;
  if (name && (flags & SQLITE_OPEN_CREATE))
    if (auto* h = base::fs::fault_hooks())
      if (int e = h->before_create(*s->path)) {
        delete s->path;
        s->path = nullptr;
        return map_errno(e, SQLITE_CANTOPEN);
      }
  int rc = g_real->xOpen(g_real, name, s->real, flags, out_flags);
  if (rc != SQLITE_OK) {
    delete s->path;
    s->path = nullptr;
    return rc;
  }
  s->base.pMethods = &g_methods;
  return SQLITE_OK;
}

int x_delete(sqlite3_vfs*, const char* name, int sync_dir) {
  if (auto* h = base::fs::fault_hooks())
    if (int e = h->before_remove(name)) return map_errno(e, SQLITE_IOERR_DELETE);
  return g_real->xDelete(g_real, name, sync_dir);
}

}  // namespace

const char* vfs_name() {
  static std::once_flag once;
  static sqlite3_vfs vfs{};
  std::call_once(once, [] {
    g_real = sqlite3_vfs_find(nullptr);
    g_methods = sqlite3_io_methods{3,
                                   x_close,
                                   x_read,
                                   x_write,
                                   x_truncate,
                                   x_sync,
                                   x_file_size,
                                   x_lock,
                                   x_unlock,
                                   x_check_reserved,
                                   x_file_control,
                                   x_sector_size,
                                   x_device_chars,
                                   x_shm_map,
                                   x_shm_lock,
                                   x_shm_barrier,
                                   x_shm_unmap,
                                   x_fetch,
                                   x_unfetch};
    vfs = *g_real;
    vfs.zName = "postern";
    vfs.szOsFile = static_cast<int>(sizeof(ShimFile)) + g_real->szOsFile;
    vfs.xOpen = x_open;
    vfs.xDelete = x_delete;
    vfs.pNext = nullptr;
    sqlite3_vfs_register(&vfs, 0);
  });
  return "postern";
}

}  // namespace postern::store::sqlite
