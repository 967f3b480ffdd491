"""Expressions family: step-by-step evaluation of integer expressions (the "Arithmetic LLM Training System" seed).

    prompt  "Evaluate: 5 + (10 - 3)"
    target  " <think> Step 1: 10 - 3 = 7 Expression now: 5 + 7 Step 2: 5 + 7 = 12 Expression now: 12 </think>
              Final Result: 12"                                   (one line; shown wrapped here)

An `invalid_rate` of the problems are malformed on purpose (unbalanced parentheses, a dangling operator, a division
by zero) and their answer is `ERROR`:

    prompt  "Evaluate: 5 + (10 - 3"
    target  " <think> Error: unbalanced parentheses </think> Final Result: ERROR"

Expressions are trees of `(op, left, right)` tuples with int leaves. They are written with the fewest parentheses
that keep the tree (a right operand of equal precedence keeps its parentheses: `1 + (2 + 3)`), so a string names
exactly one tree and one reduction order: always the leftmost operation whose operands are both numbers. A small
recursive-descent parser reads them back; nothing here calls Python's `eval`.
"""

from __future__ import annotations

import dataclasses
import random
import re
from dataclasses import dataclass

from .base import (
    BARE_EXPRESSION,
    Problem,
    Task,
    barrier,
    check_probabilities,
    canonical_number,
    last_match,
    option,
    typed_text,
)
from .steps import MAX_STEP_DIGITS, parse_steps, step_lines

TYPES = ["well_formed", "unbalanced_parens", "dangling_operator", "division_by_zero", "other_error"]
INVALID_KINDS = ("unbalanced_parens", "dangling_operator", "division_by_zero")  # what generation draws
# other_error: imported expressions that fail in another way (inexact division, overflow, stray characters)
OPERATORS = ("+", "-", "*", "/")
PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
PROMPT_PREFIX = "Evaluate: "
ERROR = "ERROR"
MAX_ABS_VALUE = 10**6  # intermediate results beyond this are rejected when generating and are errors when parsing
# The largest specs (test_ood included): longer expressions only make quadratic completions (every step rewrites
# the expression) and slow counts, larger values answers longer than a verifier reads (40 characters).
MAX_DEPTH = 64
MAX_OPERANDS = 64
MAX_ABS_VALUE_LIMIT = 10**18
_ERROR_TEXT = {
    "unbalanced_parens": "unbalanced parentheses",
    "dangling_operator": "dangling operator",
    "division_by_zero": "division by zero",
    "inexact_division": "inexact division",
    "overflow": "number too large",
    "syntax": "not an expression",
}


class ExpressionError(ValueError):
    """An expression that has no value; `kind` says why (one of the keys of `_ERROR_TEXT`)."""

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(f"{_ERROR_TEXT.get(kind, kind)}{': ' + detail if detail else ''}")
        self.kind = kind


