#!/usr/bin/python3
"""Reference renderer for the chat-template tests: Python's Jinja2, set up as Hugging
Face transformers' apply_chat_template sets it up (ImmutableSandboxedEnvironment with
trim_blocks and lstrip_blocks, the loopcontrols extension, a transparent
{% generation %} block, tojson as json.dumps without HTML escaping, raise_exception,
strftime_now).

Reads a JSON list of cases from stdin: {"template": str, "context": {...}}; writes a
JSON list of results: {"output": str} or {"error": str}, one per case, in order.
"""
import json
import sys
from datetime import datetime

import jinja2
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class GenerationBlock(Extension):
    """{% generation %}...{% endgeneration %} renders its body (HF's AssistantTracker
    records the span; the text is unchanged)."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


class TemplateError(Exception):
    pass


def raise_exception(message):
    raise TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def strftime_now(fmt):
    return datetime.now().strftime(fmt)


def make_environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                       extensions=[GenerationBlock, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def main():
    env = make_environment()
    cases = json.load(sys.stdin)
    results = []
    compiled = {}
    for case in cases:
        try:
            source = case["template"]
            if source not in compiled:
                compiled[source] = env.from_string(source)
            template = compiled[source]
            results.append({"output": template.render(**case["context"])})
        except Exception as e:  # the C++ side only checks that both refuse
            results.append({"error": "%s: %s" % (type(e).__name__, e)})
    json.dump(results, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
