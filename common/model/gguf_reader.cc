#include "common/model/gguf_reader.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"

namespace specserve {
namespace {

constexpr uint64_t kMaxKeyBytes = 65535;
constexpr int kMaxArrayNesting = 8;
// Smallest possible encodings, used to bound declared counts by the bytes left.
constexpr uint64_t kMinKeyValueBytes = 8 + 1 + 4 + 1;            // key len, 1-byte key, type, uint8
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;  // name, n_dims, ne0, type, offset

bool IsPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

}  // namespace

// Reads the file front to back; `context_` names what is being read for errors.
class GgufParser {
 public:
  explicit GgufParser(GgufFile& out)
      : out_(out), data_(out.file_->data()), size_(out.file_->size()) {}

  absl::Status Run() {
    RETURN_IF_ERROR(ReadHeader());
    for (uint64_t i = 0; i < kv_count_; ++i) RETURN_IF_ERROR(ReadKeyValue(i));
    RETURN_IF_ERROR(ApplyAlignment());
    for (uint64_t i = 0; i < tensor_count_; ++i) RETURN_IF_ERROR(ReadTensorInfo(i));
    return CheckTensorPlacement();
  }

 private:
  absl::Status Error(absl::string_view where, absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(out_.path(), ": ", where, ": ", what));
  }

  uint64_t remaining() const { return size_ - pos_; }

  absl::Status Need(uint64_t n, absl::string_view where) const {
    if (n > remaining()) {
      return Error(where, absl::StrCat("file is truncated: needs ", n, " bytes at offset ", pos_,
                                       " but the file has ", size_, " bytes"));
    }
    return absl::OkStatus();
  }