@dataclass
class ExpressionsSpec:
    """What expressions to draw. Every field is validated on construction; errors name the field."""

    max_depth: int = option(4, f"most nested operations (`5 + (10 - 3)` has depth 2), at most {MAX_DEPTH}; test_ood "
                                 "uses max_depth + 1")
    num_range: tuple[int, int] = option((1, 20), "smallest and largest number in an expression", nargs=2)
    num_operands: tuple[int, int] = option((2, 5), "fewest and most numbers per expression (the most is capped "
                                           f"at 2**max_depth), at most {MAX_OPERANDS}; test_ood uses the most + 1 "
                                           "and + 2", nargs=2)
    operators: tuple[str, ...] = option(("+", "-"), "operators to use, any of + - '*' / (division is always "
                                        "exact)", nargs="+")
    invalid_rate: float = option(0.05, "share of malformed expressions whose answer is ERROR")
    invalid_kinds: tuple[str, ...] | None = option(None, "malformed kinds to draw (default: all; division_by_zero "
                                                   f"only when / is an operator): {', '.join(INVALID_KINDS)}",
                                                   nargs="+")
    max_abs_value: int = option(MAX_ABS_VALUE, "bound on every intermediate value (larger draws are redrawn), "
                                "at most 10**18")
    surface_variants: float = option(0.0, "probability that a prompt is written another way a person would write "
                                     "it: other spacing, redundant parentheses (`(12 - 4) - (3 + 1)`, `((1 + 2) + "
                                     "3)`, `(7)`) (`surface_variant`); the target stays the same", omit_default=True)

    def __post_init__(self):
        if not _is_int(self.max_depth) or not 1 <= self.max_depth <= MAX_DEPTH:
            raise ValueError(f"max_depth must be an integer in [1, {MAX_DEPTH}], got {self.max_depth!r}")
        self.num_range = _int_range("num_range", self.num_range)
        self.num_operands = _int_range("num_operands", self.num_operands)
        if self.num_operands[0] < 1:
            raise ValueError(f"num_operands must start at 1 or more (1: a lone number, `Evaluate: 7`), got "
                             f"{self.num_operands}")
        if self.num_operands[1] > MAX_OPERANDS:
            raise ValueError(f"num_operands allows at most {MAX_OPERANDS} numbers per expression, got "
                             f"{self.num_operands}")
        if self.num_operands[0] > 2**self.max_depth:
            raise ValueError(
                f"num_operands {self.num_operands} cannot fit in max_depth={self.max_depth} "
                f"(at most {2**self.max_depth} operands); raise max_depth or lower num_operands"
            )
        if isinstance(self.operators, str):  # "+-*/", "+ - * /" or "+,-"
            self.operators = tuple(ch for ch in self.operators if ch not in " ,")
        self.operators = tuple(self.operators)
        bad = [op for op in self.operators if op not in OPERATORS]
        if bad or not self.operators:
            raise ValueError(f"operators must be a non-empty subset of {OPERATORS}, got {self.operators!r}")
        if self.operators == ("/",):
            raise ValueError("operators needs at least one of + - * besides / (exact division is not always possible)")
        if not 0.0 <= float(self.invalid_rate) <= 1.0:
            raise ValueError(f"invalid_rate is a probability in [0, 1], got {self.invalid_rate!r}")
        if self.invalid_kinds is not None:
            self.invalid_kinds = tuple(self.invalid_kinds)
            bad = [k for k in self.invalid_kinds if k not in INVALID_KINDS]
            if bad or not self.invalid_kinds:
                raise ValueError(
                    f"invalid_kinds must be a non-empty subset of {INVALID_KINDS}, got {self.invalid_kinds!r}")
        if not _is_int(self.max_abs_value) or self.max_abs_value < max(abs(n) for n in self.num_range):
            raise ValueError(
                f"max_abs_value must be an integer >= every number in num_range, got {self.max_abs_value!r}")
        check_probabilities(self, "surface_variants")
        if self.max_abs_value > MAX_ABS_VALUE_LIMIT:
            raise ValueError(f"max_abs_value must be at most 10**18 (answers longer than that are not read), got "
                             f"{self.max_abs_value!r}")

    @property
    def kinds(self) -> tuple[str, ...]:
        """The invalid kinds actually drawn."""
        if self.invalid_kinds is not None:
            return self.invalid_kinds
        return INVALID_KINDS if "/" in self.operators else INVALID_KINDS[:2]

    @property
    def max_operands(self) -> int:
        return min(self.num_operands[1], 2**self.max_depth)

    @property
    def type_weights(self) -> dict[str, float]:
        """Each type's share of the problems drawn (sums to 1)."""
        weights = {"well_formed": 1.0 - self.invalid_rate}
        for kind in self.kinds:
            weights[kind] = self.invalid_rate / len(self.kinds)
        return {t: w for t, w in weights.items() if w > 0}

    def ood(self) -> "ExpressionsSpec":
        """The out-of-distribution spec: one level deeper and more operands than anything in training.

        Beyond MAX_DEPTH or MAX_OPERANDS there is no such spec: a ValueError says to build without test_ood."""
        top = self.max_operands
        if self.max_depth + 1 > MAX_DEPTH or top + 2 > MAX_OPERANDS:
            raise ValueError(
                f"test_ood draws expressions of depth max_depth + 1 = {self.max_depth + 1} with {top + 1}-{top + 2} "
                f"numbers, beyond the largest allowed (depth {MAX_DEPTH}, {MAX_OPERANDS} numbers): pass "
                f"num_test_ood=0 (--num-test-ood 0), or lower max_depth or num_operands")
        return dataclasses.replace(self, max_depth=self.max_depth + 1, num_operands=(top + 1, top + 2))

    def ood_specs(self) -> list[ExpressionsSpec]:
        """The out-of-distribution specs test_ood draws from: the one `ood()` spec (expressions have no lengths to
        choose among)."""
        return [self.ood()]

    def uniform(self) -> ExpressionsSpec:
        """The spec of the test_uniform and validation_uniform splits: this one. Every number of an expression is
        already drawn uniformly from num_range (there is no digit-balanced draw to undo), so those splits are more
        problems from the test distribution, kept for a table with the same columns for every family."""
        return dataclasses.replace(self)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_range(name: str, value) -> tuple[int, int]:
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (low, high) pair of integers, got {value!r}") from None
    if not (_is_int(lo) and _is_int(hi)):
        raise ValueError(f"{name} must be a (low, high) pair of integers, got {value!r}")
    if lo > hi:
        raise ValueError(f"{name} {value!r} is empty (low > high)")
    return lo, hi


# ---------------------------------------------------------------------------------------------------------------
# Trees: an int is a number, a tuple (op, left, right) an operation.


