#include "common/chat_template/builtins.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"

namespace specserve::jinja {
namespace {

[[noreturn]] void Fail(const std::string& message) { throw TemplateError{message}; }

// Positional-or-keyword argument access, as Python binds them.
class Args {
 public:
  Args(const char* fn, ValueList& pos, Kwargs& kw) : fn_(fn), pos_(pos), kw_(kw) {}
  bool Has(size_t i, const char* name) const { return i < pos_.size() || Find(name) != nullptr; }
  Value Get(size_t i, const char* name, Value fallback = Value()) const {
    if (i < pos_.size()) return pos_[i];
    const Value* v = Find(name);
    return v ? *v : fallback;
  }
  size_t positional() const { return pos_.size(); }
  const ValueList& all() const { return pos_; }
  std::string Str(size_t i, const char* name, const std::string& fallback = "") const {
    const Value v = Get(i, name);
    if (v.is_undefined() || v.is_none()) return fallback;
    if (!v.is_string())
      Fail(absl::StrFormat("%s(): %s must be a string, not %s", fn_, name, v.TypeName()));
    return v.str();
  }
  int64_t Int(size_t i, const char* name, int64_t fallback) const {
    const Value v = Get(i, name);
    if (v.is_undefined() || v.is_none()) return fallback;
    if (!v.is_int() && !v.is_bool())
      Fail(absl::StrFormat("%s(): %s must be an integer, not %s", fn_, name, v.TypeName()));
    return v.as_int();
  }
  bool Bool(size_t i, const char* name, bool fallback) const {
    const Value v = Get(i, name);
    return v.is_undefined() ? fallback : v.Truthy();
  }

 private:
  const Value* Find(const char* name) const {
    for (const auto& [k, v] : kw_) {
      if (k == name) return &v;
    }
    return nullptr;
  }
  const char* fn_;
  ValueList& pos_;
  Kwargs& kw_;
};

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// Byte offsets of every code point start of `s`, plus s.size().
std::vector<size_t> CodePointOffsets(const std::string& s) {
  std::vector<size_t> offsets;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) offsets.push_back(i);
  }
  offsets.push_back(s.size());
  return offsets;
}

std::string Strip(const std::string& s, const Value& chars, bool left, bool right) {
  auto strip_char = [&](char c) {
    if (chars.is_undefined() || chars.is_none()) return IsSpace(c);
    return chars.str().find(c) != std::string::npos;
  };
  size_t b = 0, e = s.size();
  if (left) {
    while (b < e && strip_char(s[b])) ++b;
  }
  if (right) {
    while (e > b && strip_char(s[e - 1])) --e;
  }
  return s.substr(b, e - b);
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}
std::string Capitalize(const std::string& s) {
  std::string out = Lower(s);
  if (!out.empty()) out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
  return out;
}
// Python's str.title(): a letter after a non-letter is upper case, others lower case.
std::string PyTitle(const std::string& s) {
  std::string out = s;
  bool prev_letter = false;
  for (char& c : out) {
    const bool letter = std::isalpha(static_cast<unsigned char>(c));
    if (letter) c = static_cast<char>(prev_letter ? std::tolower(c) : std::toupper(c));
    prev_letter = letter;
  }
  return out;
}
// Jinja's title filter: words start after whitespace, '-', '(', '{', '[' or '<'.
std::string JinjaTitle(const std::string& s) {
  std::string out = s;
  bool start = true;
  for (char& c : out) {
    if (IsSpace(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<') {
      start = true;
      continue;
    }
    c = static_cast<char>(start ? std::toupper(static_cast<unsigned char>(c))
                                : std::tolower(static_cast<unsigned char>(c)));
    start = false;
  }
  return out;
}

std::string Replace(const std::string& s, const std::string& from, const std::string& to,
                    int64_t count) {
  std::string out;
  if (from.empty()) {
    // Python inserts `to` between characters (and at both ends).
    const std::vector<size_t> cps = CodePointOffsets(s);
    int64_t n = 0;
    for (size_t i = 0; i + 1 < cps.size(); ++i) {
      if (count < 0 || n < count) {
        out += to;
        ++n;
      }
      out.append(s, cps[i], cps[i + 1] - cps[i]);
    }
    if (count < 0 || n < count) out += to;
    return out;
  }
  size_t pos = 0;
  int64_t n = 0;
  while (count < 0 || n < count) {
    const size_t at = s.find(from, pos);
    if (at == std::string::npos) break;
    out.append(s, pos, at - pos);
    out += to;
    pos = at + from.size();
    ++n;
  }
  out.append(s, pos);
  return out;
}

ValueList Split(const std::string& s, const Value& sep, int64_t maxsplit) {
  ValueList out;
  if (sep.is_undefined() || sep.is_none()) {
    size_t i = 0;
    while (true) {
      while (i < s.size() && IsSpace(s[i])) ++i;
      if (i >= s.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) {
        size_t e = s.size();
        while (e > i && IsSpace(s[e - 1])) --e;
        out.emplace_back(s.substr(i, e - i));
        break;
      }
      size_t j = i;
      while (j < s.size() && !IsSpace(s[j])) ++j;
      out.emplace_back(s.substr(i, j - i));
      i = j;
    }
    return out;
  }
  if (!sep.is_string()) Fail("split(): the separator must be a string");
  const std::string& d = sep.str();
  if (d.empty()) Fail("split(): empty separator");
  size_t pos = 0;
  while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
    const size_t at = s.find(d, pos);
    if (at == std::string::npos) break;
    out.emplace_back(s.substr(pos, at - pos));
    pos = at + d.size();
  }
  out.emplace_back(s.substr(pos));
  return out;
}