  template <typename T>
  absl::StatusOr<T> Read(absl::string_view where) {
    RETURN_IF_ERROR(Need(sizeof(T), where));
    T value;
    std::memcpy(&value, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }

  absl::StatusOr<std::string> ReadString(absl::string_view where, uint64_t max_bytes) {
    ASSIGN_OR_RETURN(const uint64_t length, Read<uint64_t>(where));
    if (length > max_bytes) {
      return Error(where, absl::StrCat("string length ", length, " exceeds the limit of ",
                                       max_bytes, " bytes"));
    }
    if (length > remaining()) {
      return Error(where, absl::StrCat("string length ", length, " at offset ", pos_ - 8,
                                       " runs past the end of the file (", size_, " bytes)"));
    }
    std::string s(reinterpret_cast<const char*>(data_ + pos_), length);
    pos_ += length;
    return s;
  }

  absl::Status ReadHeader() {
    ASSIGN_OR_RETURN(const uint32_t magic, Read<uint32_t>("header"));
    if (magic != kGgufMagic) return Error("header", "bad magic: not a GGUF file");
    ASSIGN_OR_RETURN(const uint32_t version, Read<uint32_t>("header"));
    if (version == 1) {
      return Error("header",
                   "GGUF version 1 is not supported (only versions 2 and 3); re-convert the "
                   "model with a current llama.cpp");
    }
    if (version != 2 && version != 3) {
      if ((version & 0xffff) == 0 && version != 0) {
        return Error("header", absl::StrCat("version field ", version,
                                            " looks byte-swapped: big-endian GGUF files are "
                                            "not supported"));
      }
      return Error("header",
                   absl::StrCat("unsupported GGUF version ", version, " (supported: 2 and 3)"));
    }
    out_.version_ = version;
    ASSIGN_OR_RETURN(tensor_count_, Read<uint64_t>("header"));
    ASSIGN_OR_RETURN(kv_count_, Read<uint64_t>("header"));
    if (kv_count_ > remaining() / kMinKeyValueBytes) {
      return Error("header", absl::StrCat("metadata count ", kv_count_,
                                          " is impossible for a file of ", size_, " bytes"));
    }
    if (tensor_count_ > remaining() / kMinTensorInfoBytes) {
      return Error("header", absl::StrCat("tensor count ", tensor_count_,
                                          " is impossible for a file of ", size_, " bytes"));
    }
    out_.metadata_.reserve(kv_count_);
    out_.tensors_.reserve(tensor_count_);
    return absl::OkStatus();
  }

  absl::Status ReadKeyValue(uint64_t index) {
    const std::string where = absl::StrCat("metadata entry ", index);
    ASSIGN_OR_RETURN(std::string key, ReadString(where, kMaxKeyBytes));
    if (key.empty()) return Error(where, "empty key");
    const std::string key_where = absl::StrCat("key '", key, "'");
    if (out_.metadata_index_.contains(key)) return Error(key_where, "duplicate key");
    ASSIGN_OR_RETURN(const uint32_t type, Read<uint32_t>(key_where));
    ASSIGN_OR_RETURN(GgufValue value, ReadValue(key_where, type, 0));
    out_.metadata_index_.emplace(key, out_.metadata_.size());
    out_.metadata_.push_back(GgufKeyValue{std::move(key), std::move(value)});
    return absl::OkStatus();
  }

  absl::StatusOr<GgufValue> ReadValue(absl::string_view where, uint32_t raw_type, int depth) {
    if (!IsValidGgufType(raw_type)) {
      return Error(where, absl::StrCat("unknown value type ", raw_type));
    }
    switch (static_cast<GgufType>(raw_type)) {
      case GgufType::kUint8: {
        ASSIGN_OR_RETURN(const uint8_t v, Read<uint8_t>(where));
        return GgufValue::Uint8(v);
      }
      case GgufType::kInt8: {
        ASSIGN_OR_RETURN(const int8_t v, Read<int8_t>(where));
        return GgufValue::Int8(v);
      }
      case GgufType::kUint16: {
        ASSIGN_OR_RETURN(const uint16_t v, Read<uint16_t>(where));
        return GgufValue::Uint16(v);
      }
      case GgufType::kInt16: {
        ASSIGN_OR_RETURN(const int16_t v, Read<int16_t>(where));
        return GgufValue::Int16(v);
      }
      case GgufType::kUint32: {
        ASSIGN_OR_RETURN(const uint32_t v, Read<uint32_t>(where));
        return GgufValue::Uint32(v);
      }
      case GgufType::kInt32: {
        ASSIGN_OR_RETURN(const int32_t v, Read<int32_t>(where));
        return GgufValue::Int32(v);
      }
      case GgufType::kUint64: {
        ASSIGN_OR_RETURN(const uint64_t v, Read<uint64_t>(where));
        return GgufValue::Uint64(v);
      }
      case GgufType::kInt64: {
        ASSIGN_OR_RETURN(const int64_t v, Read<int64_t>(where));
        return GgufValue::Int64(v);
      }
      case GgufType::kFloat32: {
        ASSIGN_OR_RETURN(const float v, Read<float>(where));
        return GgufValue::Float32(v);
      }
      case GgufType::kFloat64: {
        ASSIGN_OR_RETURN(const double v, Read<double>(where));
        return GgufValue::Float64(v);
      }
      case GgufType::kBool: {
        ASSIGN_OR_RETURN(const uint8_t v, Read<uint8_t>(where));
        if (v > 1) return Error(where, absl::StrCat("bool value ", int{v}, " is not 0 or 1"));
        return GgufValue::Bool(v != 0);
      }
      case GgufType::kString: {
        ASSIGN_OR_RETURN(std::string s, ReadString(where, std::numeric_limits<uint64_t>::max()));
        return GgufValue::String(std::move(s));
      }
      case GgufType::kArray:
        return ReadArray(where, depth);
    }
    return Error(where, "unreachable value type");
  }

  absl::StatusOr<GgufValue> ReadArray(absl::string_view where, int depth) {
    if (depth >= kMaxArrayNesting) {
      return Error(where, absl::StrCat("arrays nested deeper than ", kMaxArrayNesting));
    }
    ASSIGN_OR_RETURN(const uint32_t element_type, Read<uint32_t>(where));
    if (!IsValidGgufType(element_type)) {
      return Error(where, absl::StrCat("unknown array element type ", element_type));
    }
    ASSIGN_OR_RETURN(const uint64_t count, Read<uint64_t>(where));
    const GgufType type = static_cast<GgufType>(element_type);
    uint64_t min_bytes = GgufScalarBytes(type);
    if (type == GgufType::kString) min_bytes = 8;
    if (type == GgufType::kArray) min_bytes = 12;
    if (count > remaining() / min_bytes) {
      return Error(where, absl::StrCat("array of ", count, " ", std::string(GgufTypeName(type)),
                                       " values runs past the end of the file (", remaining(),
                                       " bytes left)"));
    }
    std::vector<GgufValue> items;
    items.reserve(count);
    for (uint64_t i = 0; i < count; ++i) {
      ASSIGN_OR_RETURN(GgufValue v, ReadValue(where, element_type, depth + 1));
      items.push_back(std::move(v));
    }
    return GgufValue::Array(type, std::move(items));
  }

  absl::Status ApplyAlignment() {
    const GgufValue* value = out_.FindValue("general.alignment");
    if (value == nullptr) return absl::OkStatus();
    const std::optional<int64_t> alignment = value->AsInt();
    if (!alignment.has_value()) {
      return Error(
          "key 'general.alignment'",
          absl::StrCat("must be an integer, not ", std::string(GgufTypeName(value->type()))));
    }
    if (*alignment <= 0 || !IsPowerOfTwo(static_cast<uint64_t>(*alignment)) ||
        *alignment > (1 << 24)) {
      return Error("key 'general.alignment'",
                   absl::StrCat("alignment ", *alignment, " is not a power of two up to 2^24"));
    }
    out_.alignment_ = static_cast<uint64_t>(*alignment);
    return absl::OkStatus();
  }

  absl::Status ReadTensorInfo(uint64_t index) {
    const std::string where = absl::StrCat("tensor info ", index);
    ASSIGN_OR_RETURN(std::string name, ReadString(where, kMaxKeyBytes));
    if (name.empty()) return Error(where, "empty tensor name");
    const std::string tw = absl::StrCat("tensor '", name, "'");
    if (out_.tensor_index_.contains(name)) return Error(tw, "duplicate tensor name");
    ASSIGN_OR_RETURN(const uint32_t n_dims, Read<uint32_t>(tw));
    if (n_dims == 0 || n_dims > kGgufMaxDims) {
      return Error(tw, absl::StrCat("n_dims is ", n_dims, " (must be 1..", kGgufMaxDims, ")"));
    }
    GgufTensorInfo info;
    info.name = std::move(name);
    int64_t elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      ASSIGN_OR_RETURN(const uint64_t ne, Read<uint64_t>(tw));
      if (ne == 0 || ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Error(tw, absl::StrCat("dimension ", d, " has invalid size ", ne));
      }
      if (__builtin_mul_overflow(elements, static_cast<int64_t>(ne), &elements)) {
        return Error(tw, "element count overflows 64 bits");
      }
      info.shape.push_back(static_cast<int64_t>(ne));
    }
    ASSIGN_OR_RETURN(const uint32_t ggml_type, Read<uint32_t>(tw));
    const std::optional<TensorType> type = TensorTypeFromGgml(ggml_type);
    if (!type.has_value()) {
      return Error(tw, absl::StrCat("has type ", std::string(GgmlTypeName(ggml_type)),
                                    " (ggml type ", ggml_type,
                                    "), which specserve does not support (supported: F32, F16, "
                                    "BF16, Q8_0, Q4_0)"));
    }
    info.type = *type;
    const int64_t block = BlockElements(info.type);
    if (info.shape[0] % block != 0) {
      return Error(tw, absl::StrCat("row length ", info.shape[0], " is not a multiple of the ",
                                    std::string(TensorTypeName(info.type)), " block size ", block));
    }
    uint64_t bytes = 0;
    if (__builtin_mul_overflow(static_cast<uint64_t>(elements / block),
                               static_cast<uint64_t>(BlockBytes(info.type)), &bytes)) {
      return Error(tw, "byte size overflows 64 bits");
    }
    info.elements = elements;
    info.bytes = bytes;
    ASSIGN_OR_RETURN(info.offset, Read<uint64_t>(tw));
    if (info.offset % out_.alignment_ != 0) {
      return Error(tw, absl::StrCat("data offset ", info.offset, " is not a multiple of the ",
                                    "alignment ", out_.alignment_));
    }
    out_.tensor_index_.emplace(info.name, out_.tensors_.size());
    out_.tensors_.push_back(std::move(info));
    return absl::OkStatus();
  }