def apply(op: str, a: int, b: int, max_abs_value: int = MAX_ABS_VALUE) -> int:
    """`a op b` with the family's rules: exact division only, values bounded."""
    if op == "+":
        value = a + b
    elif op == "-":
        value = a - b
    elif op == "*":
        value = a * b
    elif op == "/":
        if b == 0:
            raise ExpressionError("division_by_zero", f"{a} / {b}")
        if a % b:
            raise ExpressionError("inexact_division", f"{a} / {b}")
        value = a // b
    else:
        raise ExpressionError("syntax", f"unknown operator {op!r}")
    if abs(value) > max_abs_value:
        raise ExpressionError("overflow", f"{a} {op} {b}")
    return value


def evaluate_tree(node, max_abs_value: int = MAX_ABS_VALUE) -> int:
    if isinstance(node, int):
        return node
    op, left, right = node
    return apply(op, evaluate_tree(left, max_abs_value), evaluate_tree(right, max_abs_value), max_abs_value)


def render(node, parent_precedence: int = 0, right_of_parent: bool = False) -> str:
    """`5 + (10 - 3)`: the fewest parentheses that keep the tree's shape."""
    if isinstance(node, int):
        return str(node)
    op, left, right = node
    prec = PRECEDENCE[op]
    text = f"{render(left, prec, False)} {op} {render(right, prec, True)}"
    if prec < parent_precedence or (right_of_parent and prec == parent_precedence):
        return f"({text})"
    return text


def count_operations(node) -> int:
    return 0 if isinstance(node, int) else 1 + count_operations(node[1]) + count_operations(node[2])


def depth(node) -> int:
    return 0 if isinstance(node, int) else 1 + max(depth(node[1]), depth(node[2]))


def reduce_once(node, max_abs_value: int = MAX_ABS_VALUE, delta: int = 0, undefined: int | None = None):
    """Reduce the leftmost operation whose operands are numbers: returns (new_tree, (a, op, b, value)).

    Raises ExpressionError when that operation has no value (division by zero...); the error's `.step` is the
    failing (a, op, b). To write plausible mistakes for rejected examples, `delta` is added to the result and
    `undefined` (when not None) stands in for a value that does not exist.
    """
    op, left, right = node
    if isinstance(left, int) and isinstance(right, int):
        try:
            value = apply(op, left, right, max_abs_value) + delta
        except ExpressionError as err:
            if undefined is not None:
                return undefined, (left, op, right, undefined)
            err.step = (left, op, right)
            raise
        return value, (left, op, right, value)
    if not isinstance(left, int):
        new_left, step = reduce_once(left, max_abs_value, delta, undefined)
        return (op, new_left, right), step
    new_right, step = reduce_once(right, max_abs_value, delta, undefined)
    return (op, left, new_right), step


def solution_steps(node, max_abs_value: int = MAX_ABS_VALUE, wrong_step: tuple[int, int] | None = None,
                   undefined: int | None = None):
    """The reduction of `node`: (steps, value), steps being (a, op, b, result, expression_now) tuples.

    Raises ExpressionError at the first step that has no value; the error's `.steps` holds the steps before it.
    For rejected examples: `wrong_step=(i, delta)` adds `delta` to the result of step i and carries on from the
    wrong value; `undefined` is written as the value of a step that has none (`7 / 0 = 0`).
    """
    steps = []
    while not isinstance(node, int):
        delta = wrong_step[1] if wrong_step is not None and wrong_step[0] == len(steps) else 0
        try:
            node, (a, op, b, value) = reduce_once(node, max_abs_value, delta, undefined)
        except ExpressionError as err:
            err.steps = steps
            raise
        steps.append((a, op, b, value, render(node)))
    return steps, node


# ---------------------------------------------------------------------------------------------------------------
# Parsing: tokens -> tree, by recursive descent over  expr := term (("+"|"-") term)* ;
# term := unary (("*"|"/") unary)* ; unary := "-" unary | number | "(" expr ")".

_TOKEN = re.compile(r"\s*(?:(\d+)|(.))")


def tokenize(text: str) -> list[str]:
    """'5+(10 - 3)' -> ['5', '+', '(', '10', '-', '3', ')']; raises ExpressionError on anything else."""
    tokens = []
    for number, other in _TOKEN.findall(str(text).strip()):
        if number:
            if len(number) > 30:
                raise ExpressionError("overflow", number[:10] + "...")
            tokens.append(number)
        elif other in "+-*/()":
            tokens.append(other)
        elif other in "×÷−":
            tokens.append({"×": "*", "÷": "/", "−": "-"}[other])
        elif not other.isspace():
            raise ExpressionError("syntax", f"unexpected {other!r}")
    if not tokens:
        raise ExpressionError("syntax", "empty expression")
    return tokens


