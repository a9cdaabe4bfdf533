#include "common/chat_template/parser.h"

#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "common/chat_template/builtins.h"
#include "common/chat_template/lexer.h"

namespace specserve::jinja {
namespace {

using K = Token::Kind;

// Parse errors travel as this exception inside the parser only.
struct ParseError {
  std::string message;
};

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : t_(std::move(tokens)) {}

  Program Run() {
    Program program;
    program.body = ParseBody({});
    if (Cur().kind != K::kEnd) Fail("unexpected {% " + Cur().text + " %}");
    for (const auto& [name, line] : called_) {
      if (!IsKnownGlobal(name) && macros_.count(name) == 0 && name != "caller") {
        throw ParseError{absl::StrFormat("line %d: unsupported function '%s()'", line, name)};
      }
    }
    return program;
  }

 private:
  const Token& Cur() const { return t_[p_]; }
  const Token& Peek(size_t k = 1) const { return t_[std::min(p_ + k, t_.size() - 1)]; }
  [[noreturn]] void Fail(const std::string& what) const {
    throw ParseError{absl::StrFormat("line %d: %s", Cur().line, what)};
  }
  // Number literals; one beyond what int64 / double hold is refused, naming it.
  Value IntLiteral(const std::string& text) const {
    int64_t i = 0;
    if (!absl::SimpleAtoi(text, &i)) Fail("integer out of range: " + text);
    return Value(i);
  }
  Value FloatLiteral(const std::string& text) const {
    try {
      return Value(std::stod(text));
    } catch (const std::exception&) {
      Fail("number out of range: " + text);
    }
  }
  bool IsOp(const char* op) const { return Cur().kind == K::kOp && Cur().text == op; }
  bool IsName(const char* name) const { return Cur().kind == K::kName && Cur().text == name; }
  bool SkipOp(const char* op) {
    if (!IsOp(op)) return false;
    ++p_;
    return true;
  }
  bool SkipName(const char* name) {
    if (!IsName(name)) return false;
    ++p_;
    return true;
  }
  void ExpectOp(const char* op) {
    if (!SkipOp(op)) Fail(absl::StrFormat("expected '%s'", op));
  }
  void ExpectBlockEnd() {
    if (Cur().kind != K::kBlockEnd) Fail("expected the end of the tag (%})");
    ++p_;
  }
  std::string ExpectName() {
    if (Cur().kind != K::kName) Fail("expected a name");
    return t_[p_++].text;
  }

