"""Every `pattern` of the scenario JSON Schema works in JavaScript-based editors (ECMA-262),
and the assertion grammar still accepts and refuses exactly what it did."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.scenario import scenario_schema
from twin.scenario.assertions import ASSERTION_PATTERN, parse_assertion

# The grammar as it was written with Python-only named groups: the reference for "the same strings".
NAMED_GROUPS = re.compile(
    r"^\s*(?P<path>[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*)\s*(?P<op><=|>=|==|!=|<|>)\s*"
    r"(?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)

# Escapes that mean the same in ECMA-262 with the `u` flag (what JSON Schema tools use).
_JS_ESCAPES = set("dDwWsSbBnrtfv0cxukpP123456789") | set("^$\\.*+?()[]{}|/")
_PYTHON_ONLY_GROUPS = {
    "(?P<": "Python named group (?P<name>...)",
    "(?P=": "Python named backreference (?P=name)",
    "(?#": "comment group (?#...)",
    "(?>": "atomic group (?>...)",
    "(?(": "conditional group (?(...)...)",
}


def js_incompatibilities(pattern: str) -> list[str]:
    """What in `pattern` is not ECMA-262 (`u` flag), or means something else there."""
    found = [why for start, why in _PYTHON_ONLY_GROUPS.items() if start in pattern]
    if re.search(r"\(\?[aiLmsux]+[-:)]|\(\?-[imsx]+:", pattern):
        found.append("inline flags (?i) / (?i:...)")
    in_class = False
    k = 0
    while k < len(pattern):
        char = pattern[k]
        if char == "\\" and k + 1 < len(pattern):
            escaped = pattern[k + 1]
            if escaped not in _JS_ESCAPES and not (in_class and escaped == "-"):
                found.append(f"escape \\{escaped}")
            k += 2
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class:
            in_class = False
        elif not in_class and char in "*+?}" and pattern[k + 1 : k + 2] == "+":
            found.append(f"possessive quantifier {char}+")
        k += 1
    return found


def schema_patterns(node: Any) -> Iterator[str]:
    """Every regular expression in a JSON Schema: `pattern` values and `patternProperties` keys."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                yield value
            elif key == "patternProperties" and isinstance(value, dict):
                yield from value
            yield from schema_patterns(value)
    elif isinstance(node, list):
        for item in node:
            yield from schema_patterns(item)


PATTERNS = sorted(set(schema_patterns(scenario_schema())))


def test_the_schema_has_the_assertion_and_name_patterns() -> None:
    assert ASSERTION_PATTERN in PATTERNS
    assert r"^[A-Za-z][A-Za-z0-9_]*$" in PATTERNS


@pytest.mark.parametrize("pattern", PATTERNS)
def test_every_schema_pattern_is_ecma_262(pattern: str) -> None:
    assert js_incompatibilities(pattern) == []


@pytest.mark.parametrize(
    ("pattern", "what"),
    [
        (NAMED_GROUPS.pattern, "Python named group"),
        (r"(?P<a>x)(?P=a)", "named backreference"),
        (r"abc\Z", "escape \\Z"),
        (r"\Aabc", "escape \\A"),
        (r"(?i)abc", "inline flags"),
        (r"(?i:abc)", "inline flags"),
        (r"a*+b", "possessive quantifier *+"),
        (r"a{2}+", "possessive quantifier }+"),
        (r"(?>ab)", "atomic group"),
        (r"(?#note)a", "comment group"),
        (r"(?(1)a|b)", "conditional group"),
    ],
)
def test_the_check_finds_python_only_syntax(pattern: str, what: str) -> None:
    assert any(what in problem for problem in js_incompatibilities(pattern)), js_incompatibilities(pattern)


def test_the_check_passes_plain_ecma_syntax() -> None:
    assert js_incompatibilities(r"^[-+]?(?:\d+\.?\d*|\.\d+)\s*[a-z_\-]+$") == []


# --------------------------------------------------------------------------- same strings

EXAMPLES = [
    "tracking.max_error_deg < 2.0",
    "  commands.failed==0  ",
    "a.b-c_d >= -1e-3",
    "x != .5",
    "x <= 5.",
    "x > +7E2",
    "x < 1\n",
    "x<1",
    "x = 1",
    "x < ",
    "x.. < 1",
    ".x < 1",
    "x < 1e",
    "x < 1.2.3",
    "x =< 1",
    "x < nan",
    "x < inf",
    "x y < 1",
    "",
]
ALPHABET = "ab_-.019 \t<>=!+eE"


def python_accepts(text: str) -> bool:
    try:
        parse_assertion(text)
    except ValueError:
        return False
    return True


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.sampled_from(EXAMPLES), st.text(alphabet=ALPHABET, max_size=20), st.text(max_size=12)))
def test_python_accepts_and_refuses_what_it_did(text: str) -> None:
    old = NAMED_GROUPS.match(text)
    assert python_accepts(text) == (old is not None)
    if old is not None:
        parsed = parse_assertion(text)
        assert (parsed.path, parsed.op, parsed.bound) == (old["path"], old["op"], float(old["num"]))


_NODE = shutil.which("node")
_JS = """
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
const out = {compiled: {}, matches: []};
for (const p of input.patterns) {
  try { new RegExp(p, "u"); out.compiled[p] = null; } catch (e) { out.compiled[p] = String(e); }
}
const assertion = new RegExp(input.assertion, "u");
out.matches = input.texts.map((t) => assertion.test(t));
process.stdout.write(JSON.stringify(out));
"""


@pytest.mark.skipif(_NODE is None, reason="no JavaScript engine (node) on this machine")
def test_javascript_compiles_every_pattern_and_agrees_on_assertions() -> None:
    assert _NODE is not None
    rng = random.Random(5)
    noise = ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 16))) for _ in range(1000)]
    # Pieces of assertions, right and wrong, put together: many valid ones and near misses.
    pieces = [
        ["", " ", "\t", "\n"],
        ["a", "a.b", "x-1.y_2", "a..b", ".a", "a b", "é", ""],
        ["", " ", "  "],
        ["<", "<=", ">", ">=", "==", "!=", "=", "=<", "<>"],
        ["", " "],
        ["1", "-2.5", "+.5", "3.", "1e3", "1E-3", "1e", ".", "1.2.3", "nan", "0x1", ""],
        ["", " ", "\n", "x"],
    ]
    built = ["".join(rng.choice(options) for options in pieces) for _ in range(2000)]
    texts = EXAMPLES + noise + built
    request = {"patterns": PATTERNS, "assertion": ASSERTION_PATTERN, "texts": texts}
    done = subprocess.run(
        [_NODE, "-e", _JS], input=json.dumps(request), capture_output=True, text=True, check=True
    )
    result = json.loads(done.stdout)
    assert result["compiled"] == {p: None for p in PATTERNS}
    disagree = [t for t, js in zip(texts, result["matches"], strict=True) if js != python_accepts(t)]
    assert disagree == []
    assert sum(result["matches"]) > 200, "the sample holds valid assertions too"
