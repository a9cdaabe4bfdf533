#include "common/model/gguf_writer.h"

#include <cerrno>
#include <cstring>
#include <limits>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/model/gguf_reader.h"
#include "common/util/status_macros.h"

namespace specserve {
namespace {

uint64_t AlignUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

uint64_t StringBytes(const std::string& s) { return 8 + s.size(); }

uint64_t ValueBytes(const GgufValue& v) {
  if (const std::string* s = v.AsString()) return StringBytes(*s);
  if (const GgufArray* a = v.AsArray()) {
    uint64_t n = 4 + 8;
    for (const GgufValue& item : a->items) n += ValueBytes(item);
    return n;
  }
  return GgufScalarBytes(v.type());
}

}  // namespace

GgufWriter::GgufWriter(std::string path) : path_(std::move(path)), tmp_path_(path_ + ".tmp") {}

GgufWriter::~GgufWriter() {
  if (file_ != nullptr) std::fclose(file_);
  if (begun_ && !finished_) std::remove(tmp_path_.c_str());
}

void GgufWriter::AddMetadata(std::string key, GgufValue value) {
  metadata_.push_back(GgufKeyValue{std::move(key), std::move(value)});
}

void GgufWriter::AddTensor(std::string name, TensorType type, std::vector<int64_t> shape) {
  tensors_.push_back(Tensor{std::move(name), type, std::move(shape)});
}

absl::Status GgufWriter::Fail(std::string message) {
  return absl::InvalidArgumentError(absl::StrCat(path_, ": ", message));
}

absl::Status GgufWriter::Write(const void* data, size_t n) {
  if (n == 0) return absl::OkStatus();
  if (std::fwrite(data, 1, n, file_) != n) {
    return absl::InternalError(absl::StrCat(tmp_path_, ": write failed: ", std::strerror(errno)));
  }
  written_ += n;
  return absl::OkStatus();
}

absl::Status GgufWriter::WritePadding() {
  static constexpr uint8_t kZeros[kAlignment] = {};
  return Write(kZeros, AlignUp(written_, kAlignment) - written_);
}

absl::Status GgufWriter::WriteString(const std::string& s) {
  const uint64_t n = s.size();
  RETURN_IF_ERROR(Write(&n, sizeof(n)));
  return Write(s.data(), s.size());
}

absl::Status GgufWriter::WriteValue(const GgufValue& v, const std::string& key) {
  switch (v.type()) {
    case GgufType::kUint8:
    case GgufType::kUint16:
    case GgufType::kUint32:
    case GgufType::kUint64: {
      const uint64_t raw = v.raw_unsigned();
      return Write(&raw, GgufScalarBytes(v.type()));  // little-endian: low bytes first
    }
    case GgufType::kInt8:
    case GgufType::kInt16:
    case GgufType::kInt32:
    case GgufType::kInt64: {
      const int64_t raw = v.raw_signed();
      return Write(&raw, GgufScalarBytes(v.type()));
    }
    case GgufType::kFloat32: {
      const float f = static_cast<float>(v.raw_float());
      return Write(&f, sizeof(f));
    }
    case GgufType::kFloat64: {
      const double d = v.raw_float();
      return Write(&d, sizeof(d));
    }
    case GgufType::kBool: {
      const uint8_t b = v.AsBool().value_or(false) ? 1 : 0;
      return Write(&b, 1);
    }
    case GgufType::kString:
      return WriteString(*v.AsString());
    case GgufType::kArray: {
      const GgufArray& a = *v.AsArray();
      const uint32_t element_type = static_cast<uint32_t>(a.element_type);
      const uint64_t count = a.items.size();
      RETURN_IF_ERROR(Write(&element_type, sizeof(element_type)));
      RETURN_IF_ERROR(Write(&count, sizeof(count)));
      for (const GgufValue& item : a.items) {
        if (item.type() != a.element_type) {
          return Fail(absl::StrCat("key '", key, "': array of ",
                                   std::string(GgufTypeName(a.element_type)), " holds a ",
                                   std::string(GgufTypeName(item.type()))));
        }
        RETURN_IF_ERROR(WriteValue(item, key));
      }
      return absl::OkStatus();
    }
  }
  return Fail(absl::StrCat("key '", key, "': unknown value type"));
}

absl::Status GgufWriter::Begin() {
  if (begun_) return Fail("Begin() called twice");
  // Validate the declarations and lay out the data section.
  absl::flat_hash_set<std::string> seen;
  uint64_t header_bytes = 4 + 4 + 8 + 8;
  for (const GgufKeyValue& kv : metadata_) {
    if (kv.key.empty()) return Fail("empty metadata key");
    if (!seen.insert(kv.key).second) return Fail(absl::StrCat("key '", kv.key, "': duplicate key"));
    if (kv.key == "general.alignment" && kv.value.AsInt() != static_cast<int64_t>(kAlignment)) {
      return Fail("key 'general.alignment': only 32 is supported by the writer");
    }
    header_bytes += StringBytes(kv.key) + 4 + ValueBytes(kv.value);
  }
  seen.clear();
  uint64_t data_bytes = 0;
  for (Tensor& t : tensors_) {
    const std::string where = absl::StrCat("tensor '", t.name, "'");
    if (t.name.empty()) return Fail("empty tensor name");
    if (!seen.insert(t.name).second) return Fail(absl::StrCat(where, ": duplicate tensor name"));
    if (t.shape.empty() || t.shape.size() > static_cast<size_t>(kGgufMaxDims)) {
      return Fail(absl::StrCat(where, ": needs 1 to 4 dimensions"));
    }
    int64_t elements = 1;
    for (int64_t ne : t.shape) {
      if (ne <= 0 || __builtin_mul_overflow(elements, ne, &elements)) {
        return Fail(absl::StrCat(where, ": invalid shape"));
      }
    }
    if (t.shape[0] % BlockElements(t.type) != 0) {
      return Fail(absl::StrCat(where, ": row length ", t.shape[0], " is not a multiple of the ",
                               std::string(TensorTypeName(t.type)), " block size ",
                               BlockElements(t.type)));
    }
    t.bytes = static_cast<uint64_t>(TensorBytes(t.type, elements));
    t.offset = data_bytes;
    data_bytes = AlignUp(data_bytes + t.bytes, kAlignment);
    header_bytes += StringBytes(t.name) + 4 + 8 * t.shape.size() + 4 + 8;
  }
  total_bytes_ = AlignUp(header_bytes, kAlignment) + data_bytes;

  file_ = std::fopen(tmp_path_.c_str(), "wb");
  if (file_ == nullptr) {
    return absl::InternalError(absl::StrCat(tmp_path_, ": cannot create: ", std::strerror(errno)));
  }
  begun_ = true;
  std::setvbuf(file_, nullptr, _IOFBF, 1 << 20);

  const uint32_t magic = kGgufMagic;
  const uint32_t version = 3;
  const uint64_t tensor_count = tensors_.size();
  const uint64_t kv_count = metadata_.size();
  RETURN_IF_ERROR(Write(&magic, 4));
  RETURN_IF_ERROR(Write(&version, 4));
  RETURN_IF_ERROR(Write(&tensor_count, 8));
  RETURN_IF_ERROR(Write(&kv_count, 8));
  for (const GgufKeyValue& kv : metadata_) {
    RETURN_IF_ERROR(WriteString(kv.key));
    const uint32_t type = static_cast<uint32_t>(kv.value.type());
    RETURN_IF_ERROR(Write(&type, 4));
    RETURN_IF_ERROR(WriteValue(kv.value, kv.key));
  }
  for (const Tensor& t : tensors_) {
    RETURN_IF_ERROR(WriteString(t.name));
    const uint32_t n_dims = static_cast<uint32_t>(t.shape.size());
    RETURN_IF_ERROR(Write(&n_dims, 4));
    for (int64_t ne : t.shape) {
      const uint64_t u = static_cast<uint64_t>(ne);
      RETURN_IF_ERROR(Write(&u, 8));
    }
    const uint32_t type = static_cast<uint32_t>(t.type);
    RETURN_IF_ERROR(Write(&type, 4));
    RETURN_IF_ERROR(Write(&t.offset, 8));
  }
  return WritePadding();
}

absl::Status GgufWriter::WriteTensorData(absl::Span<const uint8_t> bytes) {
  if (!begun_ || finished_) return Fail("WriteTensorData outside Begin()/Finish()");
  while (!bytes.empty()) {
    if (current_ >= tensors_.size()) {
      return Fail(absl::StrCat(bytes.size(), " bytes of tensor data beyond the last tensor"));
    }
    const Tensor& t = tensors_[current_];
    const uint64_t n = std::min<uint64_t>(bytes.size(), t.bytes - current_done_);
    RETURN_IF_ERROR(Write(bytes.data(), n));
    bytes.remove_prefix(n);
    current_done_ += n;
    if (current_done_ == t.bytes) {
      RETURN_IF_ERROR(WritePadding());
      ++current_;
      current_done_ = 0;
    }
  }
  return absl::OkStatus();
}

absl::Status GgufWriter::Finish() {
  if (!begun_ || finished_) return Fail("Finish() without Begin()");
  // Zero-byte tensors cannot exist (shapes are positive), so every tensor needs data.
  if (current_ < tensors_.size()) {
    return Fail(absl::StrCat("tensor '", tensors_[current_].name, "': only ", current_done_, " of ",
                             tensors_[current_].bytes, " bytes were written"));
  }
  const int flush_rc = std::fflush(file_);
  const int close_rc = std::fclose(file_);
  file_ = nullptr;
  if (flush_rc != 0 || close_rc != 0) {
    return absl::InternalError(absl::StrCat(tmp_path_, ": write failed: ", std::strerror(errno)));
  }
  if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot rename ", tmp_path_, " to ", path_, ": ", std::strerror(errno)));
  }
  finished_ = true;
  return absl::OkStatus();
}

}  // namespace specserve