class _Parser:
    def __init__(self, tokens: list[str]):
        self.tokens, self.pos = tokens, 0

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self):
        token = self.peek()
        self.pos += 1
        return token

    def expression(self):
        node = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            node = (op, node, self.term())
        return node

    def term(self):
        node = self.unary()
        while self.peek() in ("*", "/"):
            op = self.take()
            node = (op, node, self.unary())
        return node

    def unary(self):
        token = self.take()
        if token is None:
            raise ExpressionError("dangling_operator", "an operator has no right operand")
        if token == "-":
            operand = self.unary()
            return -operand if isinstance(operand, int) else ("*", -1, operand)
        if token.isdigit():
            return int(token)
        if token == "(":
            node = self.expression()
            if self.take() != ")":
                raise ExpressionError("unbalanced_parens", "a '(' is never closed")
            return node
        if token == ")":
            raise ExpressionError("unbalanced_parens", "a ')' closes nothing")
        raise ExpressionError("dangling_operator", f"{token!r} has no left operand")


def parse(text: str):
    """The tree of an expression; raises ExpressionError (with `.kind`) for anything malformed.

    >>> parse("5 + (10 - 3)")
    ('+', 5, ('-', 10, 3))
    """
    tokens = tokenize(text)
    if tokens.count("(") != tokens.count(")"):
        raise ExpressionError("unbalanced_parens", f"{tokens.count('(')} '(' for {tokens.count(')')} ')'")
    parser = _Parser(tokens)
    node = parser.expression()
    if parser.peek() is not None:
        token = parser.peek()
        kind = "unbalanced_parens" if token in "()" else "dangling_operator" if token in "+-*/" else "syntax"
        raise ExpressionError(kind, f"unexpected {token!r}")
    return node


def evaluate(text: str, max_abs_value: int = MAX_ABS_VALUE) -> int:
    """The value of an expression; raises ExpressionError (division by zero, malformed, too large...).

    >>> evaluate("5 + (10 - 3)")
    12
    """
    return evaluate_tree(parse(text), max_abs_value)


def solve(expression: str, max_abs_value: int = MAX_ABS_VALUE) -> tuple[str, str]:
    """(answer, target) for any expression string: the value or ERROR, and the step-by-step completion."""
    try:
        tree = parse(expression)
    except ExpressionError as err:
        return ERROR, render_error_target([], err.kind)
    try:
        steps, value = solution_steps(tree, max_abs_value)
    except ExpressionError as err:
        return ERROR, render_error_target(err.steps, err.kind, getattr(err, "step", None))
    return str(value), render_target(steps, value)


def render_target(steps, value) -> str:
    """' <think> Step 1: 10 - 3 = 7 Expression now: 5 + 7 ... </think> Final Result: 12'."""
    parts = [" <think>"]
    for i, (a, op, b, result, now) in enumerate(steps, 1):
        parts.append(f"Step {i}: {a} {op} {b} = {result} Expression now: {now}")
    parts.append(f"</think> Final Result: {value}")
    return " ".join(parts)


def render_error_target(steps, kind: str, failed_step=None) -> str:
    """The steps that had a value, then the one that has none (or the syntax error), then ERROR."""
    parts = [" <think>"]
    for i, (a, op, b, result, now) in enumerate(steps, 1):
        parts.append(f"Step {i}: {a} {op} {b} = {result} Expression now: {now}")
    if failed_step is not None:
        a, op, b = failed_step
        parts.append(f"Step {len(steps) + 1}: {a} {op} {b} Error: {_ERROR_TEXT[kind]}")
    else:
        parts.append(f"Error: {_ERROR_TEXT[kind]}")
    parts.append(f"</think> Final Result: {ERROR}")
    return " ".join(parts)


# ---------------------------------------------------------------------------------------------------------------
# Checking model output.

_FINAL = re.compile(r"Final Result:\s*(ERROR|-?\d[\d,]*)", re.IGNORECASE)
_FINAL_BARRIER = barrier(r"\w\s:,\-")  # a _FINAL match holds only letters, digits, spaces, : , and -
# The format reward's cue: " <think> Step 1: ... </think> Final Result: 12": one think block first, the result last.
_FORMAT = re.compile(r"\A\s*<think>(?:(?!</?think>).)*</think>\s*Final Result: ?(?:-?\d{1,40}|ERROR)\s*\Z", re.DOTALL)
_EVALUATE = re.compile(r"^\s*evaluate\s*:", re.IGNORECASE)


def extract_answer(text: str) -> str | None:
    """The last `Final Result: N` (or ERROR) in `text`; None if there is none. Never raises."""
    try:
        match = last_match(_FINAL, str(text), _FINAL_BARRIER)  # the last one, found from the end
        if match is None:
            return None
        found = match.group(1)
        return ERROR if found.upper() == ERROR else canonical_number(found)
    except Exception:
        return None