ValueList RSplit(const std::string& s, const Value& sep, int64_t maxsplit) {
  if (maxsplit < 0 || sep.is_undefined() || sep.is_none()) return Split(s, sep, maxsplit);
  if (!sep.is_string() || sep.str().empty()) Fail("rsplit(): bad separator");
  const std::string& d = sep.str();
  ValueList out;
  size_t end = s.size();
  while (static_cast<int64_t>(out.size()) < maxsplit) {
    if (end < d.size()) break;
    const size_t at = s.rfind(d, end - d.size());
    if (at == std::string::npos) break;
    out.insert(out.begin(), Value(s.substr(at + d.size(), end - at - d.size())));
    end = at;
  }
  out.insert(out.begin(), Value(s.substr(0, end)));
  return out;
}

// Python's str.splitlines().
std::vector<std::string> SplitLines(const std::string& s) {
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '\n' || c == '\r' || c == '\v' || c == '\f' || c == '\x1c' || c == '\x1d' ||
        c == '\x1e') {
      lines.push_back(s.substr(start, i - start));
      if (c == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
      start = i + 1;
    }
  }
  if (start < s.size()) lines.push_back(s.substr(start));
  return lines;
}

bool AffixMatch(const std::string& s, const Value& affix, bool prefix) {
  auto one = [&](const Value& a) {
    if (!a.is_string())
      Fail("startswith/endswith: the argument must be a string or a tuple of strings");
    const std::string& x = a.str();
    if (x.size() > s.size()) return false;
    return prefix ? s.compare(0, x.size(), x) == 0
                  : s.compare(s.size() - x.size(), x.size(), x) == 0;
  };
  if (affix.is_list()) {
    for (const Value& a : affix.list()) {
      if (one(a)) return true;
    }
    return false;
  }
  return one(affix);
}

std::string HtmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// Python's "%" string formatting for %s %r %d %i %f %x %%.
std::string PercentFormat(const std::string& fmt, const Value& args) {
  ValueList values = args.is_tuple() ? args.list() : ValueList{args};
  size_t next = 0;
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    size_t j = i + 1;
    std::string spec;
    while (j < fmt.size() &&
           (std::isdigit(static_cast<unsigned char>(fmt[j])) || fmt[j] == '.' || fmt[j] == '-'))
      spec += fmt[j++];
    if (j >= fmt.size()) Fail("incomplete format");
    const char conv = fmt[j];
    i = j;
    if (conv == '%') {
      out += '%';
      continue;
    }
    if (next >= values.size()) Fail("not enough arguments for format string");
    const Value& v = values[next++];
    char buf[512];
    switch (conv) {
      case 's':
        out += v.ToString();
        break;
      case 'r':
        out += v.Repr();
        break;
      case 'd':
      case 'i':
        std::snprintf(buf, sizeof(buf), ("%" + spec + "lld").c_str(),
                      static_cast<long long>(v.is_float() ? static_cast<int64_t>(v.as_double())
                                                          : v.as_int()));
        out += buf;
        break;
      case 'f':
        std::snprintf(buf, sizeof(buf), ("%" + spec + "f").c_str(), v.as_double());
        out += buf;
        break;
      case 'x':
        std::snprintf(buf, sizeof(buf), ("%" + spec + "llx").c_str(),
                      static_cast<long long>(v.as_int()));
        out += buf;
        break;
      default:
        Fail(absl::StrFormat("unsupported format character '%c'", conv));
    }
  }
  if (next < values.size()) Fail("not all arguments converted during string formatting");
  return out;
}

// Python's str.format with {} / {0} / {name} fields (no format specs).
std::string BraceFormat(const std::string& fmt, ValueList& args, Kwargs& kwargs) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    const char c = fmt[i];
    if (c == '{' && i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out += '{';
      ++i;
      continue;
    }
    if (c == '}' && i + 1 < fmt.size() && fmt[i + 1] == '}') {
      out += '}';
      ++i;
      continue;
    }
    if (c != '{') {
      out += c;
      continue;
    }
    const size_t end = fmt.find('}', i);
    if (end == std::string::npos) Fail("format(): unmatched '{'");
    const std::string field = fmt.substr(i + 1, end - i - 1);
    if (field.find(':') != std::string::npos || field.find('!') != std::string::npos) {
      Fail("format(): format specifications are not supported");
    }
    Value v;
    if (field.empty()) {
      if (auto_index >= args.size()) Fail("format(): not enough arguments");
      v = args[auto_index++];
    } else if (std::isdigit(static_cast<unsigned char>(field[0]))) {
      size_t k = 0;
      if (!absl::SimpleAtoi(field, &k) || k >= args.size()) {
        Fail(absl::StrFormat("format(): no argument {%s} among %d", field, args.size()));
      }
      v = args[k];
    } else {
      bool found = false;
      for (auto& [key, val] : kwargs) {
        if (key == field) {
          v = val;
          found = true;
        }
      }
      if (!found) Fail("format(): no argument '" + field + "'");
    }
    out += v.ToString();
    i = end;
  }
  return out;
}

