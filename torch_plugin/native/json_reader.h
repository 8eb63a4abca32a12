// A small JSON reader for the documents vramcache's C ABI returns (vramcache_snapshot_json):
// objects, arrays, strings, numbers, true/false/null. The adapter links only PyTorch and the C
// ABI (no Abseil or JSON library on the machines it is built on), hence its own reader. Numbers
// keep full 64-bit precision, because device addresses do not fit a double.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace vramcache::torch_adapter {

class JsonValue {
 public:
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::kNull; }
  bool is_number() const { return kind_ == Kind::kNumber; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_array() const { return kind_ == Kind::kArray; }
  bool is_object() const { return kind_ == Kind::kObject; }

  bool as_bool() const { return bool_; }
  // A number as an unsigned integer (0 for negative or fractional values, which addresses and
  // sizes never are); as_double() for the rest.
  std::uint64_t as_uint() const { return negative_ || !integral_ ? 0 : uint_; }
  std::int64_t as_int() const;
  double as_double() const { return double_; }
  const std::string& as_string() const { return string_; }
  // Array elements (empty for anything else).
  const std::vector<JsonValue>& items() const;

  // The member `key` of an object, or a null value when absent (or when this is no object).
  const JsonValue& operator[](std::string_view key) const;

 private:
  friend class JsonParser;

  Kind kind_ = Kind::kNull;
  bool bool_ = false;
  bool negative_ = false;
  bool integral_ = true;
  std::uint64_t uint_ = 0;
  double double_ = 0;
  std::string string_;
  std::vector<JsonValue> items_;   // array elements, or object member values
  std::vector<std::string> keys_;  // object member names, parallel to items_
};

// Parses `text`; on malformed input returns false and says where in *error, leaving *out null.
bool ParseJson(std::string_view text, JsonValue* out, std::string* error);

}  // namespace vramcache::torch_adapter
