// Durable file helpers. Every write that acknowledges state goes through WriteFileAtomic:
// temp file in the same directory, fsync, rename, fsync of the directory.
#pragma once

#include <string>

#include "common/bytes.h"
#include "common/status.h"

namespace custos {

StatusOr<Bytes> ReadFileBytes(const std::string& path);
StatusOr<std::string> ReadFileString(const std::string& path);
// WriteFileAtomic replaces `path` with `data` (mode `mode`) so that a crash leaves either the
// old or the new content, never a mix. It fsyncs the file and its directory before returning.
Status WriteFileAtomic(const std::string& path, ByteSpan data, int mode = 0600);
inline Status WriteFileAtomic(const std::string& path, std::string_view data, int mode = 0600) {
  return WriteFileAtomic(path, AsBytes(data), mode);
}
// WriteFully writes all of `data` to `fd`, retrying short writes and EINTR. kUnavailable
// ("write failed: <strerror>") on any other error or a zero-length write.
Status WriteFully(int fd, ByteSpan data);
// FsyncDirectory flushes a directory's entries (after create/rename/unlink).
Status FsyncDirectory(const std::string& dir);
bool FileExists(const std::string& path);
// ReadPassphraseFile reads a passphrase file, dropping one trailing newline.
StatusOr<std::string> ReadPassphraseFile(const std::string& path);

}  // namespace custos