  absl::Status CheckTensorPlacement() {
    const uint64_t a = out_.alignment_;
    uint64_t data_offset = pos_;
    if (data_offset % a != 0) data_offset += a - data_offset % a;
    out_.data_offset_ = data_offset;
    if (out_.tensors_.empty()) return absl::OkStatus();
    if (data_offset > size_) {
      return Error("data section", absl::StrCat("starts at offset ", data_offset,
                                                ", past the end of the file (", size_, " bytes)"));
    }
    const uint64_t data_size = size_ - data_offset;
    std::vector<const GgufTensorInfo*> by_offset;
    by_offset.reserve(out_.tensors_.size());
    for (const GgufTensorInfo& t : out_.tensors_) {
      if (t.offset > data_size || t.bytes > data_size - t.offset) {
        return Error(
            absl::StrCat("tensor '", t.name, "'"),
            absl::StrCat("data [", t.offset, ", +", t.bytes, ") lies outside the data section (",
                         data_size, " bytes from file offset ", data_offset,
                         "): the file is truncated or corrupt"));
      }
      by_offset.push_back(&t);
    }
    std::sort(
        by_offset.begin(), by_offset.end(),
        [](const GgufTensorInfo* x, const GgufTensorInfo* y) { return x->offset < y->offset; });
    for (size_t i = 1; i < by_offset.size(); ++i) {
      const GgufTensorInfo& prev = *by_offset[i - 1];
      const GgufTensorInfo& cur = *by_offset[i];
      if (prev.offset + prev.bytes > cur.offset) {
        return Error(absl::StrCat("tensor '", cur.name, "'"),
                     absl::StrCat("data at offset ", cur.offset, " overlaps tensor '", prev.name,
                                  "' [", prev.offset, ", ", prev.offset + prev.bytes, ")"));
      }
    }
    return absl::OkStatus();
  }

  GgufFile& out_;
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  uint64_t kv_count_ = 0;
  uint64_t tensor_count_ = 0;
};

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> file, MappedFile::Open(path));
  return Parse(std::shared_ptr<const MappedFile>(std::move(file)));
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Parse(std::shared_ptr<const MappedFile> file) {
  std::unique_ptr<GgufFile> gguf(new GgufFile(std::move(file)));
  GgufParser parser(*gguf);
  RETURN_IF_ERROR(parser.Run());
  return gguf;
}

const GgufValue* GgufFile::FindValue(absl::string_view key) const {
  auto it = metadata_index_.find(absl::string_view(key.data(), key.size()));
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second].value;
}

const GgufTensorInfo* GgufFile::FindTensor(std::string_view name) const {
  auto it = tensor_index_.find(absl::string_view(name.data(), name.size()));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace specserve
