#include "common/tokenizer/json_document.h"

#include <cstdio>
#include <exception>
#include <memory>

#include "absl/strings/str_cat.h"

namespace specserve {
namespace {

// The deepest nesting of arrays and objects in `text` (brackets inside strings
// do not count), or kMaxJsonDepth + 1 as soon as it is exceeded.
int NestingDepth(std::string_view text) {
  int depth = 0;
  int max_depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      max_depth = std::max(max_depth, ++depth);
      if (max_depth > kMaxJsonDepth) return max_depth;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return max_depth;
}

absl::Status KeyTypeError(const std::string& where, const std::string& key, const char* expected,
                          const nlohmann::json& value) {
  return absl::InvalidArgumentError(
      absl::StrCat(where, ": key '", key, "': must be ", expected, ", not ", JsonTypeName(value)));
}

// The member, or nullptr when absent or null.
const nlohmann::json* Member(const nlohmann::json& object, const std::string& key) {
  if (!object.is_object()) return nullptr;
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

}  // namespace

std::string JsonTypeName(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::object:
      return "an object";
    case nlohmann::json::value_t::array:
      return "an array";
    case nlohmann::json::value_t::string:
      return "a string";
    case nlohmann::json::value_t::boolean:
      return "a boolean";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
    case nlohmann::json::value_t::number_float:
      return "a number";
    case nlohmann::json::value_t::null:
      return "null";
    default:
      return "an unknown value";
  }
}

absl::StatusOr<nlohmann::json> ParseJson(std::string_view text, const std::string& where) {
  if (NestingDepth(text) > kMaxJsonDepth) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": JSON nested deeper than ", kMaxJsonDepth, " levels"));
  }
  // nlohmann reports the position of a syntax error only through its exception; this
  // is the one place the engine lets a library throw, and it does not escape.
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": invalid JSON: ", e.what()));
  }
}

absl::StatusOr<nlohmann::json> ReadJsonFile(const std::string& path, uint64_t max_bytes) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (f == nullptr) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::string text;
  char buffer[1 << 16];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), f.get())) > 0) {
    text.append(buffer, n);
    if (text.size() > max_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": larger than ", max_bytes, " bytes, too large for this file"));
    }
  }
  if (std::ferror(f.get())) return absl::DataLossError(absl::StrCat(path, ": read error"));
  return ParseJson(text, path);
}

absl::StatusOr<std::optional<std::string>> JsonString(const nlohmann::json& object,
                                                      const std::string& key,
                                                      const std::string& where) {
  const nlohmann::json* v = Member(object, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_string()) return KeyTypeError(where, key, "a string", *v);
  return v->get<std::string>();
}

absl::StatusOr<std::optional<bool>> JsonBool(const nlohmann::json& object, const std::string& key,
                                             const std::string& where) {
  const nlohmann::json* v = Member(object, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_boolean()) return KeyTypeError(where, key, "true or false", *v);
  return v->get<bool>();
}

absl::StatusOr<std::optional<int64_t>> JsonInt(const nlohmann::json& object, const std::string& key,
                                               const std::string& where) {
  const nlohmann::json* v = Member(object, key);
  if (v == nullptr) return std::nullopt;
  if (v->is_number_integer()) return v->get<int64_t>();
  if (v->is_number_unsigned()) {
    const uint64_t u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": key '", key, "': ", u, " is out of range"));
    }
    return static_cast<int64_t>(u);
  }
  return KeyTypeError(where, key, "an integer", *v);
}

absl::StatusOr<std::optional<double>> JsonNumber(const nlohmann::json& object,
                                                 const std::string& key, const std::string& where) {
  const nlohmann::json* v = Member(object, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number()) return KeyTypeError(where, key, "a number", *v);
  return v->get<double>();
}

}  // namespace specserve