def verify_steps(text: str, max_abs_value: int = MAX_ABS_VALUE) -> list[bool]:
    """For each binary step `a op b = c` written in `text`, whether it is right (exact division; c within bounds).

    Works on this family's `Step 1: 10 - 3 = 7` and on `@@@@ 10 * 7 = 70 @@@@`-style steps; the steps are those
    `mathalign.tasks.steps.parse_steps` reads (a chain such as `2 + 3 + 4 = 9` is not a binary step). Never raises.

    >>> verify_steps(" <think> Step 1: 10 - 3 = 7 Expression now: 5 + 7 Step 2: 5 + 7 = 13")
    [True, False]
    """
    return [_step_is_right(a, op, b, c, max_abs_value) for a, op, b, c in parse_steps(text)]


def find_steps(text: str) -> list[tuple[int, str, int, int, bool]]:
    """Every binary step `a op b = c` in `text`, in order, as (a, op, b, c, correct); never raises.

    The steps are those `parse_steps` reads: a number that follows another operator (`2 + 3 * 4 = 14`) is part of a
    longer expression, and decimals are not integer arithmetic: both skipped. The steps reward scores these.

    >>> find_steps("Step 1: 10 - 3 = 7 Expression now: 5 + 7 Step 2: 5 + 7 = 13")
    [(10, '-', 3, 7, True), (5, '+', 7, 13, False)]
    >>> find_steps("5-(-3)=8, 7/2=3")
    [(5, '-', -3, 8, True), (7, '/', 2, 3, False)]
    """
    bound = 10 ** (2 * MAX_STEP_DIGITS + 1)  # keeps the check cheap: a larger result never equals a 30-digit c
    return [(a, op, b, c, _step_is_right(a, op, b, c, bound)) for a, op, b, c in parse_steps(text)]


def _step_is_right(a: int, op: str, b: int, c: int, max_abs_value: int) -> bool:
    try:
        return apply(op, a, b, max_abs_value) == c
    except ExpressionError:  # division by zero, inexact division, out of bounds
        return False


def normalize_expression(text: str) -> str:
    """Canonical spacing of an expression: `5+(10 -3)` -> `5 + (10 - 3)`, `5--3` -> `5 - -3`.

    Raises ExpressionError when the text holds something other than numbers, operators and parentheses.
    """
    out = []
    glue = True  # no space before the next token (start, after "(" or a sign)
    expect_operand = True  # a "-" here is a sign, not a subtraction
    for token in tokenize(text):
        sep = "" if glue else " "
        if token == ")":
            out.append(token)
            glue, expect_operand = False, False
        elif token == "(" or (token == "-" and expect_operand):
            out.append(sep + token)
            glue, expect_operand = True, True
        elif token.isdigit():
            out.append(sep + token)
            glue, expect_operand = False, False
        else:  # a binary operator
            out.append(sep + token)
            glue, expect_operand = False, True
    return "".join(out)


# ---------------------------------------------------------------------------------------------------------------
# Generation.


class _Retry(Exception):
    """The draw went out of bounds; draw again."""


def _shape_counts(max_depth: int, max_leaves: int) -> list[list[int]]:
    """counts[d][n]: number of binary tree shapes with n leaves and depth <= d."""
    counts = [[0] * (max_leaves + 1) for _ in range(max_depth + 1)]
    for d in range(max_depth + 1):
        counts[d][1] = 1
        if d:
            for n in range(2, max_leaves + 1):
                counts[d][n] = sum(counts[d - 1][k] * counts[d - 1][n - k] for k in range(1, n))
    return counts


