#include "common/chat_template/evaluator.h"

#include <memory>
#include <unordered_map>

#include "absl/strings/str_format.h"
#include "common/chat_template/builtins.h"

namespace specserve::jinja {
namespace {

struct Frame {
  std::unordered_map<std::string, Value> vars;
};

enum class Flow { kNormal, kBreak, kContinue };

class Renderer {
 public:
  Renderer(const Value& context, const RenderLimits& limits) : limits_(limits) {
    root_ = std::make_shared<Frame>();
    const Value globals = MakeGlobals();
    for (const auto& [k, v] : globals.dict().items) root_->vars[k.str()] = v;
    if (context.is_dict()) {
      for (const auto& [k, v] : context.dict().items) {
        if (k.is_string()) root_->vars[k.str()] = v;
      }
    }
    scopes_.push_back(root_);
  }

  std::string Run(const Program& program) {
    std::string out;
    Exec(program.body, out);
    return out;
  }

  int line() const { return line_; }

 private:
  Value Lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto found = (*it)->vars.find(name);
      if (found != (*it)->vars.end()) return found->second;
    }
    return Value();
  }

  void Assign(const std::string& name, Value value) {
    scopes_.back()->vars[name] = std::move(value);
  }

  void Unpack(const std::vector<std::string>& targets, const Value& value) {
    if (targets.size() == 1) {
      Assign(targets[0], value);
      return;
    }
    if (!value.is_list() || value.list().size() != targets.size()) {
      throw TemplateError{
          absl::StrFormat("cannot unpack %s into %d names", value.Repr(), targets.size())};
    }
    for (size_t i = 0; i < targets.size(); ++i) Assign(targets[i], value.list()[i]);
  }

  void Emit(std::string& out, const std::string& text) {
    out += text;
    if (out.size() > limits_.max_output_bytes) {
      throw TemplateError{absl::StrFormat("the output exceeds %d bytes", limits_.max_output_bytes)};
    }
  }

  Flow Exec(const Body& body, std::string& out) {
    for (const StmtPtr& s : body) {
      line_ = s->line;
      const Flow flow = ExecOne(*s, out);
      if (flow != Flow::kNormal) return flow;
    }
    return Flow::kNormal;
  }

  Flow ExecOne(const Stmt& s, std::string& out) {
    switch (s.kind) {
      case Stmt::Kind::kText:
        Emit(out, s.text);
        return Flow::kNormal;
      case Stmt::Kind::kPrint:
        Emit(out, Eval(*s.expr).ToString());
        return Flow::kNormal;
      case Stmt::Kind::kIf:
        for (size_t i = 0; i < s.conditions.size(); ++i) {
          if (Eval(*s.conditions[i]).Truthy()) return Exec(s.bodies[i], out);
        }
        if (s.bodies.size() > s.conditions.size()) return Exec(s.bodies.back(), out);
        return Flow::kNormal;
      case Stmt::Kind::kFor:
        ExecFor(s, out);
        return Flow::kNormal;
      case Stmt::Kind::kSet: {
        Value value = Eval(*s.expr);
        if (!s.attr_of.empty()) {
          Value ns = Lookup(s.attr_of);
          if (!ns.is_namespace()) {
            throw TemplateError{"cannot assign attribute on non-namespace object '" + s.attr_of +
                                "'"};
          }
          ns.dict().Set(Value(s.targets[0]), std::move(value));
        } else {
          Unpack(s.targets, value);
        }
        return Flow::kNormal;
      }
      case Stmt::Kind::kSetBlock: {
        std::string text;
        Exec(s.bodies[0], text);
        Assign(s.targets[0], ApplyFilters(s.filters, Value(text)));
        return Flow::kNormal;
      }
      case Stmt::Kind::kMacro: {
        const Stmt* macro = &s;
        Assign(s.text, Value::Func(s.text, [this, macro](ValueList& args, Kwargs& kwargs) {
                 return CallMacro(*macro, args, kwargs);
               }));
        return Flow::kNormal;
      }
      case Stmt::Kind::kCallBlock: {
        const Stmt* block = &s;
        Value caller = Value::Func("caller", [this, block](ValueList& args, Kwargs& kwargs) {
          return CallBody(*block, args, kwargs);
        });
        Emit(out, EvalCall(*s.expr, &caller).ToString());
        return Flow::kNormal;
      }
      case Stmt::Kind::kFilterBlock: {
        std::string text;
        Exec(s.bodies[0], text);
        Emit(out, ApplyFilters(s.filters, Value(text)).ToString());
        return Flow::kNormal;
      }
      case Stmt::Kind::kWith: {
        auto frame = std::make_shared<Frame>();
        for (size_t i = 0; i < s.targets.size(); ++i)
          frame->vars[s.targets[i]] = Eval(*s.conditions[i]);
        scopes_.push_back(frame);
        const Flow flow = Exec(s.bodies[0], out);
        scopes_.pop_back();
        return flow;
      }
      case Stmt::Kind::kBreak:
        return Flow::kBreak;
      case Stmt::Kind::kContinue:
        return Flow::kContinue;
      case Stmt::Kind::kBlock:
        return Exec(s.bodies[0], out);
    }
    return Flow::kNormal;
  }

