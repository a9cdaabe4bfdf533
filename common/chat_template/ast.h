// The syntax tree of a parsed template: expressions and statements.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/chat_template/value.h"

namespace specserve::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,  // literal
    kName,     // name
    kList,     // items
    kTuple,    // items
    kDict,     // items: key, value, key, value...
    kAttr,     // items[0].name
    kItem,     // items[0][items[1]]
    kSlice,    // items[0][items[1]:items[2]:items[3]] (null parts allowed)
    kCall,     // items[0](args, kwargs)
    kFilter,   // items[0] | name(args, kwargs)
    kTest,     // items[0] is [not] name(args, kwargs)
    kNeg,      // -items[0]
    kPos,      // +items[0]
    kNot,      // not items[0]
    kAnd,
    kOr,
    kBinary,   // items[0] name items[1]: + - * / // % ** ~
    kCompare,  // items[0] ops[0] items[1] ops[1] items[2]... (chained)
    kCond,     // items[0] if items[1] else items[2] (items[2] may be null)
  };
  Kind kind = Kind::kLiteral;
  int line = 0;
  Value literal;
  std::string name;
  bool negated = false;  // kTest: `is not`
  std::vector<ExprPtr> items;
  std::vector<std::string> ops;  // kCompare
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Kind {
    kText,         // text
    kPrint,        // {{ expr }}
    kIf,           // conditions[i] -> bodies[i]; a last extra body is the else
    kFor,          // for targets in expr [if filter]: bodies[0], else bodies[1]
    kSet,          // targets = expr; or attr_of.attr = expr
    kSetBlock,     // {% set targets[0] [| filters] %} bodies[0] {% endset %}
    kMacro,        // macro name(params = defaults): bodies[0]
    kCallBlock,    // {% call(params) expr %} bodies[0] {% endcall %}
    kFilterBlock,  // {% filter filters %} bodies[0]
    kWith,         // {% with targets[i] = conditions[i] %} bodies[0]
    kBreak,
    kContinue,
    kBlock,  // bodies[0] as is ({% generation %})
  };
  Kind kind = Kind::kText;
  int line = 0;
  std::string text;
  ExprPtr expr;    // print value, for iterable, set value, call expression
  ExprPtr filter;  // for ... if filter
  std::vector<ExprPtr> conditions;
  std::vector<Body> bodies;
  std::vector<std::string> targets;  // for / set / with names; macro name in `text`
  std::string attr_of;               // set ns.attr: the namespace name (attr in targets[0])
  std::vector<std::string> params;   // macro / call-block parameters
  std::vector<ExprPtr> defaults;     // per parameter; null when none
  std::vector<ExprPtr> filters;      // set block / filter block: kFilter nodes over a null operand
};

struct Program {
  Body body;
};

}  // namespace specserve::jinja