int64_t Length(const Value& v) {
  if (v.is_string()) return CodePointLength(v.str());
  if (v.is_list()) return static_cast<int64_t>(v.list().size());
  if (v.is_dict()) return static_cast<int64_t>(v.dict().items.size());
  if (v.is_undefined()) return 0;
  Fail("object of type '" + v.TypeName() + "' has no len()");
}

// An attribute path "a.b" or an integer index, as filters' attribute= accepts it.
Value AttributePath(const Value& item, const Value& attribute) {
  if (attribute.is_int()) return GetItem(item, attribute);
  Value v = item;
  const std::string path = attribute.ToString();
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string part =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    // An all-digit part is an index; one beyond int64 indexes nothing there is.
    int64_t index = 0;
    const bool digits = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit);
    if (digits && !absl::SimpleAtoi(part, &index)) return Value();
    v = digits ? GetItem(v, Value(index)) : GetItem(v, Value(part));
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}

// Sort key comparison with Jinja's case-insensitive default for strings.
bool SortLess(const Value& a, const Value& b, bool case_sensitive) {
  if (!case_sensitive && a.is_string() && b.is_string()) return Lower(a.str()) < Lower(b.str());
  return a.Less(b);
}

const std::set<std::string>& Filters() {
  static const std::set<std::string> names = {
      "abs",      "attr",  "capitalize", "center", "count",      "d",           "default",
      "dictsort", "e",     "escape",     "first",  "float",      "forceescape", "format",
      "indent",   "int",   "items",      "join",   "last",       "length",      "list",
      "lower",    "map",   "max",        "min",    "reject",     "rejectattr",  "replace",
      "reverse",  "round", "safe",       "select", "selectattr", "sort",        "string",
      "sum",      "title", "tojson",     "trim",   "unique",     "upper",       "wordcount"};
  return names;
}

const std::set<std::string>& Tests() {
  static const std::set<std::string> names = {
      "boolean", "callable", "defined",  "divisibleby", "eq",       "equalto", "escaped",
      "even",    "false",    "filter",   "float",       "ge",       "gt",      "greaterthan",
      "in",      "integer",  "iterable", "le",          "lessthan", "lower",   "lt",
      "mapping", "ne",       "none",     "number",      "odd",      "sameas",  "sequence",
      "string",  "test",     "true",     "undefined",   "upper",    "==",      "!=",
      "<",       "<=",       ">",        ">="};
  return names;
}

const std::set<std::string>& StringMethods() {
  static const std::set<std::string> names = {
      "strip",    "lstrip",  "rstrip",  "split",   "rsplit",  "startswith",
      "endswith", "replace", "upper",   "lower",   "title",   "capitalize",
      "find",     "rfind",   "count",   "join",    "format",  "splitlines",
      "isdigit",  "isalpha", "isalnum", "isspace", "isupper", "islower"};
  return names;
}

const std::set<std::string>& DictMethods() {
  static const std::set<std::string> names = {"items", "keys", "values", "get"};
  return names;
}

const std::set<std::string>& ListMethods() {
  static const std::set<std::string> names = {"index", "count"};
  return names;
}

bool TestByName(const std::string& name, const Value& v, ValueList& args, Kwargs& kwargs);

Value Select(const Value& seq, ValueList& args, Kwargs& kwargs, bool attr, bool keep_matching) {
  ValueList out;
  if (attr && args.empty()) Fail("selectattr/rejectattr need an attribute");
  if (!seq.Truthy()) return Value::List();  // Jinja2 iterates only a true sequence
  for (const Value& item : Iterate(seq)) {
    const Value subject = attr ? AttributePath(item, args[0]) : item;
    const size_t test_at = attr ? 1 : 0;
    bool match;
    if (args.size() <= test_at) {
      match = subject.Truthy();
    } else {
      ValueList test_args(args.begin() + test_at + 1, args.end());
      Kwargs none;
      match = TestByName(args[test_at].ToString(), subject, test_args, none);
    }
    if (match == keep_matching) out.push_back(item);
  }
  return Value::List(std::move(out));
}

bool TestByName(const std::string& name, const Value& v, ValueList& args, Kwargs& kwargs) {
  if (!Tests().count(name)) Fail("no test named '" + name + "'");
  return ApplyTest(name, v, args, kwargs);
}

}  // namespace