class ExpressionsTask(Task):
    name = "expressions"
    types = list(TYPES)
    spec_class = ExpressionsSpec

    def generate(self, rng: random.Random, spec: ExpressionsSpec | None = None, type: str | None = None) -> Problem:
        """Draw one problem (of `type`, or well-formed/invalid as the spec's invalid_rate says)."""
        spec = spec or ExpressionsSpec()
        if type is None:
            type = "well_formed"
            if spec.invalid_rate and rng.random() < spec.invalid_rate:
                type = rng.choice(spec.kinds)
        elif type not in TYPES:
            raise ValueError(f"unknown expressions type {type!r}; valid types: {TYPES}")
        if type == "well_formed":
            tree = self.random_tree(rng, spec)
            steps, value = solution_steps(tree, spec.max_abs_value)
            expression = render(tree)
            problem = self._problem(expression, str(value), render_target(steps, value), type,
                                    count_operations(tree), {"tree": tree})
        else:
            problem = self._invalid(rng, spec, type)
        if spec.surface_variants and rng.random() < spec.surface_variants:
            return self.surface_variant(problem, rng)
        return problem

    def surface_variant(self, problem: Problem, rng: random.Random, spec: ExpressionsSpec | None = None) -> Problem:
        """`problem` written another way: other spacing (none, more, or drawn per gap) and, for a well-formed
        expression, parentheses it does not need around some operations, the whole expression or a number
        (`(12 - 4) - (3 + 1)`, `((1 + 2) + 3)`, `(7)`); never the canonical prompt nor `problem`'s own.

        Key, answer and target stay: the steps reduce the same tree (`spec` changes nothing). `meta["form"]` says
        what changed: `spacing`, `parentheses` or both.

        >>> task = ExpressionsTask()
        >>> variant = task.surface_variant(task.from_expression("12 - 4 - (3 + 1)"), random.Random(24))
        >>> variant.prompt, variant.answer, variant.key
        ('Evaluate: (12 - 4) - (3 + 1)', '4', '12 - 4 - (3 + 1)')
        """
        expression = problem.prompt[len(PROMPT_PREFIX):]
        tree = problem.meta.get("tree")
        for _ in range(100):
            if tree is not None:
                tokens = _loose_tokens(tree, rng, extra=rng.choice((0.0, 0.3, 0.6)), force=isinstance(tree, int))
            else:  # malformed: only the spacing can change
                tokens = tokenize(expression)
            text = _join_loose(tokens, rng)
            if PROMPT_PREFIX + text != problem.prompt and text != problem.key:
                break
        parenthesised = tree is not None and tokens.count("(") > render(tree).count("(")
        forms = [name for name, changed in (("parentheses", parenthesised),
                                            ("spacing", text != normalize_expression(text))) if changed]
        return dataclasses.replace(problem, prompt=PROMPT_PREFIX + text, meta={**problem.meta, "form": "+".join(forms)})

    def _problem(self, expression, answer, target, type, difficulty, meta) -> Problem:
        return Problem(prompt=PROMPT_PREFIX + expression, target=target, answer=answer, type=type,
                       difficulty=difficulty, key=expression, meta=meta)

    def from_expression(self, expression: str, max_abs_value: int = MAX_ABS_VALUE) -> Problem:
        """The problem for a given expression string (well-formed or not), e.g. from a seed JSONL file."""
        expression = normalize_expression(expression) if _tokenizes(expression) else " ".join(expression.split())
        answer, target = solve(expression, max_abs_value)
        try:
            tree = parse(expression)
            evaluate_tree(tree, max_abs_value)
            type, difficulty, meta = "well_formed", count_operations(tree), {"tree": tree}
        except ExpressionError as err:
            type = err.kind if err.kind in INVALID_KINDS else "other_error"
            difficulty, meta = _operator_count(expression), {}
        problem = self._problem(expression, answer, target, type, difficulty, meta)
        if type == "well_formed":  # `(12 - 4) - (3 + 1)` is the problem `12 - 4 - (3 + 1)`: one key
            problem.key = render(tree)
        return problem

    # -- trees ---------------------------------------------------------------------------------------------------

    def random_tree(self, rng: random.Random, spec: ExpressionsSpec, num_operands: int | None = None,
                    max_depth: int | None = None):
        """A tree of `num_operands` leaves (drawn from the spec when None) within max_depth and max_abs_value."""
        max_depth = spec.max_depth if max_depth is None else max_depth
        for _ in range(1000):
            n = num_operands or rng.randint(spec.num_operands[0], spec.max_operands)
            try:
                return self._subtree(rng, spec, n, max_depth)[0]
            except _Retry:
                continue
        raise ValueError(f"could not draw an expression within max_abs_value={spec.max_abs_value}; raise it")

    def _subtree(self, rng: random.Random, spec: ExpressionsSpec, n: int, depth_left: int):
        """(tree, value) with n leaves and depth <= depth_left."""
        lo, hi = spec.num_range
        if n == 1:
            value = rng.randint(lo, hi)
            return value, value
        cap = 2 ** (depth_left - 1)  # leaves a subtree one level down can hold
        k = rng.randint(max(1, n - cap), min(n - 1, cap))
        left, lv = self._subtree(rng, spec, k, depth_left - 1)
        right, rv = self._subtree(rng, spec, n - k, depth_left - 1)
        op = rng.choice(spec.operators)
        if op == "/":
            if isinstance(right, int):  # choose the divisor so that the division is exact
                divisors = _divisors_in_range(lv, lo, hi)
                if divisors:
                    right = rv = rng.choice(divisors)
            if rv == 0 or lv % rv:
                op = rng.choice([o for o in spec.operators if o != "/"])
        value = lv + rv if op == "+" else lv - rv if op == "-" else lv * rv if op == "*" else lv // rv
        if abs(value) > spec.max_abs_value:
            raise _Retry
        return (op, left, right), value

    # -- malformed expressions -----------------------------------------------------------------------------------

    def _invalid(self, rng: random.Random, spec: ExpressionsSpec, kind: str) -> Problem:
        if kind == "division_by_zero":
            expression, tree = self._division_by_zero(rng, spec)
        else:
            tree = self.random_tree(rng, spec)
            expression = render(tree)
            if kind == "unbalanced_parens":
                expression = _unbalance(rng, expression)
            else:
                expression = _dangle(rng, expression, spec.operators)
        answer, target = solve(expression, spec.max_abs_value)
        if answer != ERROR:  # a bug in the corruption helpers, not bad input
            raise RuntimeError(f"malformed expression {expression!r} ({kind}) evaluated to {answer}")
        return self._problem(expression, ERROR, target, kind, _operator_count(expression), {"source": tree})

    def _division_by_zero(self, rng: random.Random, spec: ExpressionsSpec):
        """A well-formed tree with one subtree divided by zero (a 0 leaf, or `(a - a)` when 0 is out of range)."""
        lo, hi = spec.num_range
        zero_is_leaf = lo <= 0 <= hi
        zero = 0 if zero_is_leaf else ("-", (a := rng.randint(lo, hi)), a)
        extra = 1 if zero_is_leaf else 2  # operands and depth the divisor adds
        n = rng.randint(spec.num_operands[0], spec.max_operands)
        base_n, base_depth = max(1, n - extra), spec.max_depth - extra
        if base_depth < 0:
            base_n, base_depth = 1, 0  # too shallow a spec for anything but `a / (b - b)`
        base_n = min(base_n, 2**base_depth)
        if base_n > 1:
            base = self.random_tree(rng, spec, num_operands=base_n, max_depth=base_depth)
        else:
            base = rng.randint(lo, hi)
        tree = _wrap_random_leaf(rng, base, lambda leaf: ("/", leaf, zero))
        return render(tree), tree

    # -- reading answers -----------------------------------------------------------------------------------------

    answer_cue = "final result"
    format_pattern = _FORMAT

    def extract_answer(self, text: str) -> str | None:
        return extract_answer(text)

    def read_prompt(self, text: str) -> str | None:
        """An expression of numbers, operators and parentheses (`Evaluate:` optional) as this family's prompt; None
        otherwise.

        >>> ExpressionsTask().read_prompt("5+(10 -3)"), ExpressionsTask().read_prompt("x-18=21, x=?")
        ('Evaluate: 5 + (10 - 3)', None)
        """
        text = typed_text(text)
        body = text.split(":", 1)[1].strip() if text.lower().startswith("evaluate:") else text
        if body and BARE_EXPRESSION.fullmatch(body) and re.search(r"\d", body):
            return self.normalize_prompt(PROMPT_PREFIX + body)
        return None

    def as_prompt(self, text: str) -> str:
        """Any text as `Evaluate: ...` (a malformed expression is a problem too: its answer is ERROR)."""
        text = str(text)
        return self.normalize_prompt(text if text.lower().startswith("evaluate:") else PROMPT_PREFIX + text)

    def problem_of(self, prompt: str) -> Problem | None:
        """The problem of the expression a prompt asks to evaluate (well-formed or not: malformed ones are ERROR)."""
        return self.from_expression(_EVALUATE.sub("", str(prompt)))

    def steps(self, text: str) -> list[str]:
        """The `Step N: ...` lines inside `<think> ... </think>`, spacing collapsed (`steps.step_lines`).

        >>> ExpressionsTask().steps(" <think> Step 1: 10 - 3 = 7 Expression now: 5 + 7 </think> Final Result: 12")
        ['Step 1: 10 - 3 = 7 Expression now: 5 + 7']
        """
        return step_lines(text)

    def canonical_answer(self, answer) -> str | None:
        text = str(answer).strip()
        return ERROR if text.upper() == ERROR else canonical_number(text)

    def normalize_prompt(self, text: str) -> str:
        """`evaluate:5+(10 -3)` and `5+(10-3)` -> `Evaluate: 5 + (10 - 3)`; text that is no expression only has its
        whitespace collapsed."""
        try:
            body = re.sub(r"^\s*evaluate\s*:?", "", str(text), flags=re.IGNORECASE)
            return PROMPT_PREFIX + normalize_expression(body)
        except Exception:
            return " ".join(str(text).split())

    def num_distinct(self, spec: ExpressionsSpec, type: str | None = None) -> int | None:
        """Distinct well-formed expressions: exact for + and - (bounds permitting), an upper bound with * or /.

        None for the malformed kinds (far more than any dataset asks for, but not counted exactly).
        """
        if type not in (None, "well_formed"):
            return None
        shapes = _shape_counts(spec.max_depth, spec.max_operands)[spec.max_depth]
        values = spec.num_range[1] - spec.num_range[0] + 1
        ops = len(spec.operators)
        return sum(shapes[n] * values**n * ops ** (n - 1) for n in range(spec.num_operands[0], spec.max_operands + 1))

    def num_distinct_per_stratum(self, spec: ExpressionsSpec, type: str) -> dict[str, int] | None:
        """{"lone": lone numbers, "operations": the rest} when the spec draws lone numbers (`num_operands` from 1).

        Numbers are drawn uniformly from 1 to 5 per expression, so a fifth of the draws are lone numbers, of which
        there are only 20 (numbers 1..20): uncapped, the first held-out split took all 20 and the model never saw
        `Evaluate: 7` in training (0% on lone numbers). As a stratum, a held-out split takes at most one of them
        (`data_builders.sampling.held_out_caps`)."""
        if type != "well_formed" or spec.num_operands[0] > 1:
            return None
        total = self.num_distinct(spec, type)
        lone = spec.num_range[1] - spec.num_range[0] + 1
        return {"lone": lone, "operations": total - lone}

    def stratum_of_key(self, key: str) -> str:
        return "lone" if key.lstrip("-").isdigit() else "operations"


