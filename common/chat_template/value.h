// The values a chat template computes with: Python's types as Jinja2 sees them
// (undefined, None, bool, int, float, str, list, dict, callables), with Python's
// rules for truth, equality, ordering, str() and repr(). Lists and dicts are shared
// by reference, as in Python; dicts keep insertion order.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "nlohmann/json.hpp"

namespace specserve::jinja {

class Value;
using ValueList = std::vector<Value>;

// Keyword arguments of a call, in the order written.
using Kwargs = std::vector<std::pair<std::string, Value>>;

// A failure while rendering (also used for `raise_exception`); the engine turns it
// into an absl::Status at its API.
struct TemplateError {
  std::string message;
  bool raised = false;  // by the template's raise_exception(): the message is the template's
};

struct Dict;
using Function = std::function<Value(ValueList& args, Kwargs& kwargs)>;

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kFunction };

  Value() = default;  // undefined
  static Value None();
  Value(bool b);
  Value(int64_t i);
  Value(int i) : Value(static_cast<int64_t>(i)) {}
  Value(double d);
  Value(std::string s);
  Value(const char* s) : Value(std::string(s)) {}
  static Value List(ValueList items = {});
  // A tuple: a list that prints as (a, b).
  static Value Tuple(ValueList items);
  static Value NewDict();
  // A `namespace()` object: a dict whose keys are also assignable attributes.
  static Value Namespace();
  static Value Func(std::string name, Function f);
  // JSON objects become dicts (key order kept), arrays lists.
  static Value FromJson(const nlohmann::ordered_json& json);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_tuple() const { return kind_ == Kind::kList && tuple_; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_function() const { return kind_ == Kind::kFunction; }
  bool is_namespace() const;

  bool as_bool() const { return b_; }
  int64_t as_int() const { return kind_ == Kind::kBool ? (b_ ? 1 : 0) : i_; }
  double as_double() const { return kind_ == Kind::kFloat ? d_ : static_cast<double>(as_int()); }
  const std::string& str() const { return *s_; }
  ValueList& list() const { return *list_; }
  Dict& dict() const { return *dict_; }
  const Function& function() const { return *fn_; }
  const std::string& function_name() const { return *s_; }

  // Python truth: "", 0, [], {}, None, undefined are false.
  bool Truthy() const;
  // Python ==, with 1 == 1.0 == True; undefined equals only undefined.
  bool Equals(const Value& other) const;
  // Python <; throws TemplateError for types Python cannot order.
  bool Less(const Value& other) const;
  // str(value) as Jinja2 prints it ({{ x }}): None, True, 1.5, ['a'], {'k': 1}; undefined
  // prints as "".
  std::string ToString() const;
  // repr(value).
  std::string Repr() const;
  // json.dumps(value, ensure_ascii, indent (<0: none), separators, sort_keys).
  std::string ToJson(bool ensure_ascii, int indent, const std::string& item_separator,
                     const std::string& key_separator, bool sort_keys) const;
  // The Python type name, for error messages.
  std::string TypeName() const;

 private:
  Kind kind_ = Kind::kUndefined;
  bool b_ = false;
  bool tuple_ = false;
  int64_t i_ = 0;
  double d_ = 0;
  std::shared_ptr<const std::string> s_;
  std::shared_ptr<ValueList> list_;
  std::shared_ptr<Dict> dict_;
  std::shared_ptr<const Function> fn_;
};

// An insertion-ordered dict with string, int, bool or None keys (what templates use).
struct Dict {
  std::vector<std::pair<Value, Value>> items;
  bool is_namespace = false;

  // nullptr when absent.
  const Value* Find(const Value& key) const;
  const Value* Find(const std::string& key) const { return Find(Value(key)); }
  void Set(const Value& key, Value value);
};

// Python repr of a float ("1.0", "0.1", "1e-05", "1e+16", "inf", "nan").
std::string FloatRepr(double d);

}  // namespace specserve::jinja