int64_t CodePointLength(const std::string& s) {
  int64_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

bool IsKnownFilter(const std::string& name) { return Filters().count(name) > 0; }
bool IsKnownTest(const std::string& name) { return Tests().count(name) > 0; }
bool IsKnownMethod(const std::string& name) {
  return StringMethods().count(name) || DictMethods().count(name) || ListMethods().count(name) ||
         name == "cycle";
}
bool IsKnownGlobal(const std::string& name) {
  return name == "range" || name == "namespace" || name == "raise_exception" ||
         name == "strftime_now" || name == "dict";
}

ValueList Iterate(const Value& v) {
  if (v.is_list()) return v.list();
  if (v.is_dict()) {
    ValueList keys;
    for (const auto& [k, val] : v.dict().items) keys.push_back(k);
    return keys;
  }
  if (v.is_string()) {
    ValueList chars;
    const std::vector<size_t> cps = CodePointOffsets(v.str());
    for (size_t i = 0; i + 1 < cps.size(); ++i)
      chars.emplace_back(v.str().substr(cps[i], cps[i + 1] - cps[i]));
    return chars;
  }
  if (v.is_undefined()) return {};
  Fail("'" + v.TypeName() + "' object is not iterable");
}

bool Contains(const Value& haystack, const Value& needle) {
  if (haystack.is_string()) {
    if (!needle.is_string())
      Fail("'in <string>' requires string as left operand, not " + needle.TypeName());
    return haystack.str().find(needle.str()) != std::string::npos;
  }
  if (haystack.is_list()) {
    for (const Value& item : haystack.list()) {
      if (item.Equals(needle)) return true;
    }
    return false;
  }
  if (haystack.is_dict()) return haystack.dict().Find(needle) != nullptr;
  if (haystack.is_undefined()) return false;
  Fail("argument of type '" + haystack.TypeName() + "' is not iterable");
}

Value GetItem(const Value& obj, const Value& key) {
  if (obj.is_list() || obj.is_string()) {
    if (!key.is_int() && !key.is_bool()) return Value();
    int64_t i = key.as_int();
    if (obj.is_list()) {
      const auto n = static_cast<int64_t>(obj.list().size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value();
      return obj.list()[i];
    }
    const std::vector<size_t> cps = CodePointOffsets(obj.str());
    const auto n = static_cast<int64_t>(cps.size()) - 1;
    if (i < 0) i += n;
    if (i < 0 || i >= n) return Value();
    return Value(obj.str().substr(cps[i], cps[i + 1] - cps[i]));
  }
  if (obj.is_dict()) {
    const Value* v = obj.dict().Find(key);
    if (v != nullptr) return *v;
    if (key.is_string() && !obj.is_namespace() && DictMethods().count(key.str()))
      return GetAttribute(obj, key.str());
    return Value();
  }
  return Value();
}

Value GetAttribute(const Value& obj, const std::string& name) {
  auto bound = [&obj, &name] {
    Value self = obj;
    std::string method = name;
    return Value::Func(name, [self, method](ValueList& args, Kwargs& kwargs) {
      return CallMethod(self, method, args, kwargs);
    });
  };
  if (obj.is_dict()) {
    if (!obj.is_namespace() && DictMethods().count(name)) return bound();
    const Value* v = obj.dict().Find(name);
    return v ? *v : Value();
  }
  if (obj.is_string() && StringMethods().count(name)) return bound();
  if (obj.is_list() && ListMethods().count(name)) return bound();
  return Value();
}

Value Slice(const Value& obj, const Value* start, const Value* stop, const Value* step) {
  auto opt = [](const Value* v) -> std::optional<int64_t> {
    if (v == nullptr || v->is_none()) return std::nullopt;
    if (!v->is_int() && !v->is_bool()) Fail("slice indices must be integers or None");
    return v->as_int();
  };
  const std::optional<int64_t> a = opt(start), b = opt(stop), c = opt(step);
  const int64_t st = c.value_or(1);
  if (st == 0) Fail("slice step cannot be zero");
  std::vector<size_t> cps;
  int64_t n;
  if (obj.is_string()) {
    cps = CodePointOffsets(obj.str());
    n = static_cast<int64_t>(cps.size()) - 1;
  } else if (obj.is_list()) {
    n = static_cast<int64_t>(obj.list().size());
  } else {
    Fail("'" + obj.TypeName() + "' object is not subscriptable");
  }
  auto clamp = [n, st](std::optional<int64_t> x, bool is_start) -> int64_t {
    if (!x) return st > 0 ? (is_start ? 0 : n) : (is_start ? n - 1 : -1);
    int64_t v = *x;
    if (v < 0) v += n;
    if (st > 0) return std::clamp<int64_t>(v, 0, n);
    return std::clamp<int64_t>(v, -1, n - 1);
  };
  const int64_t from = clamp(a, true), to = clamp(b, false);
  std::vector<int64_t> idx;
  for (int64_t i = from; st > 0 ? i < to : i > to; i += st) idx.push_back(i);
  if (obj.is_string()) {
    std::string out;
    for (int64_t i : idx) out.append(obj.str(), cps[i], cps[i + 1] - cps[i]);
    return Value(out);
  }
  ValueList out;
  for (int64_t i : idx) out.push_back(obj.list()[i]);
  return obj.is_tuple() ? Value::Tuple(std::move(out)) : Value::List(std::move(out));
}

Value BinaryOp(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") return Value(a.ToString() + b.ToString());
  const bool nums = (a.is_number() || a.is_bool()) && (b.is_number() || b.is_bool());
  const bool floats = nums && (a.is_float() || b.is_float());
  auto type_error = [&]() {
    Fail(absl::StrFormat("unsupported operand type(s) for %s: '%s' and '%s'", op, a.TypeName(),
                         b.TypeName()));
  };
  if (op == "+") {
    if (nums) return floats ? Value(a.as_double() + b.as_double()) : Value(a.as_int() + b.as_int());
    if (a.is_string() && b.is_string()) return Value(a.str() + b.str());
    if (a.is_list() && b.is_list()) {
      ValueList items = a.list();
      items.insert(items.end(), b.list().begin(), b.list().end());
      return a.is_tuple() ? Value::Tuple(std::move(items)) : Value::List(std::move(items));
    }
    type_error();
  }
  if (op == "-") {
    if (!nums) type_error();
    return floats ? Value(a.as_double() - b.as_double()) : Value(a.as_int() - b.as_int());
  }
  if (op == "*") {
    if (nums) return floats ? Value(a.as_double() * b.as_double()) : Value(a.as_int() * b.as_int());
    const Value* seq = a.is_string() || a.is_list() ? &a : &b;
    const Value* times = seq == &a ? &b : &a;
    if ((seq->is_string() || seq->is_list()) && (times->is_int() || times->is_bool())) {
      const int64_t n = std::max<int64_t>(0, times->as_int());
      if (seq->is_string()) {
        if (static_cast<double>(seq->str().size()) * n > (64 << 20))
          Fail("string repetition too large");
        std::string out;
        for (int64_t i = 0; i < n; ++i) out += seq->str();
        return Value(out);
      }
      ValueList out;
      for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq->list().begin(), seq->list().end());
      return Value::List(std::move(out));
    }
    type_error();
  }
  if (op == "/") {
    if (!nums) type_error();
    if (b.as_double() == 0) Fail("division by zero");
    return Value(a.as_double() / b.as_double());
  }
  if (op == "//") {
    if (!nums) type_error();
    if (b.as_double() == 0) Fail("integer division or modulo by zero");
    if (floats) return Value(std::floor(a.as_double() / b.as_double()));
    const int64_t x = a.as_int(), y = b.as_int();
    int64_t q = x / y;
    if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
    return Value(q);
  }
  if (op == "%") {
    if (a.is_string()) return Value(PercentFormat(a.str(), b));
    if (!nums) type_error();
    if (b.as_double() == 0) Fail("integer division or modulo by zero");
    if (floats) {
      double r = std::fmod(a.as_double(), b.as_double());
      if (r != 0 && ((r < 0) != (b.as_double() < 0))) r += b.as_double();
      return Value(r);
    }
    int64_t r = a.as_int() % b.as_int();
    if (r != 0 && ((r < 0) != (b.as_int() < 0))) r += b.as_int();
    return Value(r);
  }
  if (op == "**") {
    if (!nums) type_error();
    if (!floats && b.as_int() >= 0) {
      int64_t r = 1;
      for (int64_t i = 0; i < b.as_int() && i < 64; ++i) r *= a.as_int();
      return Value(r);
    }
    return Value(std::pow(a.as_double(), b.as_double()));
  }
  Fail("unknown operator " + op);
}

bool ApplyTest(const std::string& name, const Value& v, ValueList& pos, Kwargs& kw) {
  Args args(name.c_str(), pos, kw);
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "number") return v.is_number() || v.is_bool();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "iterable") return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined();
  if (name == "sequence") return v.is_list() || v.is_dict() || v.is_string();
  if (name == "callable") return v.is_function();
  if (name == "escaped") return false;
  if (name == "lower") return v.is_string() && Lower(v.str()) == v.str();
  if (name == "upper") return v.is_string() && Upper(v.str()) == v.str();
  if (name == "filter") return IsKnownFilter(v.ToString());
  if (name == "test") return IsKnownTest(v.ToString());
  if (name == "odd" || name == "even") {
    if (!v.is_int() && !v.is_bool()) Fail("odd/even need an integer");
    return (v.as_int() % 2 != 0) == (name == "odd");
  }
  if (name == "divisibleby") {
    const int64_t n = args.Int(0, "num", 0);
    if (n == 0) Fail("divisibleby(0)");
    return v.as_int() % n == 0;
  }
  const Value other = args.Get(0, "other");
  if (name == "eq" || name == "equalto" || name == "==") return v.Equals(other);
  if (name == "ne" || name == "!=") return !v.Equals(other);
  if (name == "lt" || name == "lessthan" || name == "<") return v.Less(other);
  if (name == "le" || name == "<=") return v.Less(other) || v.Equals(other);
  if (name == "gt" || name == "greaterthan" || name == ">") return other.Less(v);
  if (name == "ge" || name == ">=") return other.Less(v) || v.Equals(other);
  if (name == "in") return Contains(args.Get(0, "seq"), v);
  if (name == "sameas") {
    if (v.kind() != other.kind()) return false;
    if (v.is_list() || v.is_dict())
      return v.Equals(other) &&
             (v.is_list() ? &v.list() == &other.list() : &v.dict() == &other.dict());
    return v.Equals(other) || (v.is_none() && other.is_none());
  }
  Fail("no test named '" + name + "'");
}

