#include "common/tokenizer/normalizer.h"

#include "common/tokenizer/utf8.h"

namespace specserve {
namespace {

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581

class SymbolWriter {
 public:
  SymbolWriter(const PieceIndex& pieces, NormalizedText* out) : pieces_(pieces), out_(out) {}

  // Appends one character (already normalised) as a symbol.
  void Add(std::string_view bytes, bool may_be_piece, bool is_space) {
    BpeSymbol symbol;
    symbol.begin = static_cast<int32_t>(out_->text.size());
    symbol.length = static_cast<int32_t>(bytes.size());
    symbol.id = may_be_piece ? pieces_.Find(bytes) : -1;
    symbol.mergeable = symbol.id >= 0;
    symbol.is_space = is_space;
    out_->text.append(bytes);
    out_->symbols.push_back(symbol);
  }

 private:
  const PieceIndex& pieces_;
  NormalizedText* out_;
};

}  // namespace

NormalizedText NormalizeForEncoding(std::string_view text, bool add_space_prefix, bool plain_spaces,
                                    const PieceIndex& pieces) {
  NormalizedText out;
  if (text.empty()) return out;
  out.text.reserve(text.size() + text.size() / 2 + 3);
  out.symbols.reserve(text.size() + 1);
  SymbolWriter writer(pieces, &out);
  const std::string_view space = plain_spaces ? std::string_view(" ") : kSpaceMarker;
  if (add_space_prefix) writer.Add(space, /*may_be_piece=*/true, /*is_space=*/true);
  size_t pos = 0;
  while (pos < text.size()) {
    const std::string_view rest = text.substr(pos);
    const Utf8Char c = ScanUtf8Char(rest);
    if (c.kind != Utf8Char::Kind::kComplete) {
      writer.Add(rest.substr(0, 1), /*may_be_piece=*/false, /*is_space=*/false);
      pos += 1;
      continue;
    }
    const std::string_view bytes = rest.substr(0, c.length);
    if (bytes == " ") {
      writer.Add(space, /*may_be_piece=*/true, /*is_space=*/true);
    } else {
      const bool literal_marker = !plain_spaces && bytes == kSpaceMarker;
      writer.Add(bytes, /*may_be_piece=*/!literal_marker, /*is_space=*/false);
    }
    pos += c.length;
  }
  return out;
}

}  // namespace specserve
