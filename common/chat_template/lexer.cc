#include "common/chat_template/lexer.h"

#include <cctype>

#include "absl/strings/str_format.h"

namespace specserve::jinja {
namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// Python's str.rstrip() on the ASCII whitespace templates use.
std::string RStrip(const std::string& s) {
  size_t end = s.size();
  while (end > 0 && IsSpace(s[end - 1])) --end;
  return s.substr(0, end);
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    *out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    *out += static_cast<char>(0xC0 | (cp >> 6));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *out += static_cast<char>(0xE0 | (cp >> 12));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    *out += static_cast<char>(0xF0 | (cp >> 18));
    *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class Lexer {
 public:
  explicit Lexer(const std::string& source) {
    // Newlines normalised to "\n"; one trailing newline dropped (keep_trailing_newline off).
    src_.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
      if (source[i] == '\r') {
        src_ += '\n';
        if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
      } else {
        src_ += source[i];
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
  }

  absl::StatusOr<std::vector<Token>> Run() {
    while (pos_ < src_.size()) {
      size_t start = src_.find('{', pos_);
      while (start != std::string::npos && start + 1 < src_.size() && src_[start + 1] != '{' &&
             src_[start + 1] != '%' && src_[start + 1] != '#') {
        start = src_.find('{', start + 1);
      }
      if (start == std::string::npos || start + 1 >= src_.size()) {
        EmitData(src_.substr(pos_));
        pos_ = src_.size();
        break;
      }
      const char type = src_[start + 1];
      const char sign =
          start + 2 < src_.size() && (src_[start + 2] == '-' || src_[start + 2] == '+')
              ? src_[start + 2]
              : 0;
      EmitData(StripBeforeTag(src_.substr(pos_, start - pos_), sign, type != '{'));
      Advance(start + 2 + (sign ? 1 : 0));
      absl::Status st;
      if (type == '#') {
        st = Comment();
      } else if (type == '%' && IsRawBegin()) {
        st = Raw();
      } else {
        st = Tag(type == '%');
      }
      if (!st.ok()) return st;
    }
    tokens_.push_back({Token::Kind::kEnd, "", line_});
    return std::move(tokens_);
  }

 private:
  // Whitespace control for the text before a tag: `-` strips all trailing whitespace;
  // otherwise, for block and comment tags not marked `+`, lstrip_blocks drops the
  // spaces/tabs between the start of the line and the tag.
  std::string StripBeforeTag(std::string text, char sign, bool lstrip) {
    if (sign == '-') return RStrip(text);
    if (sign == '+' || !lstrip) return text;
    const size_t l_pos = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
    if (l_pos > 0 || line_starting_) {
      bool blank = true;
      for (size_t i = l_pos; i < text.size(); ++i) blank &= text[i] == ' ' || text[i] == '\t';
      if (blank) text.resize(l_pos);
    }
    return text;
  }

  void EmitData(const std::string& text) {
    if (!text.empty()) tokens_.push_back({Token::Kind::kData, text, line_});
  }

  // Moves pos_ to `to`, counting lines; remembers whether the consumed text ended a line.
  void Advance(size_t to) {
    for (size_t i = pos_; i < to; ++i) line_ += src_[i] == '\n' ? 1 : 0;
    if (to > pos_) line_starting_ = src_[to - 1] == '\n';
    pos_ = to;
  }

  size_t SkipSpace(size_t i) const {
    while (i < src_.size() && IsSpace(src_[i])) ++i;
    return i;
  }

  absl::Status Error(const std::string& what) const {
    return absl::InvalidArgumentError(absl::StrFormat("line %d: %s", line_, what));
  }

  // After `{#` and its sign: up to the first `#}`, with its own whitespace control.
  absl::Status Comment() {
    const size_t content = pos_;
    const size_t end = src_.find("#}", content);
    if (end == std::string::npos) return Error("a comment is not closed with #}");
    size_t after = end + 2;
    if (end > content && src_[end - 1] == '-') {
      after = SkipSpace(after);
    } else if (!(end > content && src_[end - 1] == '+')) {
      if (after < src_.size() && src_[after] == '\n') ++after;  // trim_blocks
    }
    Advance(after);
    return absl::OkStatus();
  }

  // At pos_ (after `{%` and its sign): `raw %}` or `raw -%}`?
  bool IsRawBegin() const {
    const size_t i = SkipSpace(pos_);
    if (src_.compare(i, 3, "raw") != 0) return false;
    const size_t j = SkipSpace(i + 3);
    return src_.compare(j, 2, "%}") == 0 || src_.compare(j, 3, "-%}") == 0;
  }

  absl::Status Raw() {
    size_t i = SkipSpace(SkipSpace(pos_) + 3);
    i = src_[i] == '-' ? SkipSpace(i + 3) : i + 2;  // no trim_blocks after `raw %}`
    Advance(i);
    for (size_t k = src_.find("{%", pos_); k != std::string::npos; k = src_.find("{%", k + 1)) {
      const char sign =
          k + 2 < src_.size() && (src_[k + 2] == '-' || src_[k + 2] == '+') ? src_[k + 2] : 0;
      size_t j = SkipSpace(k + 2 + (sign ? 1 : 0));
      if (src_.compare(j, 6, "endraw") != 0) continue;
      j = SkipSpace(j + 6);
      size_t after;
      if (src_.compare(j, 3, "+%}") == 0) {
        after = j + 3;
      } else if (src_.compare(j, 3, "-%}") == 0) {
        after = SkipSpace(j + 3);
      } else if (src_.compare(j, 2, "%}") == 0) {
        after = j + 2;
        if (after < src_.size() && src_[after] == '\n') ++after;
      } else {
        continue;
      }
      EmitData(StripBeforeTag(src_.substr(pos_, k - pos_), sign, true));
      Advance(after);
      return absl::OkStatus();
    }
    return Error("{% raw %} without {% endraw %}");
  }

  // The tokens of a {{ ... }} or {% ... %} tag, up to its end.
  absl::Status Tag(bool block) {
    tokens_.push_back({block ? Token::Kind::kBlockBegin : Token::Kind::kVarBegin, "", line_});
    int depth = 0;
    while (true) {
      if (pos_ >= src_.size()) {
        return Error(block ? "a {% tag is not closed with %}" : "a {{ tag is not closed with }}");
      }
      if (depth == 0) {
        const char* close = block ? "%}" : "}}";
        if (block && src_.compare(pos_, 3, "+%}") == 0) {
          Advance(pos_ + 3);
          tokens_.push_back({Token::Kind::kBlockEnd, "", line_});
          return absl::OkStatus();
        }
        if (src_[pos_] == '-' && src_.compare(pos_ + 1, 2, close) == 0) {
          Advance(SkipSpace(pos_ + 3));
          tokens_.push_back({block ? Token::Kind::kBlockEnd : Token::Kind::kVarEnd, "", line_});
          return absl::OkStatus();
        }
        if (src_.compare(pos_, 2, close) == 0) {
          size_t after = pos_ + 2;
          if (block && after < src_.size() && src_[after] == '\n') ++after;  // trim_blocks
          Advance(after);
          tokens_.push_back({block ? Token::Kind::kBlockEnd : Token::Kind::kVarEnd, "", line_});
          return absl::OkStatus();
        }
      }
      const char c = src_[pos_];
      if (IsSpace(c)) {
        Advance(SkipSpace(pos_));
        continue;
      }
      if (std::isdigit(static_cast<unsigned char>(c))) {
        Number();
        continue;
      }
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t j = pos_;
        while (j < src_.size() &&
               (std::isalnum(static_cast<unsigned char>(src_[j])) || src_[j] == '_'))
          ++j;
        tokens_.push_back({Token::Kind::kName, src_.substr(pos_, j - pos_), line_});
        Advance(j);
        continue;
      }
      if (c == '\'' || c == '"') {
        if (absl::Status st = String(c); !st.ok()) return st;
        continue;
      }
      static const char* kOps[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/",
                                   "*",  "%",  "~",  "[",  "]",  "(",  ")", "{", "}",
                                   ">",  "<",  "=",  ".",  ":",  "|",  ",", ";"};
      bool matched = false;
      for (const char* op : kOps) {
        const std::string o(op);
        if (src_.compare(pos_, o.size(), o) != 0) continue;
        if (o == "(" || o == "[" || o == "{") ++depth;
        if (o == ")" || o == "]" || o == "}") {
          if (depth == 0) return Error("unexpected '" + o + "'");
          --depth;
        }
        tokens_.push_back({Token::Kind::kOp, o, line_});
        Advance(pos_ + o.size());
        matched = true;
        break;
      }
      if (!matched) return Error(absl::StrFormat("unexpected character '%c'", c));
    }
  }

  void Number() {
    size_t j = pos_;
    auto digits = [&] {
      while (j < src_.size() &&
             (std::isdigit(static_cast<unsigned char>(src_[j])) || src_[j] == '_'))
        ++j;
    };
    digits();
    bool is_float = false;
    if (j + 1 < src_.size() && src_[j] == '.' &&
        std::isdigit(static_cast<unsigned char>(src_[j + 1]))) {
      is_float = true;
      ++j;
      digits();
    }
    if (j < src_.size() && (src_[j] == 'e' || src_[j] == 'E')) {
      size_t k = j + 1;
      if (k < src_.size() && (src_[k] == '+' || src_[k] == '-')) ++k;
      if (k < src_.size() && std::isdigit(static_cast<unsigned char>(src_[k]))) {
        is_float = true;
        j = k;
        digits();
      }
    }
    std::string text;
    for (size_t i = pos_; i < j; ++i) {
      if (src_[i] != '_') text += src_[i];
    }
    tokens_.push_back({is_float ? Token::Kind::kFloat : Token::Kind::kInt, text, line_});
    Advance(j);
  }

  // A quoted string with Python's escapes (\n, \t, \\, \', \xNN, \uNNNN, octal...).
  absl::Status String(char quote) {
    std::string value;
    size_t i = pos_ + 1;
    while (true) {
      if (i >= src_.size()) return Error("a string is not closed");
      const char c = src_[i];
      if (c == quote) break;
      if (c != '\\') {
        value += c;
        ++i;
        continue;
      }
      if (i + 1 >= src_.size()) return Error("a string is not closed");
      const char e = src_[i + 1];
      i += 2;
      switch (e) {
        case 'n':
          value += '\n';
          break;
        case 't':
          value += '\t';
          break;
        case 'r':
          value += '\r';
          break;
        case '\\':
          value += '\\';
          break;
        case '\'':
          value += '\'';
          break;
        case '"':
          value += '"';
          break;
        case 'a':
          value += '\a';
          break;
        case 'b':
          value += '\b';
          break;
        case 'f':
          value += '\f';
          break;
        case 'v':
          value += '\v';
          break;
        case '\n':
          break;  // line continuation
        case 'x':
        case 'u':
        case 'U': {
          const int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (i + n > src_.size()) return Error("a truncated \\" + std::string(1, e) + " escape");
          uint32_t cp = 0;
          for (int k = 0; k < n; ++k) {
            const char h = src_[i + k];
            if (!std::isxdigit(static_cast<unsigned char>(h))) {
              return Error("a bad \\" + std::string(1, e) + " escape");
            }
            cp = cp * 16 + (std::isdigit(static_cast<unsigned char>(h))
                                ? h - '0'
                                : (std::tolower(h) - 'a' + 10));
          }
          i += n;
          AppendUtf8(cp, &value);
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            uint32_t cp = e - '0';
            for (int k = 0; k < 2 && i < src_.size() && src_[i] >= '0' && src_[i] <= '7'; ++k) {
              cp = cp * 8 + (src_[i++] - '0');
            }
            AppendUtf8(cp, &value);
          } else if (e == 'N') {
            return Error("\\N{...} escapes are not supported");
          } else {
            value += '\\';
            value += e;
          }
      }
    }
    tokens_.push_back({Token::Kind::kString, value, line_});
    Advance(i + 1);
    return absl::OkStatus();
  }

  std::string src_;
  size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;
  std::vector<Token> tokens_;
};

}  // namespace

absl::StatusOr<std::vector<Token>> Tokenize(const std::string& source) {
  return Lexer(source).Run();
}

}  // namespace specserve::jinja