Value ApplyFilter(const std::string& name, const Value& v, ValueList& pos, Kwargs& kw) {
  Args args(name.c_str(), pos, kw);
  auto text = [&]() { return v.ToString(); };
  if (name == "default" || name == "d") {
    const bool boolean = args.Bool(1, "boolean", false);
    if (v.is_undefined() || (boolean && !v.Truthy()))
      return args.Get(0, "default_value", Value(""));
    return v;
  }
  if (name == "length" || name == "count") return Value(Length(v));
  if (name == "trim") return Value(Strip(text(), args.Get(0, "chars"), true, true));
  if (name == "upper") return Value(Upper(text()));
  if (name == "lower") return Value(Lower(text()));
  if (name == "capitalize") return Value(Capitalize(text()));
  if (name == "title") return Value(JinjaTitle(text()));
  if (name == "string") return Value(text());
  if (name == "safe") return v;
  if (name == "e" || name == "escape" || name == "forceescape") return Value(HtmlEscape(text()));
  if (name == "tojson") {
    const Value indent = args.Get(1, "indent");
    const Value separators = args.Get(2, "separators");
    const int ind = indent.is_int() ? static_cast<int>(indent.as_int()) : -1;
    if (!indent.is_undefined() && !indent.is_none() && !indent.is_int())
      Fail("tojson(): indent must be an integer");
    std::string item_sep = ind >= 0 ? "," : ", ", key_sep = ": ";
    if (separators.is_list() && separators.list().size() == 2) {
      item_sep = separators.list()[0].ToString();
      key_sep = separators.list()[1].ToString();
    }
    return Value(v.ToJson(args.Bool(0, "ensure_ascii", false), ind, item_sep, key_sep,
                          args.Bool(3, "sort_keys", false)));
  }
  if (name == "replace") {
    return Value(Replace(text(), args.Str(0, "old"), args.Str(1, "new"), args.Int(2, "count", -1)));
  }
  if (name == "first" || name == "last") {
    const ValueList items = Iterate(v);
    if (items.empty()) return Value();
    return name == "first" ? items.front() : items.back();
  }
  if (name == "list") return Value::List(Iterate(v));
  if (name == "reverse") {
    if (v.is_string()) {
      ValueList chars = Iterate(v);
      std::string out;
      for (auto it = chars.rbegin(); it != chars.rend(); ++it) out += it->str();
      return Value(out);
    }
    ValueList items = Iterate(v);
    std::reverse(items.begin(), items.end());
    return Value::List(std::move(items));
  }
  if (name == "join") {
    const std::string sep = args.Str(0, "d");
    const Value attribute = args.Get(1, "attribute");
    std::string out;
    bool first = true;
    for (const Value& item : Iterate(v)) {
      if (!first) out += sep;
      first = false;
      out +=
          (attribute.is_undefined() || attribute.is_none() ? item : AttributePath(item, attribute))
              .ToString();
    }
    return Value(out);
  }
  if (name == "items") {
    if (v.is_undefined()) return Value::List();
    if (!v.is_dict()) Fail("items(): expected a dict, not " + v.TypeName());
    ValueList out;
    for (const auto& [k, val] : v.dict().items) out.push_back(Value::Tuple({k, val}));
    return Value::List(std::move(out));
  }
  if (name == "dictsort") {
    if (!v.is_dict()) Fail("dictsort(): expected a dict");
    const bool cs = args.Bool(0, "case_sensitive", false);
    const bool by_value = args.Str(1, "by", "key") == "value";
    const bool reverse = args.Bool(2, "reverse", false);
    ValueList out;
    for (const auto& [k, val] : v.dict().items) out.push_back(Value::Tuple({k, val}));
    std::stable_sort(out.begin(), out.end(), [&](const Value& a, const Value& b) {
      const Value& x = a.list()[by_value ? 1 : 0];
      const Value& y = b.list()[by_value ? 1 : 0];
      return reverse ? SortLess(y, x, cs) : SortLess(x, y, cs);
    });
    return Value::List(std::move(out));
  }
  if (name == "map") {
    ValueList out;
    if (!v.Truthy()) return Value::List();  // Jinja2 maps only a true sequence
    const Value attribute = args.Get(99, "attribute");
    if (!attribute.is_undefined()) {
      const Value fallback = args.Get(99, "default");
      for (const Value& item : Iterate(v)) {
        Value x = AttributePath(item, attribute);
        out.push_back(x.is_undefined() && !fallback.is_undefined() ? fallback : x);
      }
      return Value::List(std::move(out));
    }
    if (args.positional() == 0) Fail("map() needs a filter name or attribute=");
    const std::string filter = pos[0].ToString();
    if (!IsKnownFilter(filter)) Fail("map(): no filter named '" + filter + "'");
    for (const Value& item : Iterate(v)) {
      ValueList rest(pos.begin() + 1, pos.end());
      Kwargs none;
      out.push_back(ApplyFilter(filter, item, rest, none));
    }
    return Value::List(std::move(out));
  }
  if (name == "select") return Select(v, pos, kw, false, true);
  if (name == "reject") return Select(v, pos, kw, false, false);
  if (name == "selectattr") return Select(v, pos, kw, true, true);
  if (name == "rejectattr") return Select(v, pos, kw, true, false);
  if (name == "unique" || name == "sort" || name == "min" || name == "max") {
    const bool reverse = name == "sort" && args.Bool(0, "reverse", false);
    const bool cs = args.Bool(name == "sort" ? 1 : 0, "case_sensitive", false);
    const Value attribute = args.Get(name == "sort" ? 2 : 1, "attribute");
    auto key = [&](const Value& item) {
      return attribute.is_undefined() || attribute.is_none() ? item
                                                             : AttributePath(item, attribute);
    };
    ValueList items = Iterate(v);
    if (name == "unique") {
      ValueList out;
      std::vector<Value> seen;
      for (const Value& item : items) {
        Value k = key(item);
        if (!cs && k.is_string()) k = Value(Lower(k.str()));
        bool dup = false;
        for (const Value& s : seen) dup |= s.Equals(k);
        if (!dup) {
          seen.push_back(k);
          out.push_back(item);
        }
      }
      return Value::List(std::move(out));
    }
    std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
      return reverse ? SortLess(key(b), key(a), cs) : SortLess(key(a), key(b), cs);
    });
    if (name == "sort") return Value::List(std::move(items));
    if (items.empty()) return Value();
    return name == "min" ? items.front() : items.back();
  }
  if (name == "sum") {
    const Value attribute = args.Get(0, "attribute");
    Value total = args.Get(1, "start", Value(int64_t{0}));
    for (const Value& item : Iterate(v)) {
      total = BinaryOp(
          "+", total,
          attribute.is_undefined() || attribute.is_none() ? item : AttributePath(item, attribute));
    }
    return total;
  }
  if (name == "abs") {
    if (v.is_float()) return Value(std::fabs(v.as_double()));
    if (v.is_int() || v.is_bool()) return Value(static_cast<int64_t>(std::llabs(v.as_int())));
    Fail("bad operand type for abs(): '" + v.TypeName() + "'");
  }
  if (name == "int") {
    const Value fallback = args.Get(0, "default", Value(int64_t{0}));
    if (v.is_int() || v.is_bool()) return Value(v.as_int());
    if (v.is_float()) return Value(static_cast<int64_t>(v.as_double()));
    if (v.is_string()) {
      try {
        size_t used = 0;
        const std::string s = Strip(v.str(), Value(), true, true);
        const int64_t i = std::stoll(s, &used, static_cast<int>(args.Int(1, "base", 10)));
        if (used == s.size()) return Value(i);
        const double d = std::stod(s, &used);
        if (used == s.size()) return Value(static_cast<int64_t>(d));
      } catch (const std::exception&) {
      }
    }
    return fallback;
  }
  if (name == "float") {
    const Value fallback = args.Get(0, "default", Value(0.0));
    if (v.is_number() || v.is_bool()) return Value(v.as_double());
    if (v.is_string()) {
      try {
        size_t used = 0;
        const std::string s = Strip(v.str(), Value(), true, true);
        const double d = std::stod(s, &used);
        if (used == s.size()) return Value(d);
      } catch (const std::exception&) {
      }
    }
    return fallback;
  }
  if (name == "round") {
    const int64_t precision = args.Int(0, "precision", 0);
    const std::string method = args.Str(1, "method", "common");
    const double scale = std::pow(10.0, static_cast<double>(precision));
    const double x = v.as_double() * scale;
    double r = method == "ceil" ? std::ceil(x) : method == "floor" ? std::floor(x) : std::round(x);
    return Value(r / scale);
  }
  if (name == "format") return Value(PercentFormat(text(), Value::Tuple(pos)));
  if (name == "center") {
    const int64_t width = args.Int(0, "width", 80);
    std::string s = text();
    const int64_t len = CodePointLength(s);
    if (width <= len) return Value(s);
    const int64_t total = width - len;
    const int64_t left = total / 2 + (total & width & 1);
    return Value(std::string(left, ' ') + s + std::string(total - left, ' '));
  }
  if (name == "indent") {
    const Value w = args.Get(0, "width", Value(int64_t{4}));
    const std::string indention =
        w.is_string() ? w.str() : std::string(std::max<int64_t>(0, w.as_int()), ' ');
    const bool first = args.Bool(1, "first", false);
    const bool blank = args.Bool(2, "blank", false);
    const std::vector<std::string> lines = SplitLines(text() + "\n");
    std::string out;
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i > 0) {
        out += "\n";
        if (blank || !lines[i].empty()) out += indention;
      }
      out += lines[i];
    }
    if (first) out = indention + out;
    return Value(out);
  }
  if (name == "wordcount") return Value(static_cast<int64_t>(Split(text(), Value(), -1).size()));
  if (name == "attr") return GetAttribute(v, args.Str(0, "name"));
  Fail("no filter named '" + name + "'");
}