def _loose_tokens(node, rng: random.Random, extra: float, parent_precedence: int = 0, right_of_parent: bool = False,
                  force: bool = False) -> list[str]:
    """`render`'s tokens with parentheses a person might add: around an operation that does not need them (with
    probability `extra`), now and then doubled, and rarely around a number (always when `force`)."""
    if isinstance(node, int):
        tokens = [str(node)]
        wrap = force or rng.random() < extra / 6
    else:
        op, left, right = node
        prec = PRECEDENCE[op]
        tokens = [*_loose_tokens(left, rng, extra, prec, False), op, *_loose_tokens(right, rng, extra, prec, True)]
        needed = prec < parent_precedence or (right_of_parent and prec == parent_precedence)
        wrap = needed or rng.random() < extra
    if wrap:
        tokens = ["(", *tokens, ")"]
        if rng.random() < 0.1:
            tokens = ["(", *tokens, ")"]
    return tokens


def _join_loose(tokens: list[str], rng: random.Random) -> str:
    """Tokens joined as people type them: no spaces, a space everywhere, canonical spacing, or each gap drawn."""
    style = rng.choice(("none", "every", "canonical", "drawn"))
    out = tokens[:1]
    for before, token in zip(tokens, tokens[1:]):
        canonical = "" if before == "(" or token == ")" else " "
        gap = {"none": "", "every": " ", "canonical": canonical}.get(style)
        if gap is None:
            gap = rng.choice(("", " ", " ", "  ")) if rng.random() < 0.5 else canonical
        out.append(gap + token)
    return "".join(out)


