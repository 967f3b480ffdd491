"""What every problem family shares: the `Problem` record, the `Task` interface, and number parsing.

A family (arithmetic, expressions, gsm8k, aqua) is the single place that knows how to make a problem, render its
prompt and target, and check an answer. Data builders, rewards and evaluation all go through it, so a change of
format happens in exactly one module.
"""

from __future__ import annotations

import dataclasses
import random
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar


@dataclass(slots=True)  # millions are made per build: slots make them cheaper
class Problem:
    """One problem, ready to become a dataset row.

    `prompt` is what the model reads and `target` the completion it should write (it starts with a space, so
    `prompt + target` is the full text). `answer` is the gold answer as a canonical string ("18", "-3", "ERROR",
    "C"); `key` is the canonical identity of the problem, the thing train/test disjointness is measured on
    (spacing variants and operand-order variants share a key).
    """

    prompt: str
    target: str
    answer: str
    type: str
    difficulty: int
    key: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.prompt + self.target


class Task:
    """Interface of a problem family; subclasses fill in the class attributes and the methods below."""

    name: ClassVar[str]
    types: ClassVar[list[str]]  # every problem type the family can emit, in ClassLabel order
    spec_class: ClassVar[type]

    def make_spec(self, **kwargs):
        """Build the family's spec, refusing unknown option names with the list of valid ones."""
        return build_spec(self.spec_class, kwargs, family=self.name)

    def generate(self, rng: random.Random, spec) -> Problem:
        raise NotImplementedError(f"the {self.name!r} family does not generate problems")

    def draw(self, rng: random.Random, spec, type: str):
        """(key, make) for one random problem of `type`, `make()` rendering it. Data builders draw until they find
        unseen keys; a family that can name a problem before rendering it overrides this to make duplicates cheap."""
        problem = self.generate(rng, spec, type=type)
        return problem.key, lambda: problem

    def extract_answer(self, text: str) -> str | None:
        raise NotImplementedError

    def check(self, text: str, answer: str) -> bool:
        """Exact match of the answer found in `text` against the gold `answer`; never raises."""
        try:
            found = self.extract_answer(text)
            return found is not None and found == self.canonical_answer(answer)
        except Exception:  # a verifier must never take training down
            return False

    def canonical_answer(self, answer) -> str | None:
        """The gold answer in the same canonical form `extract_answer` returns."""
        return canonical_number(str(answer))

    def normalize_prompt(self, text: str) -> str:
        """Canonical spacing of a prompt a person typed (default: collapse runs of whitespace)."""
        return " ".join(str(text).split())

    # The part of `normalize_prompt` a `tokenizers` normalizer can do, as (regex, replacement) pairs applied in order
    # to every text the tokenizer encodes (`tokenizer_prompt_normalizer` in a recipe). It is saved in tokenizer.json,
    # so every user of a model gets it, through plain `AutoTokenizer`. Empty: text is tokenised as written.
    tokenizer_rewrites: ClassVar[tuple[tuple[str, str], ...]] = ()

    # -- the family's surface, asked by rewards, chat and evaluation (none of them re-parses it) ------------------

    # The answer cue, lower case, which a formatted completion states exactly once (two answers are no answer), and
    # the pattern a formatted completion must contain. Stricter than `extract_answer` on purpose: that reads an
    # answer out of almost anything (evaluation wants that), a format reward teaches the one right way to say it.
    answer_cue: ClassVar[str | None] = None
    format_pattern: ClassVar[re.Pattern | None] = None

    def has_answer_format(self, text: str) -> bool:
        """Whether `text` states its answer in this family's format (the cue once, `format_pattern` found); never
        raises. A family without a format (no `format_pattern`) has none."""
        try:
            if self.format_pattern is None or self.answer_cue is None:
                return False
            if text.lower().count(self.answer_cue) != 1:
                return False
            return self.format_pattern.search(text) is not None
        except Exception:
            return False

    def read_prompt(self, text: str) -> str | None:
        """What a person typed, recognised as this family's problem and written in its prompt format (normalised);
        None when it is not this family's (the default: a family that cannot tell)."""
        return None

    def as_prompt(self, text: str) -> str:
        """What a person typed, written in this family's prompt format without judging it (the family was chosen)."""
        return self.normalize_prompt(text)

    def problem_of(self, prompt: str) -> Problem | None:
        """The problem a prompt in this family's format asks, when the family can tell (None: it cannot)."""
        return None

    def steps(self, text: str) -> list[str]:
        """The reasoning steps written in `text`, one string each (default: the family writes none)."""
        return []

    def surface_variant(self, problem: Problem, rng: random.Random, spec=None) -> Problem:
        """`problem` written another way a person would write it (other spacing, operand order, redundant
        parentheses): the same key, answer and type, another prompt, the target for that prompt in `spec`'s style,
        `meta["form"]` naming the way. The default, for a family with one way of writing: `problem` itself."""
        return problem

    def num_distinct(self, spec, type: str | None = None) -> int | None:
        """How many distinct problems (keys) the spec can produce, per type or in total; None when unbounded."""
        return None

    def num_distinct_per_stratum(self, spec, type: str) -> dict | None:
        """{stratum: distinct problems of `type`} when the family can count them per bucket of the problems it draws
        (None: it cannot); with `stratum_of_key`, this lets the data builders keep held-out splits from taking all
        of a small bucket."""
        return None

    def stratum_of_key(self, key: str):
        """The stratum of the problem a key names, without building it (None: unknown)."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, types={self.types!r})"


def option(default, help: str, **cli):
    """A spec field with its help text (and argparse hints such as `nargs`, `choices`), so that the data builders'
    command lines are generated from the spec itself and never drift from it."""
    return field(default=default, metadata={"help": help, **cli})


def build_spec(spec_class, kwargs: dict, family: str):
    valid = [f.name for f in dataclasses.fields(spec_class)]
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ValueError(f"unknown {family} option(s) {unknown}; valid options: {valid}")
    return spec_class(**kwargs)


def check_probabilities(spec, *names: str) -> None:
    """Refuse a spec whose fields `names` are not probabilities: numbers (not bools) in [0, 1]."""
    for name in names:
        value = getattr(spec, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} is a probability in [0, 1], got {value!r}")


def parse_weights(name: str, value):
    """`["a_plus_b=2", "a_minus_b=1"]` (command-line style) -> `{"a_plus_b": 2.0, "a_minus_b": 1.0}`; plain lists and
    dicts pass through."""
    if isinstance(value, dict) or not any("=" in str(item) for item in value):
        return value if isinstance(value, dict) else tuple(value)
    weights = {}
    for item in value:
        label, _, weight = str(item).partition("=")
        try:
            weights[label] = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"{name}: weight of {label!r} is not a number: {weight!r}") from None
    return weights


def spec_to_dict(spec) -> dict[str, Any]:
    """A spec as plain JSON-able values (tuples become lists), for dataset cards."""
    out = {}
    for f in dataclasses.fields(spec):
        if not f.init:  # derived caches, not choices
            continue
        value = getattr(spec, f.name)
        if isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, dict):
            value = dict(value)
        out[f.name] = value
    return out


# ---------------------------------------------------------------------------------------------------------------
# What a person types: the operators a keyboard or a phone may produce, and the shape of a bare expression.

UNICODE_OPERATOR_CHARS = {"×": "*", "÷": "/", "−": "-", "–": "-", "＝": "=", "？": "?"}
UNICODE_OPERATORS = str.maketrans(UNICODE_OPERATOR_CHARS)
BARE_EXPRESSION = re.compile(r"[\d\s+\-*/().]+")  # digits, operators and parentheses


def typed_text(text) -> str:
    """What a person typed with keyboard operators and single spaces: `72 ÷  4` -> `72 / 4`."""
    return " ".join(str(text).translate(UNICODE_OPERATORS).split())


# ---------------------------------------------------------------------------------------------------------------
# Numbers: canonical strings so that "018", "18.0", "1,018" and " 18 " compare as the answers they are.

MAX_NUMBER_CHARS = 40  # longer digit runs are garbage, not answers (and int() of huge strings is slow)
# A minus sign counts only when it cannot be a binary operator ("5-3" ends in 3, "is -3" in -3).
_SIGN = r"(?:(?<![\w)])-)?"
_NUMBER = re.compile(_SIGN + r"\$?\d[\d,]*(?:\.\d+)?")
_INT = re.compile(_SIGN + r"\d+")


def canonical_number(text: str) -> str | None:
    """'1,018' -> '1018', '18.0' -> '18', '-0' -> '0', '2.50' -> '2.5'; None for anything that is not a number."""
    try:
        s = str(text).strip().replace(",", "").replace("$", "")
        if s.endswith("."):
            s = s[:-1]
        if not s or len(s) > MAX_NUMBER_CHARS:
            return None
        value = Decimal(s)
        if not value.is_finite():
            return None
        if value == value.to_integral_value():
            return str(int(value))
        return format(value.normalize(), "f")
    except (InvalidOperation, ValueError, TypeError):
        return None


def barrier(chars: str) -> re.Pattern:
    """The `barrier` argument of `last_match` for a pattern whose matches hold only `chars` after their first
    character (`chars` as written inside a regex class): it finds the last character outside that class."""
    return re.compile(rf"(?s:.*)[^{chars}]")


_NUMBER_BARRIER = barrier(r"\d$,.")  # after its first character, a _NUMBER match holds only digits, $ , and .
_INT_BARRIER = barrier(r"\d")


def last_match(pattern: re.Pattern, text: str, barrier: re.Pattern, accept=None) -> re.Match | None:
    """The last match `pattern.finditer(text)` yields (the last one `accept(match)` takes), found from the end.

    Answers come last, so this reads the end of the text first, in windows of growing size (256, 1,024, 4,096...
    characters), each starting at a *barrier*: a character that no match of `pattern` can hold after its first
    character (`barrier` finds the last one before a position; see `barrier()`). No match runs across a barrier, so a
    scan from one sees exactly the matches that a scan of the whole text sees there. The result is always that of
    `[m for m in pattern.finditer(text) if accept(m)][-1]`, but the work grows with the text after the answer (back
    to the barrier before it) rather than with the whole text: the answer at the end of a 1,000,000-character
    completion of numbers costs microseconds instead of a list of 300,000 matches. (A text without any barrier,
    such as `1.1.1.1...` for numbers, is read whole, as before; callers that must bound their work, such as the
    reward functions, bound the text.)
    """
    end, window = len(text), 256
    while end > 0:
        start = 0
        if end > window:
            found = barrier.match(text, 0, end - window)
            start = found.end() - 1 if found else 0
        last = None
        for match in pattern.finditer(text, start):
            if match.start() >= end:  # seen in an earlier window
                break
            if accept is None or accept(match):
                last = match
        if last is not None:
            return last
        end, window = start, window * 4
    return None


def _canonical_match(match: re.Match) -> bool:
    return canonical_number(match.group()) is not None


def last_number(text: str) -> str | None:
    """The last number in `text` (commas and $ allowed), canonical; None if there is none."""
    match = last_match(_NUMBER, text, _NUMBER_BARRIER, _canonical_match)
    return canonical_number(match.group()) if match else None


def last_integer(text: str) -> str | None:
    """The last (signed) integer in `text`, canonical; None if there is none."""
    match = last_match(_INT, text, _INT_BARRIER, _canonical_match)
    return canonical_number(match.group()) if match else None
