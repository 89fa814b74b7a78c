"""A safe subset of R/Wilkinson formulas for ``stats.glm``, checked before formulaic sees anything.

formulaic evaluates the Python inside ``I(...)`` and function calls, so requester text must never reach
it as such. This module tokenises and parses the formula with a small grammar, then re-emits a
canonical formula in which every variable is an alias (``_v0``, ``_v1``, …), every function is a
whitelisted numpy ufunc and every literal a number. Anything else is refused with the field
``analysis.params.formula``. Grammar (``y ~ rhs``)::

    rhs    := ['-'] term (('+' | '-') term)*          term := factor ((':' | '*') factor)*
    factor := '0' | '1' | NAME | 'C(' NAME ')' | 'I(' arith ')' | FUNC '(' arith ')' | '(' rhs ')'
    arith  := arithmetic on NAME, numbers, + - * / ** and FUNC(...)
    FUNC   := log | log1p | log2 | log10 | exp | sqrt | abs  (optionally written np.log, …)

The outcome and the ``offset`` / ``weights`` expressions use ``arith``, evaluated here with numpy.
Data-dependent transforms (``scale``, ``center``, ``poly``, ``bs``) are refused on purpose: they would
be computed on each hospital's own data and give a different design at every node.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from phds.errors import InputError

FUNCTIONS: dict[str, Callable[[Any], Any]] = {
    "log": np.log, "log1p": np.log1p, "log2": np.log2, "log10": np.log10,
    "exp": np.exp, "sqrt": np.sqrt, "abs": np.abs,
}  # fmt: skip
_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_.]*)"
    r"|(?P<op>\*\*|[~+\-*/:(),]))"
)
_ALIAS = re.compile(r"\b_v(\d+)\b")
MAX_FORMULA = 1000


def _fail(message: str, field_name: str) -> InputError:
    return InputError(message, field=field_name)


def tokenize(text: str, field_name: str) -> list[tuple[str, str]]:
    """Split *text* into (kind, text) tokens; any other character is refused."""
    if len(text) > MAX_FORMULA:
        raise _fail(f"at most {MAX_FORMULA} characters", field_name)
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise _fail(f"unexpected character {text[pos:].strip()[:1]!r} at position {pos}", field_name)
        kind = m.lastgroup or "op"
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


@dataclass
class _Parser:
    tokens: list[tuple[str, str]]
    field_name: str
    variables: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    pos: int = 0

    # -- helpers --
    def peek(self, offset: int = 0) -> tuple[str, str]:
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else ("end", "")

    def take(self, text: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok[0] == "end" or (text is not None and tok[1] != text):
            want = repr(text) if text else "more"
            raise _fail(f"expected {want} but found {tok[1] or 'the end'!r}", self.field_name)
        self.pos += 1
        return tok

    def alias(self, name: str) -> str:
        if name not in self.variables:
            self.variables.append(name)
        return f"_v{self.variables.index(name)}"

    def function(self, name: str) -> str:
        bare = name[3:] if name.startswith("np.") else name
        if bare not in FUNCTIONS:
            allowed = ", ".join(sorted(FUNCTIONS))
            raise _fail(f"function {name!r} is not allowed (allowed: C, I, {allowed})", self.field_name)
        return bare

    # -- arithmetic: emitted as Python for formulaic, and kept as a tree for numpy --
    def arith(self) -> tuple[str, Any]:
        code, tree = self.aterm()
        while self.peek()[1] in {"+", "-"}:
            op = self.take()[1]
            rcode, rtree = self.aterm()
            code, tree = f"({code} {op} {rcode})", (op, tree, rtree)
        return code, tree

    def aterm(self) -> tuple[str, Any]:
        code, tree = self.afactor()
        while self.peek()[1] in {"*", "/"}:
            op = self.take()[1]
            rcode, rtree = self.afactor()
            code, tree = f"({code} {op} {rcode})", (op, tree, rtree)
        return code, tree

    def afactor(self) -> tuple[str, Any]:
        if self.peek()[1] == "-":
            self.take()
            code, tree = self.afactor()
            return f"(-{code})", ("neg", tree)
        code, tree = self.aatom()
        if self.peek()[1] == "**":
            self.take()
            rcode, rtree = self.afactor()
            return f"({code} ** {rcode})", ("**", tree, rtree)
        return code, tree

    def aatom(self) -> tuple[str, Any]:
        kind, text = self.take()
        if kind == "num":
            return text, ("num", float(text))
        if text == "(":
            inner = self.arith()
            self.take(")")
            return inner
        if kind == "name" and self.peek()[1] == "(":
            fn = self.function(text)
            self.take("(")
            code, tree = self.arith()
            self.take(")")
            return f"np.{fn}({code})", ("fn", fn, tree)
        if kind == "name":
            return self.alias(text), ("var", text)
        raise _fail(f"unexpected {text!r}", self.field_name)

    # -- the right-hand side --
    def rhs(self) -> str:
        parts = []
        if self.peek()[1] == "-":
            self.take()
            parts.append("-")
        parts.append(self.term())
        while self.peek()[1] in {"+", "-"}:
            parts.append(self.take()[1])
            parts.append(self.term())
        return " ".join(parts)

    def term(self) -> str:
        factors = [self.factor()]
        ops = []
        while self.peek()[1] in {":", "*"}:
            ops.append(self.take()[1])
            factors.append(self.factor())
        if len(factors) > 1 and any(f in {"0", "1"} for f in factors):
            raise _fail("0 and 1 (the intercept) cannot be part of an interaction", self.field_name)
        out = factors[0]
        for op, f in zip(ops, factors[1:], strict=True):
            out = f"{out}:{f}" if op == ":" else f"{out} * {f}"
        return out

    def factor(self) -> str:
        kind, text = self.take()
        if kind == "num":
            if text not in {"0", "1"}:
                raise _fail(f"only 0 or 1 may stand alone in a formula, not {text}", self.field_name)
            return text
        if text == "(":
            inner = self.rhs()
            self.take(")")
            return f"({inner})"
        if kind != "name":
            raise _fail(f"unexpected {text!r}", self.field_name)
        if self.peek()[1] != "(":
            return self.alias(text)
        self.take("(")
        if text == "C":
            kind2, name = self.take()
            if kind2 != "name":
                raise _fail("C() takes one variable name", self.field_name)
            self.take(")")
            if name not in self.categorical:
                self.categorical.append(name)
            return f"C({self.alias(name)})"
        if text == "I":
            code, _ = self.arith()
            self.take(")")
            return f"I({code})"
        fn = self.function(text)
        code, _ = self.arith()
        self.take(")")
        return f"np.{fn}({code})"


@dataclass(frozen=True)
class Expression:
    """An arithmetic expression over variables (outcome, offset, weights), evaluated with numpy."""

    text: str
    tree: Any
    variables: tuple[str, ...]

    def evaluate(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        def ev(node: Any) -> Any:
            kind = node[0]
            if kind == "num":
                return node[1]
            if kind == "var":
                return np.asarray(columns[node[1]], dtype=float)
            if kind == "neg":
                return -ev(node[1])
            if kind == "fn":
                return FUNCTIONS[node[1]](ev(node[2]))
            a, b = ev(node[1]), ev(node[2])
            return {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "**": np.power}[kind](
                a, b
            )

        with np.errstate(all="ignore"):
            out = np.asarray(ev(self.tree), dtype=float)
        n = len(next(iter(columns.values()))) if columns else 1
        return np.broadcast_to(out, (n,)).copy() if out.ndim == 0 else out


VETTED_TRANSFORMS: dict[str, tuple[str, ...]] = {"outcome": (), "offset": ("log",), "weights": ()}
"""What an outcome, offset or weights expression may be besides a raw variable: ``log(t)`` for an offset
(a Poisson rate's exposure time). Arithmetic there would let a requester single out rows (an outcome that
is zero but for one patient, a weight concentrated on one row), so nothing else is allowed."""


def check_vetted(expression: Expression, role: str, field_name: str) -> None:
    """Refuse an outcome, offset or weights that is neither a raw variable nor a vetted transform of one."""
    tree = expression.tree
    if tree[0] == "var":
        return
    allowed = VETTED_TRANSFORMS[role]
    if tree[0] == "fn" and tree[1] in allowed and tree[2][0] == "var":
        return
    also = f" or {' / '.join(f'{fn}(variable)' for fn in allowed)}" if allowed else ""
    raise _fail(
        f"the {role} must be a variable{also}, not {expression.text!r}: arithmetic on the {role} can "
        "single out rows",
        field_name,
    )


def parse_expression(text: str, field_name: str) -> Expression:
    """Parse an arithmetic expression (e.g. ``np.log(survtime)``)."""
    parser = _Parser(tokenize(text, field_name), field_name)
    _, tree = parser.arith()
    if parser.peek()[0] != "end":
        raise _fail(f"unexpected {parser.peek()[1]!r}", field_name)
    return Expression(text.strip(), tree, tuple(parser.variables))


@dataclass(frozen=True)
class ParsedFormula:
    """A checked formula: the outcome, the canonical right-hand side over aliases, and the variables."""

    outcome: Expression
    rhs: str
    variables: tuple[str, ...]
    categorical: tuple[str, ...]

    def alias_of(self, name: str) -> str:
        return f"_v{self.variables.index(name)}"

    def display(self, column: str) -> str:
        """A formulaic column name with the aliases replaced by the variables' names."""
        return _ALIAS.sub(lambda m: self.variables[int(m.group(1))], column)


def parse_formula(text: str, field_name: str = "analysis.params.formula") -> ParsedFormula:
    """Check *text* against the grammar in the module docstring; refuse anything else."""
    tokens = tokenize(text, field_name)
    if sum(1 for t in tokens if t[1] == "~") != 1:
        raise _fail("a formula needs exactly one '~', as in 'y ~ x1 + x2'", field_name)
    cut = next(i for i, t in enumerate(tokens) if t[1] == "~")
    outcome = _Parser(tokens[:cut], field_name)
    _, tree = outcome.arith()
    if outcome.peek()[0] != "end":
        raise _fail(f"unexpected {outcome.peek()[1]!r} in the outcome", field_name)
    rhs = _Parser(tokens[cut + 1 :], field_name, variables=list(outcome.variables))
    canonical = rhs.rhs()
    if rhs.peek()[0] != "end":
        raise _fail(f"unexpected {rhs.peek()[1]!r}", field_name)
    lhs_text = " ".join(t[1] for t in tokens[:cut])
    return ParsedFormula(
        Expression(lhs_text, tree, tuple(outcome.variables)),
        canonical,
        tuple(rhs.variables),
        tuple(rhs.categorical),
    )
