// Whole-file reading by mmap, with read() as the fallback for files that cannot be mapped.
#include "allocator/trace/file_contents.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace vramcache {
namespace {

absl::Status FileError(const std::string& path, absl::string_view what, int error_number) {
  return absl::Status(absl::ErrnoToStatusCode(error_number),
                      absl::StrCat(path, ": cannot ", what, ": ", std::strerror(error_number)));
}

// Closes the descriptor on every path out of Read.
class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

absl::StatusOr<FileContents> FileContents::Read(const std::string& path) {
  const ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return FileError(path, "open", errno);
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) return FileError(path, "stat", errno);
  if (S_ISDIR(info.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": is a directory, not a trace file"));
  }
  FileContents contents;
  if (S_ISREG(info.st_mode) && info.st_size > 0) {
    const auto size = static_cast<std::size_t>(info.st_size);
    void* mapping = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd.get(), 0);
    if (mapping != MAP_FAILED) {
      contents.mapping_ = mapping;
      contents.mapping_size_ = size;
      contents.view_ = absl::string_view(static_cast<const char*>(mapping), size);
      return contents;
    }
  }
  std::string& buffer = contents.buffer_;
  buffer.resize(64 * 1024);
  std::size_t filled = 0;
  while (true) {
    if (filled == buffer.size()) buffer.resize(filled * 2);
    const ssize_t got = ::read(fd.get(), buffer.data() + filled, buffer.size() - filled);
    if (got < 0) {
      if (errno == EINTR) continue;
      return FileError(path, "read", errno);
    }
    if (got == 0) break;
    filled += static_cast<std::size_t>(got);
  }
  buffer.resize(filled);
  contents.view_ = buffer;
  return contents;
}

FileContents::FileContents(FileContents&& other) noexcept { *this = std::move(other); }

FileContents& FileContents::operator=(FileContents&& other) noexcept {
  if (this == &other) return *this;
  Unmap();
  mapping_ = std::exchange(other.mapping_, nullptr);
  mapping_size_ = std::exchange(other.mapping_size_, 0);
  const bool other_owns_buffer =
      !other.buffer_.empty() && other.view_.data() == other.buffer_.data();
  buffer_ = std::move(other.buffer_);
  view_ = other_owns_buffer ? absl::string_view(buffer_) : other.view_;
  other.view_ = absl::string_view();
  return *this;
}

FileContents::~FileContents() { Unmap(); }

void FileContents::Unmap() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_size_);
  mapping_ = nullptr;
  mapping_size_ = 0;
}

}  // namespace vramcache
