// A SQLite VFS that delegates to the default one but routes writes, truncates and syncs through
// base::fs's fault hooks, so tests can fail them (ENOSPC, EIO) or record them for power-loss
// simulation exactly like blob writes.
#pragma once

namespace postern::store::sqlite {
// Registers the "postern" VFS once; returns its name.
const char* vfs_name();
}  // namespace postern::store::sqlite