def _operator_count(expression: str) -> int:
    """Difficulty of a malformed expression: how many operator symbols it holds (it has no tree to count)."""
    return sum(expression.count(op) for op in OPERATORS)


def _tokenizes(text: str) -> bool:
    try:
        tokenize(text)
        return True
    except ExpressionError:
        return False


def _divisors_in_range(value: int, lo: int, hi: int) -> list[int]:
    if hi - lo > 2000:  # large ranges: a few random candidates are enough
        return [d for d in (1, -1, 2, -2, 3, 5, 7) if lo <= d <= hi and d and value % d == 0]
    return [d for d in range(lo, hi + 1) if d and value % d == 0]


def _leaf_paths(node, path=()):
    if isinstance(node, int):
        yield path
    else:
        yield from _leaf_paths(node[1], path + (1,))
        yield from _leaf_paths(node[2], path + (2,))


def _wrap_random_leaf(rng: random.Random, tree, wrap):
    path = rng.choice(list(_leaf_paths(tree)))

    def rebuild(node, path):
        if not path:
            return wrap(node)
        parts = list(node)
        parts[path[0]] = rebuild(node[path[0]], path[1:])
        return tuple(parts)

    return rebuild(tree, path)


def _unbalance(rng: random.Random, expression: str) -> str:
    """Drop one parenthesis, or (when there are none) add a stray one."""
    parens = [i for i, ch in enumerate(expression) if ch in "()"]
    if parens:
        i = rng.choice(parens)
        return (expression[:i] + expression[i + 1:]).replace("  ", " ").strip()
    tokens = expression.split(" ")
    numbers = [i for i, t in enumerate(tokens) if t.lstrip("-").isdigit()]
    i = rng.choice(numbers)
    if rng.random() < 0.5:
        tokens[i] = "(" + tokens[i]
    else:
        tokens[i] = tokens[i] + ")"
    return " ".join(tokens)


def _dangle(rng: random.Random, expression: str, operators) -> str:
    """An operator with a missing operand: at the end (`5 + 7 +`), at the start (`* 5 + 7`), or doubled (`5 + * 7`)."""
    op = rng.choice(operators)
    where = rng.randrange(3 if any(t in PRECEDENCE for t in expression.split(" ")) else 2)  # `7`: nothing to double
    if where == 0:
        return f"{expression} {op}"
    non_minus = [o for o in operators if o != "-"] or ["+"]
    if where == 1:
        return f"{rng.choice(non_minus)} {expression}"  # a leading "-" would just negate the first number
    tokens = expression.split(" ")
    ops = [i for i, t in enumerate(tokens) if t in PRECEDENCE]
    i = rng.choice(ops)
    tokens.insert(i + 1, rng.choice(non_minus))
    return " ".join(tokens)