  void ExecFor(const Stmt& s, std::string& out) {
    const Value iterable = Eval(*s.expr);
    ValueList items = Iterate(iterable);
    if (s.filter) {
      ValueList kept;
      for (const Value& item : items) {
        scopes_.push_back(std::make_shared<Frame>());
        Unpack(s.targets, item);
        const bool keep = Eval(*s.filter).Truthy();
        scopes_.pop_back();
        if (keep) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      if (s.bodies.size() > 1) {
        scopes_.push_back(std::make_shared<Frame>());
        Exec(s.bodies[1], out);
        scopes_.pop_back();
      }
      return;
    }
    const auto n = static_cast<int64_t>(items.size());
    iterations_ += n;
    if (iterations_ > limits_.max_loop_iterations) {
      throw TemplateError{
          absl::StrFormat("more than %d loop iterations", limits_.max_loop_iterations)};
    }
    const Value list = Value::List(items);
    for (int64_t i = 0; i < n; ++i) {
      auto frame = std::make_shared<Frame>();
      scopes_.push_back(frame);
      Unpack(s.targets, items[i]);
      Value loop = Value::NewDict();
      Dict& d = loop.dict();
      d.Set(Value("index"), Value(i + 1));
      d.Set(Value("index0"), Value(i));
      d.Set(Value("revindex"), Value(n - i));
      d.Set(Value("revindex0"), Value(n - i - 1));
      d.Set(Value("first"), Value(i == 0));
      d.Set(Value("last"), Value(i == n - 1));
      d.Set(Value("length"), Value(n));
      d.Set(Value("depth"), Value(int64_t{1}));
      d.Set(Value("depth0"), Value(int64_t{0}));
      if (i > 0) d.Set(Value("previtem"), items[i - 1]);
      if (i + 1 < n) d.Set(Value("nextitem"), items[i + 1]);
      d.Set(Value("cycle"), Value::Func("cycle", [i](ValueList& args, Kwargs&) {
              if (args.empty()) throw TemplateError{"loop.cycle() needs at least one value"};
              return args[static_cast<size_t>(i) % args.size()];
            }));
      frame->vars["loop"] = loop;
      const Flow flow = Exec(s.bodies[0], out);
      scopes_.pop_back();
      if (flow == Flow::kBreak) break;
    }
  }

  // Binds a macro's parameters: positional, then keywords, then defaults (evaluated
  // in the macro's scope, left to right), and `caller` when given.
  Value CallMacro(const Stmt& m, ValueList& args, Kwargs& kwargs) {
    if (args.size() > m.params.size()) {
      throw TemplateError{absl::StrFormat("macro '%s' takes %d arguments, %d given", m.text,
                                          m.params.size(), args.size())};
    }
    auto frame = std::make_shared<Frame>();
    auto saved = scopes_;
    scopes_ = {root_, frame};
    if (++depth_ > limits_.max_call_depth) {
      throw TemplateError{
          absl::StrFormat("macro calls nest deeper than %d", limits_.max_call_depth)};
    }
    for (auto& [key, value] : kwargs) {
      bool known = key == "caller";
      for (const std::string& p : m.params) known |= p == key;
      if (!known)
        throw TemplateError{"macro '" + m.text + "' takes no keyword argument '" + key + "'"};
      frame->vars[key] = value;
    }
    for (size_t i = 0; i < m.params.size(); ++i) {
      if (i < args.size()) {
        frame->vars[m.params[i]] = args[i];
      } else if (frame->vars.count(m.params[i]) == 0) {
        frame->vars[m.params[i]] = m.defaults[i] ? Eval(*m.defaults[i]) : Value();
      }
    }
    std::string out;
    Exec(m.bodies[0], out);
    --depth_;
    scopes_ = std::move(saved);
    return Value(out);
  }

  // The body of a {% call %} block, run by the macro's caller().
  Value CallBody(const Stmt& block, ValueList& args, Kwargs& kwargs) {
    auto frame = std::make_shared<Frame>();
    for (size_t i = 0; i < block.params.size(); ++i) {
      frame->vars[block.params[i]] = i < args.size()     ? args[i]
                                     : block.defaults[i] ? Eval(*block.defaults[i])
                                                         : Value();
    }
    for (auto& [k, v] : kwargs) frame->vars[k] = v;
    scopes_.push_back(frame);
    std::string out;
    Exec(block.bodies[0], out);
    scopes_.pop_back();
    return Value(out);
  }

  Value ApplyFilters(const std::vector<ExprPtr>& filters, Value value) {
    for (const ExprPtr& f : filters) value = EvalFilter(*f, value);
    return value;
  }

  Value EvalFilter(const Expr& f, const Value& input) {
    ValueList args;
    Kwargs kwargs;
    EvalArgs(f, &args, &kwargs);
    return ApplyFilter(f.name, input, args, kwargs);
  }

  void EvalArgs(const Expr& e, ValueList* args, Kwargs* kwargs) {
    for (const ExprPtr& a : e.args) args->push_back(Eval(*a));
    for (const auto& [k, v] : e.kwargs) kwargs->emplace_back(k, Eval(*v));
  }

  [[noreturn]] void Undefined(const Expr& e) const {
    if (e.kind == Expr::Kind::kName) throw TemplateError{"'" + e.name + "' is undefined"};
    if (e.kind == Expr::Kind::kAttr)
      throw TemplateError{"object has no attribute '" + e.name + "'"};
    throw TemplateError{"the value is undefined"};
  }

  Value EvalCall(const Expr& call, const Value* caller) {
    ValueList args;
    Kwargs kwargs;
    EvalArgs(call, &args, &kwargs);
    if (caller != nullptr) kwargs.emplace_back("caller", *caller);
    const Expr& callee = *call.items[0];
    if (callee.kind == Expr::Kind::kAttr) {
      const Value obj = Eval(*callee.items[0]);
      if (obj.is_undefined()) Undefined(*callee.items[0]);
      if (obj.is_dict()) {
        const Value* member = obj.dict().Find(callee.name);
        if (member != nullptr && member->is_function()) return member->function()(args, kwargs);
      }
      return CallMethod(obj, callee.name, args, kwargs);
    }
    const Value fn = Eval(callee);
    if (fn.is_undefined()) Undefined(callee);
    if (!fn.is_function()) throw TemplateError{"'" + fn.TypeName() + "' object is not callable"};
    return fn.function()(args, kwargs);
  }

  Value Eval(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kLiteral:
        return e.literal;
      case Expr::Kind::kName:
        return Lookup(e.name);
      case Expr::Kind::kList:
      case Expr::Kind::kTuple: {
        ValueList items;
        for (const ExprPtr& item : e.items) items.push_back(Eval(*item));
        return e.kind == Expr::Kind::kTuple ? Value::Tuple(std::move(items))
                                            : Value::List(std::move(items));
      }
      case Expr::Kind::kDict: {
        Value d = Value::NewDict();
        for (size_t i = 0; i + 1 < e.items.size(); i += 2)
          d.dict().Set(Eval(*e.items[i]), Eval(*e.items[i + 1]));
        return d;
      }
      case Expr::Kind::kAttr: {
        const Value obj = Eval(*e.items[0]);
        if (obj.is_undefined()) Undefined(*e.items[0]);
        return GetAttribute(obj, e.name);
      }
      case Expr::Kind::kItem: {
        const Value obj = Eval(*e.items[0]);
        if (obj.is_undefined()) Undefined(*e.items[0]);
        return GetItem(obj, Eval(*e.items[1]));
      }
      case Expr::Kind::kSlice: {
        const Value obj = Eval(*e.items[0]);
        if (obj.is_undefined()) Undefined(*e.items[0]);
        Value parts[3];
        for (int i = 0; i < 3; ++i) {
          if (e.items[i + 1]) parts[i] = Eval(*e.items[i + 1]);
        }
        return Slice(obj, e.items[1] ? &parts[0] : nullptr, e.items[2] ? &parts[1] : nullptr,
                     e.items[3] ? &parts[2] : nullptr);
      }
      case Expr::Kind::kCall:
        return EvalCall(e, nullptr);
      case Expr::Kind::kFilter:
        return EvalFilter(e, Eval(*e.items[0]));
      case Expr::Kind::kTest: {
        const Value v = Eval(*e.items[0]);
        ValueList args;
        Kwargs kwargs;
        EvalArgs(e, &args, &kwargs);
        return Value(ApplyTest(e.name, v, args, kwargs) != e.negated);
      }
      case Expr::Kind::kNeg:
      case Expr::Kind::kPos: {
        const Value v = Eval(*e.items[0]);
        if (!v.is_number() && !v.is_bool()) {
          throw TemplateError{"bad operand type for unary " +
                              std::string(e.kind == Expr::Kind::kNeg ? "-" : "+") + ": '" +
                              v.TypeName() + "'"};
        }
        if (e.kind == Expr::Kind::kPos) return v.is_bool() ? Value(v.as_int()) : v;
        return v.is_float() ? Value(-v.as_double()) : Value(-v.as_int());
      }
      case Expr::Kind::kNot:
        return Value(!Eval(*e.items[0]).Truthy());
      case Expr::Kind::kAnd: {
        Value a = Eval(*e.items[0]);
        return a.Truthy() ? Eval(*e.items[1]) : a;
      }
      case Expr::Kind::kOr: {
        Value a = Eval(*e.items[0]);
        return a.Truthy() ? a : Eval(*e.items[1]);
      }
      case Expr::Kind::kBinary: {
        const Value a = Eval(*e.items[0]);
        const Value b = Eval(*e.items[1]);
        if (e.name != "~") {
          if (a.is_undefined()) Undefined(*e.items[0]);
          if (b.is_undefined()) Undefined(*e.items[1]);
        }
        return BinaryOp(e.name, a, b);
      }
      case Expr::Kind::kCompare: {
        Value left = Eval(*e.items[0]);
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Value right = Eval(*e.items[i + 1]);
          const std::string& op = e.ops[i];
          bool ok;
          if (op == "==") {
            ok = left.Equals(right);
          } else if (op == "!=") {
            ok = !left.Equals(right);
          } else if (op == "<") {
            ok = left.Less(right);
          } else if (op == "<=") {
            ok = left.Less(right) || left.Equals(right);
          } else if (op == ">") {
            ok = right.Less(left);
          } else if (op == ">=") {
            ok = right.Less(left) || left.Equals(right);
          } else if (op == "in") {
            ok = Contains(right, left);
          } else {
            ok = !Contains(right, left);
          }
          if (!ok) return Value(false);
          left = std::move(right);
        }
        return Value(true);
      }
      case Expr::Kind::kCond:
        if (Eval(*e.items[1]).Truthy()) return Eval(*e.items[0]);
        return e.items[2] ? Eval(*e.items[2]) : Value();
    }
    return Value();
  }

  RenderLimits limits_;
  std::shared_ptr<Frame> root_;
  std::vector<std::shared_ptr<Frame>> scopes_;
  int line_ = 0;
  int depth_ = 0;
  int64_t iterations_ = 0;
};

}  // namespace

absl::StatusOr<std::string> Render(const Program& program, const Value& context,
                                   const RenderLimits& limits) {
  Renderer renderer(context, limits);
  try {
    return renderer.Run(program);
  } catch (const TemplateError& e) {
    if (e.raised) return absl::InvalidArgumentError(e.message);
    return absl::InvalidArgumentError(
        absl::StrFormat("chat template line %d: %s", renderer.line(), e.message));
  } catch (const std::exception& e) {
    // As in ParseTemplate: an unforeseen library exception fails this render only.
    return absl::InvalidArgumentError(
        absl::StrFormat("chat template line %d: %s", renderer.line(), e.what()));
  }
}

}  // namespace specserve::jinja
