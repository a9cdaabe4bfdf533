// The template engine construct by construct: each small template is rendered by the
// engine and by Python's Jinja2 (Hugging Face's settings) and must give the same bytes,
// or both must fail. Plus what the engine refuses when a template loads.
#include "common/chat_template/chat_template.h"
#include "gtest/gtest.h"
#include "tests/common/chat_template/jinja_reference.h"

namespace specserve {
namespace {

using nlohmann::ordered_json;

const ordered_json& Context() {
  static const ordered_json context = {
      {"messages",
       {{{"role", "system"}, {"content", "  Be brief.  "}},
        {{"role", "user"}, {"content", "Hello, \"world\" & <you>"}},
        {{"role", "assistant"},
         {"content", "Hi!"},
         {"tool_calls", {{{"name", "f"}, {"arguments", {{"b", 2}, {"a", 1.5}}}}}}},
        {{"role", "user"}, {"content", "Ünïcödé 🙂"}}}},
      {"add_generation_prompt", true},
      {"bos_token", "<s>"},
      {"eos_token", "</s>"},
      {"tools", nullptr},
      {"n", 7},
      {"f", 2.5},
      {"words", {"b", "a", "C", "a"}},
      {"nested", {{"x", {{"y", "deep"}}}}},
      {"empty", ordered_json::array()},
  };
  return context;
}

// Templates of one construct each (and some combinations real templates use).
const std::vector<std::string>& Templates() {
  static const std::vector<std::string> t = {
      // Whitespace: trim_blocks, lstrip_blocks, -/+ control, comments, raw.
      "a\n  {% if true %}\n  x\n  {% endif %}\nb",
      "a  {%- if true -%}  x  {%- endif -%}  b",
      "a\n  {%+ if true %}x{% endif +%}\nb",
      "{# comment #}\nline\n  {#- c -#}  \n after",
      "x {% raw %}{{ not }} {% evaluated %}{% endraw %}\ny",
      "  {{ 'v' }}  \n{{- 'w' -}}\n  z",
      "{% for m in messages %}\n  {{ m.role }}\n{% endfor %}\n",
      "\n\n{% set x = 1 %}\n\n{{ x }}\n",
      "a\r\nb\rc\n",
      // Expressions and operators.
      "{{ 1 + 2 * 3 - 4 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }}",
      "{{ 1.5 + 1 }} {{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1e-5 }} {{ 100.0 }} {{ 3 / 2 }} {{ 1/3 }}",
      "{{ 'a' ~ 1 ~ none ~ true }} {{ 'ab' * 3 }} {{ [1] + [2] }} {{ (1, 2) }} {{ (1,) }}",
      "{{ n > 5 and n < 10 }} {{ not n }} {{ 1 < n <= 7 }} {{ 'a' in 'cat' }} {{ 3 not in [1, 2] "
      "}}",
      "{{ none or 'x' }} {{ 0 and 1 }} {{ 'y' if n else 'z' }} {{ 'y' if not n }}|",
      "{{ messages[0]['role'] }} {{ messages[-1].content }} {{ messages[9] is defined }}",
      "{{ 'abcdef'[1:4] }} {{ 'abcdef'[::-1] }} {{ 'abcdef'[-2:] }} {{ words[1:] }} {{ words[:-1] "
      "}} {{ 'Ünï'[1] }}",
      "{{ nested.x.y }} {{ nested['x']['y'] }} {{ nested.missing }}|{{ nested.x.missing is none }}",
      "{{ none }} {{ true }} {{ [1, 'a', none, 2.0, true] }} {{ {'a': 1, 'b': [2]} }} {{ \"it's\" "
      "}} {{ ['it\\'s'] }}",
      // Statements: if/elif/else, for/else, loop variables, filters on loops, break/continue.
      "{% if n == 1 %}one{% elif n == 7 %}seven{% else %}other{% endif %}",
      "{% for m in messages %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.first "
      "}}{{ loop.last }}{{ loop.length }}|{% endfor %}",
      "{% for m in messages if m.role == 'user' %}{{ loop.index }}:{{ m.content }};{% endfor %}",
      "{% for x in empty %}x{% else %}none{% endfor %}",
      "{% for w in words %}{% if w == 'C' %}{% break %}{% endif %}{{ w }}{% endfor %}",
      "{% for w in words %}{% if w == 'a' %}{% continue %}{% endif %}{{ w }}{% endfor %}",
      "{% for k, v in nested.x.items() %}{{ k }}={{ v }}{% endfor %}",
      "{% for w in words %}{{ loop.previtem }}>{{ w }}<{{ loop.nextitem }} {{ loop.cycle('odd', "
      "'even') }};{% endfor %}",
      "{% for c in 'héllo' %}[{{ c }}]{% endfor %}{% for k in {'a': 1, 'b': 2} %}{{ k }}{% endfor "
      "%}",
      // Scoping and assignment.
      "{% set x = 0 %}{% for i in [1, 2] %}{{ x }}{% set x = i %}{{ x }}{% endfor %}|{{ x }}",
      "{% set ns = namespace(found=false, n=0) %}{% for m in messages %}{% if m.role == 'user' "
      "%}{% set ns.found = true %}{% set ns.n = ns.n + 1 %}{% endif %}{% endfor %}{{ ns.found }} "
      "{{ ns.n }}",
      "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c %}  block {{ a }}  {% endset %}[{{ c }}]{% set "
      "d | trim | upper %}  x  {% endset %}[{{ d }}]",
      "{% if true %}{% set y = 3 %}{% endif %}{{ y }}",
      "{% with z = 5 %}{{ z }}{% endwith %}{{ z }}|",
      // Macros and call blocks.
      "{% macro greet(name, punct='!') %}Hello {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} "
      "{{ greet('B', punct='?') }} {{ greet(name='C') }}",
      "{% macro wrap() %}<{{ caller() }}>{% endmacro %}{% call wrap() %}inside{% endcall %}",
      "{% macro render(m) %}{{ m.role | upper }}{% endmacro %}{% for m in messages %}{{ render(m) "
      "}} {% endfor %}",
      // Filters.
      "{{ messages[0].content | trim }}|{{ '  x  ' | trim }}|{{ 'xxhixx' | trim('x') }}|{{ 'Hi' | "
      "upper }}{{ 'Hi' | lower }}",
      "{{ words | length }} {{ 'héllo' | length }} {{ words | count }} {{ words | first }} {{ "
      "words | last }} {{ words | join('-') }}",
      "{{ undefined_var | default('dflt') }} {{ '' | default('e', true) }} {{ none | default('n') "
      "}} {{ n | default(1) }}",
      "{{ messages | map(attribute='role') | join(',') }} {{ messages | selectattr('role', "
      "'equalto', 'user') | list | length }}",
      "{{ messages | rejectattr('role', 'eq', 'system') | map(attribute='role') | list }} {{ words "
      "| select('eq', 'a') | list }}",
      "{{ words | sort }} {{ words | sort(reverse=true) }} {{ words | sort(case_sensitive=true) }} "
      "{{ words | unique | list }} {{ words | reverse | list }}",
      "{{ [3, 1, 2] | max }} {{ [3, 1, 2] | min }} {{ [1, 2, 3] | sum }} {{ -3 | abs }} {{ '42' | "
      "int + 1 }} {{ '2.5' | float }} {{ 2.567 | round(1) }}",
      "{{ 'hello world' | title }} {{ 'hello' | capitalize }} {{ 'a\\nb\\nc' | indent(2) }} {{ "
      "'a\\nb' | indent(2, true) }} {{ 'x' | center(5) }}|",
      "{{ 'a<b>&\"c\"' | e }} {{ 'a b  c' | wordcount }} {{ 'abc' | replace('b', 'B') }} {{ 'aaa' "
      "| replace('a', 'b', 2) }} {{ 1 | string }}{{ [1] | list }}",
      "{{ {'b': 1, 'a': 2} | items | list }} {{ {'b': 1, 'a': 2} | dictsort }} {{ '%s-%d' | "
      "format('x', 3) }} {{ '%s and %s' % ('a', 'b') }}",
      // tojson as Hugging Face defines it (no HTML escaping, key order kept).
      "{{ messages[2] | tojson }}",
      "{{ messages[2].tool_calls | tojson(indent=2) }}",
      "{{ {'k': 'é<>&\\'\"', 'n': none, 'f': 1.0, 'l': []} | tojson }} {{ {'b': 1, 'a': 2} | "
      "tojson(sort_keys=true) }}",
      "{{ 'x' | tojson(ensure_ascii=true) }}{{ 'é🙂' | tojson(ensure_ascii=true) }} {{ {'a': 1} "
      "| tojson(separators=(',', ':')) }}",
      // Tests.
      "{{ n is defined }} {{ nope is defined }} {{ nope is undefined }} {{ none is none }} {{ n is "
      "not none }}",
      "{{ 'a' is string }} {{ n is number }} {{ n is integer }} {{ f is float }} {{ true is "
      "boolean }} {{ n is odd }} {{ n is even }} {{ 9 is divisibleby 3 }}",
      "{{ nested is mapping }} {{ words is sequence }} {{ words is iterable }} {{ 'a' is in ['a'] "
      "}} {{ n is sameas 7 }} {{ 'abc' is lower }}",
      "{{ messages[0] is mapping and messages[0].content is string }}",
      // String and dict methods.
      "{{ '  x '.strip() }}|{{ 'xxay'.lstrip('x') }}|{{ 'ayy'.rstrip('y') }}|{{ "
      "'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a b c'.split(' ', 1) }} {{ 'a b "
      "c'.rsplit(' ', 1) }}",
      "{{ 'hello'.startswith('he') }} {{ 'hello'.endswith(('x', 'lo')) }} {{ 'hello'.replace('l', "
      "'L') }} {{ 'hello'.upper() }} {{ 'HeLLo'.lower() }} {{ 'hello world'.title() }} {{ "
      "'hello'.capitalize() }}",
      "{{ 'hello'.find('l') }} {{ 'hello'.rfind('l') }} {{ 'hello'.count('l') }} {{ ', "
      "'.join(words) }} {{ '{} and {}'.format('a', 'b') }} {{ 'a\\nb'.splitlines() }}",
      "{{ nested.x.keys() | list }} {{ nested.x.values() | list }} {{ nested.get('x') }} {{ "
      "nested.get('q', 'dflt') }} {{ nested.get('q') }} {{ words.index('C') }} {{ words.count('a') "
      "}}",
      "{{ '12'.isdigit() }} {{ 'ab'.isalpha() }} {{ ' '.isspace() }} {{ 'AB'.isupper() }} {{ "
      "'ab'.islower() }}",
      // Globals.
      "{{ range(3) | list }} {{ range(1, 7, 2) | list }} {% for i in range(2) %}{{ i }}{% endfor "
      "%} {{ dict(a=1) }}",
      "{% if n > 5 %}{{ raise_exception('too many: ' ~ n) }}{% endif %}",
      // Errors both must raise.
      "{{ undefined_var.attr }}",
      "{{ 'a' + 1 }}",
      "{{ 1 / 0 }}",
      "{% for x in 5 %}{% endfor %}",
  };
  return t;
}

TEST(JinjaFeatures, SameBytesAsJinja2) {
  if (!testing::HaveJinja2()) {
    GTEST_SKIP()
        << "python3-jinja2 is not installed (scripts/setup.d/40-http-clients.sh installs it)";
  }
  std::vector<testing::ReferenceCase> cases;
  for (const std::string& t : Templates()) cases.push_back({t, t, Context()});
  const auto reference = testing::RenderWithJinja2(cases, "features");
  ASSERT_EQ(reference.size(), cases.size()) << "render_reference.py failed";
  for (size_t i = 0; i < cases.size(); ++i) {
    auto parsed = ChatTemplate::Parse(cases[i].template_source);
    ASSERT_TRUE(parsed.ok()) << cases[i].name << ": " << parsed.status();
    ChatTemplateInputs in;
    in.messages = Context()["messages"];
    in.bos_token = "<s>";
    in.eos_token = "</s>";
    in.extra = Context();
    auto ours = (*parsed)->Render(in);
    if (reference[i].output) {
      ASSERT_TRUE(ours.ok()) << cases[i].name << ": " << ours.status();
      EXPECT_EQ(*ours, *reference[i].output) << "template: " << cases[i].name;
    } else {
      EXPECT_FALSE(ours.ok()) << cases[i].name << ": Jinja2 fails (" << reference[i].error
                              << "), the engine renders " << *ours;
    }
  }
}

TEST(JinjaFeatures, RefusesUnsupportedConstructsAtLoad) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{% include 'x.jinja' %}", "unsupported construct {% include %}"},
      {"{% extends 'base' %}", "unsupported construct {% extends %}"},
      {"a\n{% import 'm' as m %}", "line 2: unsupported construct {% import %}"},
      {"{{ x | wordwrap(10) }}", "unsupported filter 'wordwrap'"},
      {"{{ x is prime }}", "unsupported test 'prime'"},
      {"{{ messages.append(1) }}", "unsupported method .append()"},
      {"{{ lipsum(2) }}", "unsupported function 'lipsum()'"},
      {"{% for x in y recursive %}{% endfor %}", "recursive for loops"},
      {"{% if x %}", "missing {% endif %}"},
      {"{{ x ", "not closed"},
  };
  for (const auto& [source, message] : cases) {
    auto parsed = ChatTemplate::Parse(source);
    ASSERT_FALSE(parsed.ok()) << source;
    EXPECT_NE(parsed.status().message().find(message), std::string::npos)
        << source << " -> " << parsed.status().message();
  }
}

