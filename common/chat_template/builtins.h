// The built-in filters, tests, methods (of str, dict and list) and global functions
// that chat templates use, with Jinja2's and Python's semantics. All throw
// TemplateError on bad arguments.
#pragma once

#include <string>

#include "common/chat_template/value.h"

namespace specserve::jinja {

bool IsKnownFilter(const std::string& name);
bool IsKnownTest(const std::string& name);
// Methods of str, dict or list, and `loop.cycle`.
bool IsKnownMethod(const std::string& name);
bool IsKnownGlobal(const std::string& name);

Value ApplyFilter(const std::string& name, const Value& value, ValueList& args, Kwargs& kwargs);
bool ApplyTest(const std::string& name, const Value& value, ValueList& args, Kwargs& kwargs);
// obj.name(args...); `obj` is a str, dict or list.
Value CallMethod(const Value& obj, const std::string& name, ValueList& args, Kwargs& kwargs);
// obj.name without a call: a dict's key, else a bound method of str/dict/list; undefined
// when neither exists.
Value GetAttribute(const Value& obj, const std::string& name);
// obj[key] (no slice): list/str index (negative from the end), dict key; undefined when absent.
Value GetItem(const Value& obj, const Value& key);
// obj[start:stop:step] of a list or str (by code point); null pointers are omitted parts.
Value Slice(const Value& obj, const Value* start, const Value* stop, const Value* step);
// Python's binary operators: + - * / // % ** and Jinja's ~.
Value BinaryOp(const std::string& op, const Value& a, const Value& b);
// `needle in haystack`.
bool Contains(const Value& haystack, const Value& needle);
// Elements of a for loop over `value` (list items, dict keys, str characters).
ValueList Iterate(const Value& value);
// range, namespace, raise_exception, strftime_now, dict.
Value MakeGlobals();

// Number of code points of UTF-8 text.
int64_t CodePointLength(const std::string& s);

}  // namespace specserve::jinja
