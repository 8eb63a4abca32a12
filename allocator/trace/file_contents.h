// The bytes of a whole file, for parsers that want one contiguous view: a regular file is mapped
// read-only (no copy, pages populated up front), anything else (a pipe, /dev/stdin) is read.
#pragma once

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace vramcache {

class FileContents {
 public:
  // Errors name the path and the system's reason; a directory is InvalidArgument.
  static absl::StatusOr<FileContents> Read(const std::string& path);

  FileContents(FileContents&& other) noexcept;
  FileContents& operator=(FileContents&& other) noexcept;
  FileContents(const FileContents&) = delete;
  FileContents& operator=(const FileContents&) = delete;
  ~FileContents();

  absl::string_view view() const { return view_; }

 private:
  FileContents() = default;
  void Unmap();

  void* mapping_ = nullptr;  // when mapped
  std::size_t mapping_size_ = 0;
  std::string buffer_;  // when read
  absl::string_view view_;
};

}  // namespace vramcache