Value CallMethod(const Value& obj, const std::string& name, ValueList& pos, Kwargs& kw) {
  Args args(name.c_str(), pos, kw);
  if (obj.is_string()) {
    const std::string& s = obj.str();
    if (name == "strip") return Value(Strip(s, args.Get(0, "chars"), true, true));
    if (name == "lstrip") return Value(Strip(s, args.Get(0, "chars"), true, false));
    if (name == "rstrip") return Value(Strip(s, args.Get(0, "chars"), false, true));
    if (name == "split")
      return Value::List(Split(s, args.Get(0, "sep"), args.Int(1, "maxsplit", -1)));
    if (name == "rsplit")
      return Value::List(RSplit(s, args.Get(0, "sep"), args.Int(1, "maxsplit", -1)));
    if (name == "startswith") return Value(AffixMatch(s, args.Get(0, "prefix"), true));
    if (name == "endswith") return Value(AffixMatch(s, args.Get(0, "suffix"), false));
    if (name == "replace")
      return Value(Replace(s, args.Str(0, "old"), args.Str(1, "new"), args.Int(2, "count", -1)));
    if (name == "upper") return Value(Upper(s));
    if (name == "lower") return Value(Lower(s));
    if (name == "title") return Value(PyTitle(s));
    if (name == "capitalize") return Value(Capitalize(s));
    if (name == "find" || name == "rfind") {
      const std::string sub = args.Str(0, "sub");
      const size_t at = name == "find" ? s.find(sub) : s.rfind(sub);
      return Value(at == std::string::npos ? int64_t{-1} : CodePointLength(s.substr(0, at)));
    }
    if (name == "count") {
      const std::string sub = args.Str(0, "sub");
      if (sub.empty()) return Value(CodePointLength(s) + 1);
      int64_t n = 0;
      for (size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
      return Value(n);
    }
    if (name == "join") {
      std::string out;
      bool first = true;
      for (const Value& item : Iterate(args.Get(0, "iterable"))) {
        if (!item.is_string())
          Fail("join(): sequence items must be strings, not " + item.TypeName());
        if (!first) out += s;
        first = false;
        out += item.str();
      }
      return Value(out);
    }
    if (name == "format") return Value(BraceFormat(s, pos, kw));
    if (name == "splitlines") {
      ValueList out;
      for (const std::string& line : SplitLines(s)) out.emplace_back(line);
      return Value::List(std::move(out));
    }
    auto all = [&](int (*pred)(int)) {
      if (s.empty()) return false;
      for (char c : s) {
        if (!pred(static_cast<unsigned char>(c))) return false;
      }
      return true;
    };
    if (name == "isdigit") return Value(all(::isdigit));
    if (name == "isalpha") return Value(all(::isalpha));
    if (name == "isalnum") return Value(all(::isalnum));
    if (name == "isspace") return Value(all(::isspace));
    if (name == "isupper" || name == "islower") {
      bool cased = false;
      for (char c : s) {
        if (std::isalpha(static_cast<unsigned char>(c))) {
          cased = true;
          if ((name == "isupper") != static_cast<bool>(std::isupper(static_cast<unsigned char>(c))))
            return Value(false);
        }
      }
      return Value(cased);
    }
  } else if (obj.is_dict() && !obj.is_namespace()) {
    const Dict& d = obj.dict();
    if (name == "items") {
      ValueList out;
      for (const auto& [k, v] : d.items) out.push_back(Value::Tuple({k, v}));
      return Value::List(std::move(out));
    }
    if (name == "keys" || name == "values") {
      ValueList out;
      for (const auto& [k, v] : d.items) out.push_back(name == "keys" ? k : v);
      return Value::List(std::move(out));
    }
    if (name == "get") {
      const Value* v = d.Find(args.Get(0, "key"));
      return v ? *v : args.Get(1, "default", Value::None());
    }
  } else if (obj.is_list()) {
    const Value x = args.Get(0, "value");
    if (name == "count") {
      int64_t n = 0;
      for (const Value& item : obj.list()) n += item.Equals(x);
      return Value(n);
    }
    if (name == "index") {
      for (size_t i = 0; i < obj.list().size(); ++i) {
        if (obj.list()[i].Equals(x)) return Value(static_cast<int64_t>(i));
      }
      Fail(x.Repr() + " is not in list");
    }
  }
  Fail("'" + obj.TypeName() + "' object has no attribute '" + name + "'");
}

Value MakeGlobals() {
  Value g = Value::NewDict();
  g.dict().Set(Value("range"), Value::Func("range", [](ValueList& pos, Kwargs&) {
                 if (pos.empty() || pos.size() > 3) Fail("range() takes 1 to 3 arguments");
                 for (const Value& p : pos) {
                   if (!p.is_int() && !p.is_bool()) Fail("range(): arguments must be integers");
                 }
                 int64_t start = 0, stop, step = 1;
                 if (pos.size() == 1) {
                   stop = pos[0].as_int();
                 } else {
                   start = pos[0].as_int();
                   stop = pos[1].as_int();
                   if (pos.size() == 3) step = pos[2].as_int();
                 }
                 if (step == 0) Fail("range() arg 3 must not be zero");
                 ValueList out;
                 for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
                   if (out.size() >= 100000) Fail("range() is limited to 100000 items");
                   out.emplace_back(i);
                 }
                 return Value::List(std::move(out));
               }));
  g.dict().Set(Value("namespace"), Value::Func("namespace", [](ValueList& pos, Kwargs& kw) {
                 Value ns = Value::Namespace();
                 for (const Value& p : pos) {
                   if (!p.is_dict()) Fail("namespace(): positional arguments must be dicts");
                   for (const auto& [k, v] : p.dict().items) ns.dict().Set(k, v);
                 }
                 for (auto& [k, v] : kw) ns.dict().Set(Value(k), v);
                 return ns;
               }));
  g.dict().Set(Value("dict"), Value::Func("dict", [](ValueList& pos, Kwargs& kw) {
                 Value d = Value::NewDict();
                 for (const Value& p : pos) {
                   if (!p.is_dict()) Fail("dict(): positional arguments must be dicts");
                   for (const auto& [k, v] : p.dict().items) d.dict().Set(k, v);
                 }
                 for (auto& [k, v] : kw) d.dict().Set(Value(k), v);
                 return d;
               }));
  g.dict().Set(
      Value("raise_exception"),
      Value::Func("raise_exception", [](ValueList& pos, Kwargs&) -> Value {
        throw TemplateError{pos.empty() ? "raise_exception() called" : pos[0].ToString(), true};
      }));
  g.dict().Set(Value("strftime_now"), Value::Func("strftime_now", [](ValueList& pos, Kwargs&) {
                 if (pos.empty() || !pos[0].is_string())
                   Fail("strftime_now() needs a format string");
                 const std::time_t now = std::time(nullptr);
                 std::tm tm{};
                 localtime_r(&now, &tm);
                 char buf[256];
                 const size_t n = std::strftime(buf, sizeof(buf), pos[0].str().c_str(), &tm);
                 return Value(std::string(buf, n));
               }));
  return g;
}

}  // namespace specserve::jinja