  // Statements until a {% name %} in `ends` (left unconsumed) or the end of input.
  Body ParseBody(const std::set<std::string>& ends) {
    Body body;
    while (true) {
      const Token& tok = Cur();
      if (tok.kind == K::kEnd) {
        if (!ends.empty()) Fail("missing {% " + *ends.rbegin() + " %}");
        return body;
      }
      if (tok.kind == K::kData) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kText;
        s->text = tok.text;
        s->line = tok.line;
        body.push_back(std::move(s));
        ++p_;
        continue;
      }
      if (tok.kind == K::kVarBegin) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kPrint;
        s->line = tok.line;
        ++p_;
        s->expr = ParseTuple(true);
        if (Cur().kind != K::kVarEnd) Fail("expected the end of the expression (}})");
        ++p_;
        body.push_back(std::move(s));
        continue;
      }
      if (tok.kind != K::kBlockBegin) Fail("unexpected token");
      if (Peek().kind == K::kName && ends.count(Peek().text)) return body;
      ++p_;
      body.push_back(ParseStatement());
    }
  }

  // After {% name ... %} of an end tag the caller expects.
  std::string TakeEndTag() {
    ++p_;  // {%
    return ExpectName();
  }

  StmtPtr ParseStatement() {
    auto s = std::make_unique<Stmt>();
    s->line = Cur().line;
    const std::string keyword = ExpectName();
    if (keyword == "if") {
      s->kind = Stmt::Kind::kIf;
      s->conditions.push_back(ParseTuple(true));
      ExpectBlockEnd();
      while (true) {
        s->bodies.push_back(ParseBody({"elif", "else", "endif"}));
        const std::string end = TakeEndTag();
        if (end == "elif") {
          s->conditions.push_back(ParseTuple(true));
          ExpectBlockEnd();
        } else if (end == "else") {
          ExpectBlockEnd();
          s->bodies.push_back(ParseBody({"endif"}));
          TakeEndTag();
          ExpectBlockEnd();
          break;
        } else {
          ExpectBlockEnd();
          break;
        }
      }
    } else if (keyword == "for") {
      s->kind = Stmt::Kind::kFor;
      s->targets = ParseTargets();
      if (!SkipName("in")) Fail("expected 'in' in the for loop");
      s->expr = ParseTuple(false);
      if (SkipName("if")) s->filter = ParseTuple(true);
      if (IsName("recursive")) Fail("unsupported construct: recursive for loops");
      ExpectBlockEnd();
      s->bodies.push_back(ParseBody({"else", "endfor"}));
      if (TakeEndTag() == "else") {
        ExpectBlockEnd();
        s->bodies.push_back(ParseBody({"endfor"}));
        TakeEndTag();
      }
      ExpectBlockEnd();
    } else if (keyword == "set") {
      const std::string first = ExpectName();
      if (SkipOp(".")) {
        s->kind = Stmt::Kind::kSet;
        s->attr_of = first;
        s->targets.push_back(ExpectName());
        ExpectOp("=");
        s->expr = ParseTuple(true);
        ExpectBlockEnd();
      } else {
        s->targets.push_back(first);
        while (SkipOp(",")) s->targets.push_back(ExpectName());
        if (SkipOp("=")) {
          s->kind = Stmt::Kind::kSet;
          s->expr = ParseTuple(true);
          ExpectBlockEnd();
        } else {
          if (s->targets.size() != 1) Fail("a {% set %} block assigns one name");
          s->kind = Stmt::Kind::kSetBlock;
          while (SkipOp("|")) s->filters.push_back(ParseFilter(nullptr));
          ExpectBlockEnd();
          s->bodies.push_back(ParseBody({"endset"}));
          TakeEndTag();
          ExpectBlockEnd();
        }
      }
    } else if (keyword == "macro") {
      s->kind = Stmt::Kind::kMacro;
      s->text = ExpectName();
      macros_.insert(s->text);
      ParseParams(s.get());
      ExpectBlockEnd();
      s->bodies.push_back(ParseBody({"endmacro"}));
      TakeEndTag();
      ExpectBlockEnd();
    } else if (keyword == "call") {
      s->kind = Stmt::Kind::kCallBlock;
      if (IsOp("(")) ParseParams(s.get());
      s->expr = ParseExpression(true);
      if (s->expr->kind != Expr::Kind::kCall) Fail("{% call %} needs a macro call");
      ExpectBlockEnd();
      s->bodies.push_back(ParseBody({"endcall"}));
      TakeEndTag();
      ExpectBlockEnd();
    } else if (keyword == "filter") {
      s->kind = Stmt::Kind::kFilterBlock;
      s->filters.push_back(ParseFilter(nullptr));
      while (SkipOp("|")) s->filters.push_back(ParseFilter(nullptr));
      ExpectBlockEnd();
      s->bodies.push_back(ParseBody({"endfilter"}));
      TakeEndTag();
      ExpectBlockEnd();
    } else if (keyword == "with") {
      s->kind = Stmt::Kind::kWith;
      while (Cur().kind != K::kBlockEnd) {
        if (!s->targets.empty()) ExpectOp(",");
        s->targets.push_back(ExpectName());
        ExpectOp("=");
        s->conditions.push_back(ParseExpression(true));
      }
      ExpectBlockEnd();
      s->bodies.push_back(ParseBody({"endwith"}));
      TakeEndTag();
      ExpectBlockEnd();
    } else if (keyword == "generation") {
      s->kind = Stmt::Kind::kBlock;
      ExpectBlockEnd();
      s->bodies.push_back(ParseBody({"endgeneration"}));
      TakeEndTag();
      ExpectBlockEnd();
    } else if (keyword == "break" || keyword == "continue") {
      s->kind = keyword == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue;
      ExpectBlockEnd();
    } else {
      --p_;
      Fail("unsupported construct {% " + keyword + " %}");
    }
    return s;
  }

  // Loop targets: a, b or (a, b).
  std::vector<std::string> ParseTargets() {
    std::vector<std::string> names;
    const bool paren = SkipOp("(");
    names.push_back(ExpectName());
    while (SkipOp(",")) {
      if (paren && IsOp(")")) break;
      names.push_back(ExpectName());
    }
    if (paren) ExpectOp(")");
    return names;
  }

  void ParseParams(Stmt* s) {
    ExpectOp("(");
    while (!SkipOp(")")) {
      if (!s->params.empty()) ExpectOp(",");
      if (IsOp(")")) continue;
      s->params.push_back(ExpectName());
      s->defaults.push_back(SkipOp("=") ? ParseExpression(true) : nullptr);
    }
  }

  ExprPtr Make(Expr::Kind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }

  // expr or expr, expr, ... (a tuple).
  ExprPtr ParseTuple(bool with_condexpr) {
    const int line = Cur().line;
    ExprPtr first = ParseExpression(with_condexpr);
    if (!IsOp(",")) return first;
    auto tuple = Make(Expr::Kind::kTuple, line);
    tuple->items.push_back(std::move(first));
    while (SkipOp(",")) {
      if (Cur().kind == K::kVarEnd || Cur().kind == K::kBlockEnd || IsOp(")")) break;
      tuple->items.push_back(ParseExpression(with_condexpr));
    }
    return tuple;
  }

  ExprPtr ParseExpression(bool with_condexpr) {
    return with_condexpr ? ParseCondExpr() : ParseOr();
  }

  ExprPtr ParseCondExpr() {
    const int line = Cur().line;
    ExprPtr expr = ParseOr();
    while (SkipName("if")) {
      auto cond = Make(Expr::Kind::kCond, line);
      cond->items.push_back(std::move(expr));
      cond->items.push_back(ParseOr());
      cond->items.push_back(SkipName("else") ? ParseCondExpr() : nullptr);
      expr = std::move(cond);
    }
    return expr;
  }

  ExprPtr Binary(Expr::Kind kind, ExprPtr a, ExprPtr b, const std::string& op = "") {
    auto e = Make(kind, a->line);
    e->name = op;
    e->items.push_back(std::move(a));
    e->items.push_back(std::move(b));
    return e;
  }

  ExprPtr ParseOr() {
    ExprPtr e = ParseAnd();
    while (SkipName("or")) e = Binary(Expr::Kind::kOr, std::move(e), ParseAnd());
    return e;
  }

  ExprPtr ParseAnd() {
    ExprPtr e = ParseNot();
    while (SkipName("and")) e = Binary(Expr::Kind::kAnd, std::move(e), ParseNot());
    return e;
  }

  ExprPtr ParseNot() {
    if (IsName("not")) {
      auto e = Make(Expr::Kind::kNot, Cur().line);
      ++p_;
      e->items.push_back(ParseNot());
      return e;
    }
    return ParseCompare();
  }

  ExprPtr ParseCompare() {
    ExprPtr first = ParseMath1();
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (Cur().kind == K::kOp && (Cur().text == "==" || Cur().text == "!=" || Cur().text == "<" ||
                                   Cur().text == "<=" || Cur().text == ">" || Cur().text == ">=")) {
        op = Cur().text;
        ++p_;
      } else if (IsName("in")) {
        op = "in";
        ++p_;
      } else if (IsName("not") && Peek().kind == K::kName && Peek().text == "in") {
        op = "notin";
        p_ += 2;
      } else {
        break;
      }
      if (!cmp) {
        cmp = Make(Expr::Kind::kCompare, first->line);
        cmp->items.push_back(std::move(first));
      }
      cmp->ops.push_back(op);
      cmp->items.push_back(ParseMath1());
    }
    return cmp ? std::move(cmp) : std::move(first);
  }

  ExprPtr ParseMath1() {
    ExprPtr e = ParseConcat();
    while (IsOp("+") || IsOp("-")) {
      const std::string op = t_[p_++].text;
      e = Binary(Expr::Kind::kBinary, std::move(e), ParseConcat(), op);
    }
    return e;
  }

  ExprPtr ParseConcat() {
    ExprPtr e = ParseMath2();
    while (SkipOp("~")) e = Binary(Expr::Kind::kBinary, std::move(e), ParseMath2(), "~");
    return e;
  }

  ExprPtr ParseMath2() {
    ExprPtr e = ParsePow();
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      const std::string op = t_[p_++].text;
      e = Binary(Expr::Kind::kBinary, std::move(e), ParsePow(), op);
    }
    return e;
  }

  ExprPtr ParsePow() {
    ExprPtr e = ParseUnary(true);
    while (SkipOp("**")) e = Binary(Expr::Kind::kBinary, std::move(e), ParseUnary(true), "**");
    return e;
  }

  ExprPtr ParseUnary(bool with_filter) {
    ExprPtr e;
    if (IsOp("-") || IsOp("+")) {
      e = Make(IsOp("-") ? Expr::Kind::kNeg : Expr::Kind::kPos, Cur().line);
      ++p_;
      e->items.push_back(ParseUnary(false));
    } else {
      e = ParsePrimary();
    }
    e = ParsePostfix(std::move(e));
    if (with_filter) e = ParseFilterExpr(std::move(e));
    return e;
  }

  ExprPtr ParsePrimary() {
    const Token& tok = Cur();
    const int line = tok.line;
    if (tok.kind == K::kName) {
      ++p_;
      auto e = Make(Expr::Kind::kLiteral, line);
      if (tok.text == "true" || tok.text == "True") {
        e->literal = Value(true);
      } else if (tok.text == "false" || tok.text == "False") {
        e->literal = Value(false);
      } else if (tok.text == "none" || tok.text == "None") {
        e->literal = Value::None();
      } else {
        e->kind = Expr::Kind::kName;
        e->name = tok.text;
      }
      return e;
    }
    if (tok.kind == K::kString) {
      std::string s;
      while (Cur().kind == K::kString) s += t_[p_++].text;
      auto e = Make(Expr::Kind::kLiteral, line);
      e->literal = Value(s);
      return e;
    }
    if (tok.kind == K::kInt || tok.kind == K::kFloat) {
      ++p_;
      auto e = Make(Expr::Kind::kLiteral, line);
      e->literal = tok.kind == K::kInt ? IntLiteral(tok.text) : FloatLiteral(tok.text);
      return e;
    }
    if (SkipOp("(")) {
      if (SkipOp(")")) return Make(Expr::Kind::kTuple, line);
      ExprPtr inner = ParseExpression(true);
      if (IsOp(",")) {
        auto tuple = Make(Expr::Kind::kTuple, line);
        tuple->items.push_back(std::move(inner));
        while (SkipOp(",")) {
          if (IsOp(")")) break;
          tuple->items.push_back(ParseExpression(true));
        }
        inner = std::move(tuple);
      }
      ExpectOp(")");
      return inner;
    }
    if (SkipOp("[")) {
      auto e = Make(Expr::Kind::kList, line);
      while (!SkipOp("]")) {
        if (!e->items.empty()) ExpectOp(",");
        if (SkipOp("]")) break;
        e->items.push_back(ParseExpression(true));
      }
      return e;
    }
    if (SkipOp("{")) {
      auto e = Make(Expr::Kind::kDict, line);
      while (!SkipOp("}")) {
        if (!e->items.empty()) ExpectOp(",");
        if (SkipOp("}")) break;
        e->items.push_back(ParseExpression(true));
        ExpectOp(":");
        e->items.push_back(ParseExpression(true));
      }
      return e;
    }
    Fail(tok.kind == K::kEnd ? "unexpected end of template" : "unexpected '" + tok.text + "'");
  }

  ExprPtr ParsePostfix(ExprPtr e) {
    while (true) {
      const int line = Cur().line;
      if (SkipOp(".")) {
        if (Cur().kind == K::kInt) {
          auto item = Make(Expr::Kind::kItem, line);
          item->items.push_back(std::move(e));
          auto key = Make(Expr::Kind::kLiteral, line);
          key->literal = IntLiteral(t_[p_++].text);
          item->items.push_back(std::move(key));
          e = std::move(item);
          continue;
        }
        auto attr = Make(Expr::Kind::kAttr, line);
        attr->items.push_back(std::move(e));
        attr->name = ExpectName();
        e = std::move(attr);
      } else if (SkipOp("[")) {
        e = ParseSubscript(std::move(e), line);
      } else if (IsOp("(")) {
        e = ParseCall(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr ParseSubscript(ExprPtr obj, int line) {
    ExprPtr parts[3];
    bool slice = false;
    int part = 0;
    while (!IsOp("]")) {
      if (SkipOp(":")) {
        slice = true;
        if (++part > 2) Fail("a slice has at most three parts");
        continue;
      }
      if (parts[part]) Fail("expected ':' or ']'");
      parts[part] = ParseExpression(true);
      if (!slice && IsOp(",")) Fail("unsupported construct: tuple subscripts");
    }
    ++p_;
    auto e = Make(slice ? Expr::Kind::kSlice : Expr::Kind::kItem, line);
    e->items.push_back(std::move(obj));
    if (slice) {
      for (auto& x : parts) e->items.push_back(std::move(x));
    } else {
      if (!parts[0]) Fail("an empty subscript");
      e->items.push_back(std::move(parts[0]));
    }
    return e;
  }

  void ParseArgs(Expr* e) {
    ExpectOp("(");
    while (!SkipOp(")")) {
      if (!e->args.empty() || !e->kwargs.empty()) {
        ExpectOp(",");
        if (SkipOp(")")) break;
      }
      if (IsOp("*") || IsOp("**")) Fail("unsupported construct: *args / **kwargs in a call");
      if (Cur().kind == K::kName && Peek().kind == K::kOp && Peek().text == "=") {
        std::string key = t_[p_].text;
        p_ += 2;
        e->kwargs.emplace_back(std::move(key), ParseExpression(true));
      } else {
        if (!e->kwargs.empty()) Fail("a positional argument after keyword arguments");
        e->args.push_back(ParseExpression(true));
      }
    }
  }

  ExprPtr ParseCall(ExprPtr callee) {
    auto e = Make(Expr::Kind::kCall, callee->line);
    if (callee->kind == Expr::Kind::kName) {
      called_.emplace_back(callee->name, callee->line);
    } else if (callee->kind == Expr::Kind::kAttr && !IsKnownMethod(callee->name)) {
      Fail("unsupported method ." + callee->name + "()");
    }
    e->items.push_back(std::move(callee));
    ParseArgs(e.get());
    return e;
  }

  // `| name(args)` applied to `operand` (null for {% filter %} and {% set %} blocks).
  ExprPtr ParseFilter(ExprPtr operand) {
    auto e = Make(Expr::Kind::kFilter, Cur().line);
    e->name = ExpectName();
    if (!IsKnownFilter(e->name)) {
      --p_;
      Fail("unsupported filter '" + e->name + "'");
    }
    e->items.push_back(std::move(operand));
    if (IsOp("(")) ParseArgs(e.get());
    return e;
  }

  ExprPtr ParseFilterExpr(ExprPtr e) {
    while (true) {
      if (SkipOp("|")) {
        e = ParseFilter(std::move(e));
      } else if (SkipName("is")) {
        auto test = Make(Expr::Kind::kTest, Cur().line);
        test->negated = SkipName("not");
        test->name = ExpectName();
        if (!IsKnownTest(test->name)) {
          --p_;
          Fail("unsupported test '" + test->name + "'");
        }
        test->items.push_back(std::move(e));
        if (IsOp("(")) {
          ParseArgs(test.get());
        } else if ((Cur().kind == K::kName || Cur().kind == K::kString || Cur().kind == K::kInt ||
                    Cur().kind == K::kFloat || IsOp("(") || IsOp("[") || IsOp("{")) &&
                   !IsName("else") && !IsName("or") && !IsName("and")) {
          test->args.push_back(ParsePostfix(ParsePrimary()));
        }
        e = std::move(test);
      } else if (IsOp("(")) {
        e = ParseCall(std::move(e));
      } else {
        return e;
      }
    }
  }

  std::vector<Token> t_;
  size_t p_ = 0;
  std::set<std::string> macros_;
  std::vector<std::pair<std::string, int>> called_;
};

}  // namespace

absl::StatusOr<Program> ParseTemplate(const std::string& source) {
  auto tokens = Tokenize(source);
  if (!tokens.ok()) return tokens.status();
  try {
    return Parser(*std::move(tokens)).Run();
  } catch (const ParseError& e) {
    return absl::InvalidArgumentError(e.message);
  } catch (const std::exception& e) {
    // A library call's exception the parser did not foresee refuses the template, it
    // does not take the service down (found by fuzzing: std::stoll out of range).
    return absl::InvalidArgumentError(std::string("chat template: ") + e.what());
  }
}

}  // namespace specserve::jinja