TEST(JinjaFeatures, RaiseExceptionGivesTheTemplatesMessage) {
  auto t = ChatTemplate::Parse("{{ raise_exception('Conversation roles must alternate') }}");
  ASSERT_TRUE(t.ok());
  auto out = (*t)->Render({});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().message(), "Conversation roles must alternate");
}

// Found by fuzzing: integers beyond int64 in a template threw std::out_of_range through
// Parse and Render and aborted the process.
TEST(JinjaFeatures, IntegersBeyondInt64AreRefusedNotFatal) {
  for (const std::string source : {"{{ 99999999999999999999 }}", "{{ x.99999999999999999999 }}"}) {
    auto parsed = ChatTemplate::Parse(source);
    ASSERT_FALSE(parsed.ok()) << source;
    EXPECT_NE(parsed.status().message().find("integer out of range: 99999999999999999999"),
              std::string::npos)
        << parsed.status();
  }
  auto format = ChatTemplate::Parse("{{ '{99999999999999999999}'.format(1) }}");
  ASSERT_TRUE(format.ok()) << format.status();
  auto out = (*format)->Render({});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("no argument {99999999999999999999}"), std::string::npos)
      << out.status();
  // An attribute path's index beyond int64 indexes nothing, as a too-large index does.
  auto path = ChatTemplate::Parse(
      "{{ [[1]] | map(attribute='99999999999999999999') | list | length }}"
      "{{ [[1]] | map(attribute='0') | first }}");
  ASSERT_TRUE(path.ok()) << path.status();
  auto rendered = (*path)->Render({});
  ASSERT_TRUE(rendered.ok()) << rendered.status();
  EXPECT_EQ(*rendered, "11");
}

TEST(JinjaFeatures, RuntimeLimitsStopRunawayTemplates) {
  auto t = ChatTemplate::Parse("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
  ASSERT_TRUE(t.ok());
  auto out = (*t)->Render({});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("nest deeper"), std::string::npos) << out.status();
}

}  // namespace
}  // namespace specserve
