"""Arithmetic family: the nine problem types of "Teaching NanoGPT to do Math", e.g. `72/4=?` or `x-18=21, x=?`.

    prompt  "72/4=?"            target  " The answer is 18."                        (answer_style="plain")
                                        " The answer is 18 because 72/4 equals 18."  (answer_style="explain")
                                        " Reversed: 81. The answer is 18."           (answer_style="reversed")
    prompt  "x-18=21, x=?"      target  " x=21+18. The answer is 39."               (answer_style="scratchpad")
                                        " x=21+18, Reversed: 93. The answer is 39."  (answer_style="worked")
    prompt  "17*19=?"           target  " 17*9: 351, 17*10: 071, Reversed: 323. The answer is 323."  ("worked")
    prompt  "2016/48=?"         target  " 1008/24, 504/12, 252/6, 126/3, Reversed: 24. The answer is 42."  ("worked")

Whatever the style, the last sentence is `The answer is N.` and that is what gets checked. Reversed digits and a
short scratchpad are the formats Lee et al. (2023) found to cut the samples a small transformer needs.

`worked` combines them so that every token a model writes is a small lookup: an equation is first rewritten as the
one operation that solves it (`x=21+18`), a product is split into one partial product per digit of the second
operand (each shifted to its place and written units first), a negative difference is written as `-(b-a)`, a
division is rewritten until its divisor ends in 1, 3, 7 or 9 (halving both numbers, dropping a zero, doubling a
divisor that ends in 5), and the result's digits come units first, as schoolbook arithmetic produces them. A
0.4M-parameter MathGPT trained on the nine types (validation split, loss on the answers only) reached 11% with
plain answers after 3,000 steps and 74% with worked ones; on the three division types alone, the division
rewrites took it from 76.5% to 98.3% after 1,500 steps.

Operands are drawn digit-balanced (first a digit count, then a number with that many digits), so 1-digit operands
are not drowned by 2-digit ones. A problem's `key` ignores spacing and operand order: `3+4=?` and `4+3=?` are the
same problem, and so are `x+4=10, x=?` and `4+x=10, x=?`.
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
from dataclasses import dataclass, field

from .base import (
    BARE_EXPRESSION,
    UNICODE_OPERATOR_CHARS,
    UNICODE_OPERATORS,
    Problem,
    Task,
    barrier,
    check_probabilities,
    last_integer,
    last_match,
    option,
    parse_weights,
    typed_text,
)

TYPES = [
    "a_plus_b",  # 17+19=?
    "a_minus_b",  # 17-19=?
    "a_times_b",  # 17*19=?
    "a_over_b",  # 72/4=?         (exact division only)
    "x_times_b",  # x*4=72, x=?   (or 4*x=72)
    "x_plus_b",  # x+4=10, x=?    (or 4+x=10)
    "x_minus_b",  # x-18=21, x=?
    "b_minus_x",  # 26-x=3, x=?
    "b_over_x",  # 26/x=2, x=?
]
EQUATION_TYPES = frozenset(TYPES[4:])
COMMUTATIVE_TYPES = frozenset({"a_plus_b", "a_times_b"})  # their key sorts the operands
ANSWER_STYLES = ("plain", "explain", "reversed", "scratchpad", "worked")
OPERAND_DRAWS = ("digit_balanced", "uniform")
MAX_DIGITS = 18  # beyond this the numbers are no longer "arithmetic for a tiny model", just slow

_ANSWER = re.compile(r"[Tt]he answer is\s*(-?\d[\d,]*)")
_ANSWER_BARRIER = barrier(r"\w\s,\-")  # an _ANSWER match holds only letters, digits, spaces, commas, -
# The format reward's cue: "The answer is 18." / "The answer is 18 because 72/4 equals 18." (the sentence may go on,
# the number may not).
_FORMAT = re.compile(r"[Tt]he answer is -?\d{1,40}(?=\.?(?:\s|\Z))")
_TYPED_QUESTION = re.compile(r"[\d\s+\-*/=?,x]+")  # digits, operators, `=`, `?`, `,` and the unknown x


@dataclass
class ArithmeticSpec:
    """What problems to draw. Every field is validated on construction; errors name the field."""

    min_digits: int = option(1, "fewest digits per operand (1-digit numbers include 0)")
    max_digits: int = option(2, f"most digits per operand, at most {MAX_DIGITS}; test_ood uses max_digits + 1 "
                             f"(or --ood-digits), so at {MAX_DIGITS} it needs --num-test-ood 0")
    types: tuple[str, ...] | dict[str, float] = option(
        tuple(TYPES), f"problem types, drawn evenly, or weighted as type=weight; any of {', '.join(TYPES)}", nargs="+"
    )
    train_types: dict[str, float] | None = option(
        None, "the train split's weight of each type (type=weight), where it should differ from `types`: a type "
        "learned slowly gets more of the training rows, an easy one fewer, while every held-out split keeps the mix "
        "of `types` (a type left out keeps its weight there)", nargs="+", omit_default=True)
    answer_style: str = option("plain", "target text: plain, explain (`... because 72/4 equals 18`), reversed "
                               "(answer digits reversed first), scratchpad (one short step first) or worked (the "
                               "operation that solves it, partial products, then the digits reversed: the easiest "
                               "to learn)",
                               choices=ANSWER_STYLES)
    spacing_variants: float = option(0.1, "probability that a prompt uses other spacing (`72-x=34,x=?`, "
                                     "`72 - x = 34, x = ?`); normalize_prompt maps them all to one form")
    surface_variants: float = option(0.0, "probability that a prompt is written another way a person would write "
                                     "it: any spacing around each operator, `=`, `,` and `?`, the operands of "
                                     "+ and * in either order (`surface_variant`); the target stays the same",
                                     omit_default=True)
    allow_negative: bool = option(True, "subtraction may give negative numbers (`3-7=?`)")
    # The two options below are left out of a dataset's rebuild command while at their defaults (omit_default), so
    # builds that do not use them keep the bytes they had before the options existed.
    operand_draw: str = option("digit_balanced", "how operands are drawn: digit_balanced (a digit count, then a "
                               "number with that many digits, so 1-digit operands are as common as 2-digit ones) "
                               "or uniform (every number from the smallest to the largest equally likely: with "
                               "max_digits 2, 4 pairs in 5 are two 2-digit numbers). The same problems either "
                               "way, other weights; the test_uniform and validation_uniform splits draw uniform "
                               "whatever this says", choices=OPERAND_DRAWS, omit_default=True)
    ood_digits: tuple[int, ...] | None = option(
        None, f"operand lengths of test_ood, each above max_digits and at most {MAX_DIGITS}, its rows shared evenly "
        "among them (`3 4`: 3-digit and 4-digit operands; default: max_digits + 1)", nargs="+", type=int,
        omit_default=True)
    leading_zeros: int = option(0, "training augmentation: each number of a prompt gets 0..N leading zeros at random "
                                "(`0046+75=?`), so numbers run longer than their values: with Abacus digit "
                                "positions the places beyond max_digits are learned as positions (held-out splits "
                                "draw without them)", omit_default=True)
    # (lowest, count) of each range an operand is drawn from: one per digit count (digit_balanced: a range, then a
    # number in it), or a single one over them all (uniform)
    _ranges: list[tuple[int, int]] = field(init=False, repr=False, compare=False)
    _type_names: list[str] = field(init=False, repr=False, compare=False)
    _type_cum_weights: list[float] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        for name in ("min_digits", "max_digits"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_DIGITS:
                raise ValueError(f"{name} must be an integer in [1, {MAX_DIGITS}], got {value!r}")
        if self.min_digits > self.max_digits:
            raise ValueError(
                f"min_digits ({self.min_digits}) > max_digits ({self.max_digits}): the operand range is empty"
            )
        if isinstance(self.types, str):
            raise ValueError(f"types must be a list of type names or a {{type: weight}} dict, got {self.types!r}")
        self.types = parse_weights("types", self.types)
        weights = self._raw_type_weights()
        unknown = [t for t in weights if t not in TYPES]
        if unknown:
            raise ValueError(f"unknown arithmetic types {unknown} in types; valid types: {TYPES}")
        if not all(map(_is_weight, weights.values())) or sum(weights.values()) <= 0:
            raise ValueError(f"types needs finite weights >= 0 and at least one positive weight, got {self.types!r}")
        if self.train_types is not None:
            self.train_types = parse_weights("train_types", self.train_types)
            if not isinstance(self.train_types, dict):
                raise ValueError(f"train_types must give a weight per type (type=weight, or a {{type: weight}} "
                                 f"dict), got {self.train_types!r}")
            undrawn = [t for t in self.train_types if weights.get(t, 0) <= 0]
            if undrawn:
                raise ValueError(f"train_types weighs {undrawn}, which `types` does not draw ({self.types!r}); "
                                 f"add them to types, or drop them from train_types")
            if (not all(map(_is_weight, self.train_types.values()))
                    or sum(self.train_types.get(t, weights[t]) for t in weights) <= 0):
                raise ValueError(f"train_types needs finite weights >= 0, leaving at least one type with a positive "
                                 f"weight, got {self.train_types!r}")
        if self.answer_style not in ANSWER_STYLES:
            raise ValueError(f"answer_style must be one of {ANSWER_STYLES}, got {self.answer_style!r}")
        check_probabilities(self, "spacing_variants", "surface_variants")
        if self.operand_draw not in OPERAND_DRAWS:
            raise ValueError(f"operand_draw must be one of {OPERAND_DRAWS}, got {self.operand_draw!r}")
        if isinstance(self.leading_zeros, bool) or not isinstance(self.leading_zeros, int) or not (
                0 <= self.leading_zeros <= MAX_DIGITS):
            raise ValueError(f"leading_zeros must be an integer in [0, {MAX_DIGITS}], got {self.leading_zeros!r}")
        if isinstance(self.ood_digits, int) and not isinstance(self.ood_digits, bool):
            self.ood_digits = (self.ood_digits,)  # `ood_digits: 3` in a recipe
        if self.ood_digits is not None:
            lengths = self.ood_digits
            if (not isinstance(lengths, (tuple, list)) or len(set(lengths)) != len(lengths)
                    or any(isinstance(d, bool) or not isinstance(d, int) or not self.max_digits < d <= MAX_DIGITS
                           for d in lengths)):
                raise ValueError(f"ood_digits must be different operand lengths, each above max_digits "
                                 f"({self.max_digits}) and at most {MAX_DIGITS}, got {lengths!r}")
            self.ood_digits = tuple(lengths) or None  # empty: the default, max_digits + 1
        if self.operand_draw == "uniform":
            lowest, highest = digit_range(self.min_digits)[0], digit_range(self.max_digits)[1]
            self._ranges = [(lowest, highest - lowest + 1)]
        else:
            self._ranges = [(lo, hi - lo + 1)
                            for lo, hi in map(digit_range, range(self.min_digits, self.max_digits + 1))]
        self._type_names = [t for t in TYPES if weights.get(t, 0) > 0]  # TYPES order: deterministic draws
        cum, total = [], 0.0
        for t in self._type_names:
            total += float(weights[t])
            cum.append(total)
        self._type_cum_weights = cum

    @property
    def type_weights(self) -> dict[str, float]:
        """Each drawn type's share of the mix (sums to 1)."""
        total, prev, out = self._type_cum_weights[-1], 0.0, {}
        for name, cum in zip(self._type_names, self._type_cum_weights):
            out[name], prev = (cum - prev) / total, cum
        return out

    def _raw_type_weights(self) -> dict[str, float]:
        """`types` as {type: weight}, as given (a plain list weighs each type 1)."""
        return self.types if isinstance(self.types, dict) else dict.fromkeys(self.types, 1.0)

    @property
    def train_type_weights(self) -> dict[str, float]:
        """Each type's share of the train split (sums to 1): `train_types` where given, else `types`' weight."""
        if not self.train_types:
            return self.type_weights
        raw = self._raw_type_weights()
        weights = {t: float(self.train_types.get(t, raw[t])) for t in self._type_names}
        total = sum(weights.values())
        return {t: w / total for t, w in weights.items() if w > 0}

    def uniform(self) -> ArithmeticSpec:
        """The same problems with every operand drawn uniformly from the whole range (the test_uniform and
        validation_uniform splits): what a person picking numbers at random asks, mostly the longest operands."""
        return dataclasses.replace(self, operand_draw="uniform")

    def ood_specs(self) -> list[ArithmeticSpec]:
        """The out-of-distribution specs, one per test_ood operand length (`ood_digits`; default max_digits + 1,
        one digit longer than anything seen in training): both operands (for a division, the divisor and the
        quotient) exactly that long.

        At max_digits=MAX_DIGITS there is no such spec: a ValueError says to build without test_ood."""
        if not self.ood_digits and self.max_digits >= MAX_DIGITS:
            raise ValueError(
                f"test_ood draws operands of max_digits + 1 = {self.max_digits + 1} digits, more than the "
                f"{MAX_DIGITS} allowed: with max_digits={self.max_digits} pass num_test_ood=0 (--num-test-ood 0), "
                f"or lower max_digits")
        return [dataclasses.replace(self, min_digits=digits, max_digits=digits, ood_digits=None)
                for digits in self.ood_digits or (self.max_digits + 1,)]

    def ood(self) -> "ArithmeticSpec":
        """The out-of-distribution spec of a single operand length (`ood_specs()` gives one per length)."""
        specs = self.ood_specs()
        if len(specs) > 1:
            raise ValueError(f"ood_digits names {len(specs)} operand lengths {list(self.ood_digits)}: use ood_specs()")
        return specs[0]


def _is_weight(w) -> bool:
    """A type's weight: a finite number >= 0 (not a bool)."""
    return not isinstance(w, bool) and isinstance(w, (int, float)) and 0 <= w < math.inf


def digit_range(digits: int) -> tuple[int, int]:
    """Smallest and largest number with exactly `digits` digits (1 digit includes 0)."""
    return (0 if digits == 1 else 10 ** (digits - 1)), 10**digits - 1


class ArithmeticTask(Task):
    name = "arithmetic"
    types = list(TYPES)
    spec_class = ArithmeticSpec

    # -- making problems -----------------------------------------------------------------------------------------

    def generate(self, rng: random.Random, spec: ArithmeticSpec | None = None, type: str | None = None) -> Problem:
        """Draw one problem (of `type`, or of a type drawn from the spec's mix)."""
        spec = spec or ArithmeticSpec()
        if type is None:
            type = rng.choices(spec._type_names, cum_weights=spec._type_cum_weights)[0]
        elif type not in TYPES:
            raise ValueError(f"unknown arithmetic type {type!r}; valid types: {TYPES}")
        a, b, swapped = _draw_operands(rng, spec, type)
        return self.make_problem(type, a, b, spec, swapped=swapped, rng=rng)

    def draw(self, rng: random.Random, spec: ArithmeticSpec, type: str):
        """(key, make): the operands are drawn now, the strings are rendered only if `make()` is called."""
        a, b, swapped = _draw_operands(rng, spec, type)
        return problem_key(type, a, b), lambda: self.make_problem(type, a, b, spec, swapped=swapped, rng=rng)

    def make_problem(self, type, a, b, spec=None, swapped=False, rng=None, variant="canonical") -> Problem:
        """The problem of `type` built on operands (a, b) (for equations: (x, b) or (b, x) as the type name says).

        `swapped` writes the operand-order variant (`4+x=10` for `x+4=10`); with an `rng`, the spec's
        `spacing_variants` picks the prompt's spacing, otherwise `variant` does.
        """
        spec = spec or ArithmeticSpec()
        answer, prompt_parts = _solve(type, a, b, swapped)
        if rng is not None and spec.spacing_variants and rng.random() < spec.spacing_variants:
            variants = _VARIANTS_EQUATION if type in EQUATION_TYPES else _VARIANTS_DIRECT
            variant = variants[int(rng.random() * len(variants))]
        if rng is not None and spec.surface_variants and rng.random() < spec.surface_variants:
            return self.surface_variant(self.make_problem(type, a, b, spec, swapped=swapped), rng, spec)
        if rng is not None and spec.leading_zeros:
            prompt_parts = [_with_leading_zeros(part, int(rng.random() * (spec.leading_zeros + 1)))
                            for part in prompt_parts]
        return Problem(
            prompt=render_prompt(prompt_parts, variant),
            target=render_target(type, a, b, answer, spec.answer_style),
            answer=str(answer),
            type=type,
            difficulty=_difficulty(type, a, b),
            key=problem_key(type, a, b),
            meta={"a": a, "b": b, "swapped": swapped},
        )

    def surface_variant(self, problem: Problem, rng: random.Random, spec: ArithmeticSpec | None = None) -> Problem:
        """`problem` written another way: each gap between the prompt's pieces (numbers, `x`, operators, `=`, `,`,
        `?`) a space or none, and for `+` and `*` the operands in either order; never the canonical prompt nor
        `problem`'s own.

        The key and answer stay; the target is the one for the prompt as written (a worked product multiplies by
        the digits of the second operand written), in the spec's answer style. `meta["form"]` says what changed:
        `spacing`, `operand_order` or both.

        >>> task = ArithmeticTask()
        >>> variant = task.surface_variant(task.make_problem("x_minus_b", 21, 18), random.Random(0))
        >>> variant.prompt, variant.answer, variant.key
        ('x- 18 =3 ,x = ?', '21', 'x_minus_b:21,18')
        """
        spec = spec or ArithmeticSpec()
        type, a, b, swapped = problem.type, problem.meta["a"], problem.meta["b"], problem.meta.get("swapped", False)
        canonical = render_prompt(_solve(type, a, b, swapped)[1])
        for _ in range(100):
            reorder = type in COMMUTATIVE_ORDER and rng.random() < 0.5
            if reorder and type in COMMUTATIVE_TYPES:
                a2, b2, swapped2 = b, a, swapped
            else:
                a2, b2, swapped2 = a, b, swapped ^ reorder
            answer, parts = _solve(type, a2, b2, swapped2)
            prompt = _render_loose(parts, rng)
            if prompt not in (canonical, problem.prompt):
                break
        forms = [name for name, changed in (("operand_order", reorder), ("spacing", prompt != render_prompt(parts)))
                 if changed]
        return Problem(prompt=prompt, target=render_target(type, a2, b2, answer, spec.answer_style),
                       answer=str(answer), type=type, difficulty=problem.difficulty, key=problem.key,
                       meta={**problem.meta, "a": a2, "b": b2, "swapped": swapped2, "form": "+".join(forms)})

    def from_prompt(self, prompt: str, spec: ArithmeticSpec | None = None) -> Problem | None:
        """The problem a prompt asks (any spacing), or None if it is none of the nine types.

        >>> ArithmeticTask().from_prompt("4 + x = 10,x=?").key
        'x_plus_b:6,4'
        """
        parsed = parse_prompt(self.normalize_prompt(prompt))
        if parsed is None:
            return None
        type, a, b, swapped = parsed
        return self.make_problem(type, a, b, spec or ArithmeticSpec(spacing_variants=0.0), swapped=swapped)

    def problem_of(self, prompt: str) -> Problem | None:
        """The problem a prompt asks (`from_prompt` with the default spec); None if it is none of the nine types."""
        return self.from_prompt(prompt)

    def read_prompt(self, text: str) -> str | None:
        """A question with `=` (`x - 18 = 21, x = ?`, spacing as you like), or a bare expression that is one of the
        nine types (`99*64`), as this family's prompt; None otherwise.

        >>> ArithmeticTask().read_prompt("x - 18 = 21, x = ?"), ArithmeticTask().read_prompt("1+2+3")
        ('x-18=21, x=?', None)
        """
        text = typed_text(text)
        if not re.search(r"\d", text):
            return None
        if "=" in text:
            return self.normalize_prompt(text) if _TYPED_QUESTION.fullmatch(text) else None
        if BARE_EXPRESSION.fullmatch(text):
            question = self.normalize_prompt(text)
            return question if self.from_prompt(question) is not None else None
        return None

    def render_target(self, problem: Problem, answer: int | str, spec: ArithmeticSpec | None = None) -> str:
        """`problem`'s target text in the spec's style, but stating `answer` (used to write wrong answers)."""
        style = (spec or ArithmeticSpec()).answer_style
        return render_target(problem.type, problem.meta["a"], problem.meta["b"], int(answer), style)

    def num_distinct(self, spec: ArithmeticSpec, type: str | None = None) -> int:
        """Exact number of distinct keys the spec can produce (for one type, or over the spec's types); the same
        whatever the operand_draw (a uniform draw reaches the same problems, with other weights)."""
        if type is None:
            return sum(self.num_distinct(spec, t) for t in spec._type_names)
        return sum(self.num_distinct_per_stratum(spec, type).values())

    def num_distinct_per_stratum(self, spec: ArithmeticSpec, type: str) -> dict[tuple[int, int], int]:
        """{(digits of the shorter operand, of the longer): distinct problems of `type`}; `a*b` up to 2 digits:
        {(1, 1): 55, (1, 2): 900, (2, 2): 4095}.

        Why shapes and not difficulties: operands are drawn digit-balanced, so half the draws of `a*b` are a 1-digit
        times a 2-digit number, 900 of its 5,050 problems. Capped by difficulty (both shapes are difficulty 2), the
        held-out splits took 751 of those 900 and SFT's 2,500 training problems held 149.
        """
        digits = range(spec.min_digits, spec.max_digits + 1)
        size = {d: digit_range(d)[1] - digit_range(d)[0] + 1 for d in digits}
        nonzero = {d: size[d] - (1 if digit_range(d)[0] == 0 else 0) for d in digits}
        ordered = (spec.allow_negative and type in ("a_minus_b", "x_minus_b", "b_minus_x")) or type == "x_plus_b"
        counts = {}
        for short in digits:
            for long in digits:
                if long < short:
                    continue
                m, n = size[short], size[long]
                # x times a nonzero b; a quotient (0/4=0 allowed) and a nonzero divisor
                if type in ("x_times_b", "a_over_b"):
                    count = m * nonzero[long] + (n * nonzero[short] if long != short else 0)
                elif type == "b_over_x":  # b/x=c needs c >= 1, or x is not determined
                    count = nonzero[short] * nonzero[long] * (2 if long != short else 1)
                elif ordered:
                    count = m * n * (2 if long != short else 1)
                else:  # unordered pairs
                    count = m * n if long != short else m * (m + 1) // 2
                counts[(short, long)] = count
        return counts

    def stratum_of_key(self, key: str) -> tuple[int, int] | None:
        try:
            type, operands = key.split(":")
            a, b = (int(n) for n in operands.split(","))
            return tuple(sorted(len(str(abs(n))) for n in _drawn_operands(type, a, b)))
        except (ValueError, ZeroDivisionError):
            return None

    # -- reading answers -----------------------------------------------------------------------------------------

    answer_cue = "the answer is"
    # Keyboard and phone operators, then every space inside a prompt: a run of the prompt's characters that ends at
    # `?` (answers never hold one, so their spaces stay). `3 + 4 = ?` then reads exactly as `3+4=?`.
    tokenizer_rewrites = (*((re.escape(c), plain) for c, plain in UNICODE_OPERATOR_CHARS.items()),
                          (r"\s+(?=[\da-z+\-*/=,\s]*\?)", ""))
    format_pattern = _FORMAT

    def extract_answer(self, text: str) -> str | None:
        """The N of the last `The answer is N` (fallback: the last integer); None if there is no number.

        >>> ArithmeticTask().extract_answer(" The answer is 18 because 72/4 equals 18.")
        '18'
        """
        try:
            text = str(text)
            match = last_match(_ANSWER, text, _ANSWER_BARRIER)  # the last one, found from the end
            if match:
                return last_integer(match.group(1))
            return last_integer(text)
        except Exception:
            return None

    def normalize_prompt(self, text: str) -> str:
        """Canonical spacing: `72 - x = 34 ,x=?`, `72-x=34,x=?` and `72-x=34 x=?` all become `72-x=34, x=?`.

        Also maps `×`/`÷`/`−` to `*`/`/`/`-` and completes a bare `72/4` or `72/4=` to `72/4=?`.
        """
        try:
            t = re.sub(r"\s+", "", str(text).translate(UNICODE_OPERATORS))
            if t.endswith("="):  # `72/4=` -> `72/4=?`
                t += "?"
            elif t[-1:].isalpha() or re.fullmatch(r"-?\d+[-+*/]-?\d+", t):  # `72-x=34, x` / `72/4`
                t += "=?"
            return re.sub(r"(?<=\d),?(?=[a-z]=\?$)", ", ", t)  # `=34x=?` / `=34,x=?` -> `=34, x=?`
        except Exception:
            return str(text)


# ---------------------------------------------------------------------------------------------------------------
# Drawing operands. Each type gets two numbers (a, b) in the order its name gives them; equations also get a
# coin flip for the operand-order variant where the operator commutes.


_FLOAT_EXACT = 2**52  # int(random() * n) is uniform enough below this, and several times faster than randrange


def _operand(rng: random.Random, spec: ArithmeticSpec, nonzero: bool = False) -> int:
    """A digit count, then a number with that many digits; under operand_draw="uniform" a number from the whole
    range, the one range there is to pick (this runs millions of times: plain floats, no randint)."""
    ranges, uniform = spec._ranges, rng.random
    while True:
        lo, count = ranges[int(uniform() * len(ranges))]
        value = lo + (int(uniform() * count) if count < _FLOAT_EXACT else rng.randrange(count))
        if value or not nonzero:
            return value


def _exact_quotient_pair(rng: random.Random, spec: ArithmeticSpec, zero_quotient_ok: bool) -> tuple[int, int]:
    """(dividend, divisor) for exact division: division is multiplication run backwards, so the divisor and the
    quotient are the drawn operands (`72/4`: 4 and 18) and the dividend is their product."""
    divisor = _operand(rng, spec, nonzero=True)
    return divisor * _operand(rng, spec, nonzero=not zero_quotient_ok), divisor


def _draw_operands(rng: random.Random, spec: ArithmeticSpec, type: str) -> tuple[int, int, bool]:
    if type == "a_over_b":
        a, b = _exact_quotient_pair(rng, spec, zero_quotient_ok=True)
        return a, b, False
    if type == "b_over_x":  # (b, x): b/x=c with c >= 1, so x is determined
        b, x = _exact_quotient_pair(rng, spec, zero_quotient_ok=False)
        return b, x, False
    if type == "x_times_b":
        return _operand(rng, spec), _operand(rng, spec, nonzero=True), rng.random() < 0.5
    a, b = _operand(rng, spec), _operand(rng, spec)
    if not spec.allow_negative and type in ("a_minus_b", "x_minus_b", "b_minus_x") and a < b:
        a, b = b, a  # keeps a - b (and the equation's c) non-negative
    return a, b, (type == "x_plus_b" and rng.random() < 0.5)


_DIRECT = re.compile(r"(-?\d+)([-+*/])(-?\d+)=\?")
_X_FIRST = re.compile(r"x([-+*])(-?\d+)=(-?\d+), x=\?")
_X_SECOND = re.compile(r"(-?\d+)([-+*/])x=(-?\d+), x=\?")
_DIRECT_TYPES = {"+": "a_plus_b", "-": "a_minus_b", "*": "a_times_b", "/": "a_over_b"}


def parse_prompt(prompt: str) -> tuple[str, int, int, bool] | None:
    """(type, a, b, swapped) of a canonical prompt, in the operand order `make_problem` takes; None otherwise."""
    if match := _DIRECT.fullmatch(prompt):
        a, op, b = int(match[1]), match[2], int(match[3])
        if op == "/" and (b == 0 or a % b):
            return None  # only exact division is a problem of this family
        return _DIRECT_TYPES[op], a, b, False
    if match := _X_FIRST.fullmatch(prompt):  # x+b=c, x-b=c, x*b=c
        op, b, c = match[1], int(match[2]), int(match[3])
        if op == "+":
            return "x_plus_b", c - b, b, False
        if op == "-":
            return "x_minus_b", c + b, b, False
        return ("x_times_b", c // b, b, False) if b and c % b == 0 else None
    if match := _X_SECOND.fullmatch(prompt):  # b+x=c, b*x=c, b-x=c, b/x=c
        b, op, c = int(match[1]), match[2], int(match[3])
        if op == "+":
            return "x_plus_b", c - b, b, True
        if op == "*":
            return ("x_times_b", c // b, b, True) if b and c % b == 0 else None
        if op == "-":
            return "b_minus_x", b, b - c, False
        return ("b_over_x", b, b // c, False) if c > 0 and b % c == 0 and b > 0 else None
    return None


def _drawn_operands(type: str, a: int, b: int) -> tuple[int, int]:
    """The two numbers a problem was drawn from: its operands, or for division the quotient and the divisor."""
    return (a // b, b) if type in ("a_over_b", "b_over_x") else (a, b)


def _difficulty(type: str, a: int, b: int) -> int:
    """Digits of the longer of the two drawn operands."""
    return len(str(max(_drawn_operands(type, a, b))))  # operands are never negative


def problem_key(type: str, a: int, b: int) -> str:
    if type in COMMUTATIVE_TYPES and b < a:
        a, b = b, a
    return f"{type}:{a},{b}"


# ---------------------------------------------------------------------------------------------------------------
# Rendering. A prompt is a list of parts ("x", "-", "18", "=", "21") so each spacing variant is a join away.


def _solve(type: str, a: int, b: int, swapped: bool) -> tuple[int, list[str]]:
    """The answer and the prompt parts of a problem."""
    if type == "a_plus_b":
        return a + b, [str(a), "+", str(b)]
    if type == "a_minus_b":
        return a - b, [str(a), "-", str(b)]
    if type == "a_times_b":
        return a * b, [str(a), "*", str(b)]
    if type == "a_over_b":
        return a // b, [str(a), "/", str(b)]
    x = a if type.startswith("x_") else b
    if type == "x_times_b":
        lhs = [str(b), "*", "x"] if swapped else ["x", "*", str(b)]
        return x, lhs + [str(a * b)]
    if type == "x_plus_b":
        lhs = [str(b), "+", "x"] if swapped else ["x", "+", str(b)]
        return x, lhs + [str(a + b)]
    if type == "x_minus_b":
        return x, ["x", "-", str(b), str(a - b)]
    if type == "b_minus_x":
        return x, [str(a), "-", "x", str(a - b)]
    if type == "b_over_x":
        return x, [str(a), "/", "x", str(a // b)]
    raise ValueError(f"unknown arithmetic type {type!r}; valid types: {TYPES}")


def _with_leading_zeros(part: str, zeros: int) -> str:
    """A number of the prompt with `zeros` zeros before its digits (after a minus sign); other parts unchanged."""
    digits = part.removeprefix("-")
    return part if not digits.isdigit() else part[: len(part) - len(digits)] + "0" * zeros + digits


_VARIANTS_DIRECT = ("spaced",)
_VARIANTS_EQUATION = ("no_comma_space", "spaced", "spaced_no_comma")


def render_prompt(parts: list[str], variant: str = "canonical") -> str:
    """`72/4=?` / `x-18=21, x=?` (canonical) or a spacing variant of it."""
    lhs = parts[:3]
    if len(parts) == 3:  # a op b
        return " ".join(lhs) + " = ?" if variant == "spaced" else "".join(lhs) + "=?"
    rhs = parts[3]
    if variant == "canonical":
        return f"{''.join(lhs)}={rhs}, x=?"
    if variant == "no_comma_space":
        return f"{''.join(lhs)}={rhs},x=?"
    if variant == "spaced":
        return f"{' '.join(lhs)} = {rhs}, x = ?"
    if variant == "spaced_no_comma":
        return f"{' '.join(lhs)} = {rhs},x = ?"
    raise ValueError(f"unknown prompt variant {variant!r}")


COMMUTATIVE_ORDER = frozenset({"a_plus_b", "a_times_b", "x_plus_b", "x_times_b"})  # operands in either order


def _render_loose(parts: list[str], rng: random.Random) -> str:
    """The prompt of `parts` as people type it: no spaces, a space around every piece, or each gap drawn (a space
    or none). Each of the first two is a quarter of the draws: per-gap draws alone make them rare (1 in 16 for
    `a+b=?`), and a model trained so misreads `7 + 5 = ?` more often than any other spacing."""
    pieces = parts[:3] + ["=", "?"] if len(parts) == 3 else parts[:3] + ["=", parts[3], ",", "x", "=", "?"]
    style = rng.random()
    if style < 0.25:
        gaps = [""] * (len(pieces) - 1)
    elif style < 0.5:
        gaps = [" "] * (len(pieces) - 1)
    else:
        gaps = [" " if rng.random() < 0.5 else "" for _ in pieces[1:]]
    return pieces[0] + "".join(gap + piece for gap, piece in zip(gaps, pieces[1:]))


def _r(n: int) -> str:
    """A number on the right of an operator: negatives in parentheses (`5-(-3)`)."""
    return f"({n})" if n < 0 else str(n)


def _explanation(type: str, a: int, b: int) -> str:
    """The computation that gives the answer, as the seed writes it after `because`."""
    if type == "a_plus_b":
        return f"{a}+{_r(b)}"
    if type == "a_minus_b":
        return f"{a}-{_r(b)}"
    if type == "a_times_b":
        return f"{a}*{_r(b)}"
    if type == "a_over_b":
        return f"{a}/{_r(b)}"
    if type == "x_times_b":  # x*b=c -> c/b
        return f"{a * b}/{_r(b)}"
    if type == "x_plus_b":  # x+b=c -> c-b
        return f"{a + b}-{_r(b)}"
    if type == "x_minus_b":  # x-b=c -> c+b
        return f"{a - b}+{_r(b)}"
    if type == "b_minus_x":  # b-x=c -> b-c
        return f"{a}-{_r(a - b)}"
    return f"{a}/{_r(a // b)}"  # b_over_x: b/x=c -> b/c


def _scratch(type: str, a: int, b: int, answer: int) -> str:
    """One short step before the answer: the inverse operation for equations, a tens/units split otherwise."""
    if type in EQUATION_TYPES:
        return "x=" + _explanation(type, a, b)
    if type == "a_over_b":
        return f"{b}*{_r(answer)}={a}"
    units = b % 10
    tens = b - units
    op = {"a_plus_b": "+", "a_minus_b": "-", "a_times_b": "*"}[type]
    if tens == 0 or units == 0:  # nothing to split
        return f"{a}{op}{_r(b)}={answer}"
    if type == "a_times_b":
        return f"{a}*{tens}={a * tens}, {a}*{units}={a * units}, {a * tens}+{_r(a * units)}={answer}"
    first = a + tens if op == "+" else a - tens
    return f"{a}{op}{tens}={first}, {first}{op}{units}={answer}"


def _reversed(n: int) -> str:
    """Digits units first, sign kept in front: 120 -> `021`, -35 -> `-53`."""
    return ("-" if n < 0 else "") + str(abs(n))[::-1]


def _division_chain(dividend: int, divisor: int) -> str:
    """Rewrites of D/d that leave the quotient alone until the divisor has no factor 2 or 5: a trailing zero is
    dropped from both numbers (`2640/80, 264/8`), an even pair is halved (`132/4`), and a divisor ending in 5 is
    doubled with the dividend, then the zero dropped (`4615/65, 923/13`). Each rewrite is digit-local, and a divisor
    ending in 1, 3, 7 or 9 fixes the quotient's digits units first from the last digits alone (`126/3`: only 3*2
    ends in 6), which is the order `Reversed:` writes them in. For any other divisor the units digit of D leaves
    two or more candidates (`x*8=...4`: 3 or 8), and a model answering without the rewrites got a third of those
    divisions wrong (the 93.1% quickstart model, validation split)."""
    steps = []
    while divisor >= 1 and (divisor % 2 == 0 or divisor % 5 == 0):  # 1 ends the loop (0 never starts it)
        if divisor % 10 == 0:
            dividend, divisor = dividend // 10, divisor // 10
        elif divisor % 2 == 0:
            dividend, divisor = dividend // 2, divisor // 2
        else:
            dividend, divisor = dividend * 2 // 10, divisor * 2 // 10
        steps.append(f"{dividend}/{divisor}, ")
    return "".join(steps)


def _division_steps(type: str, a: int, b: int) -> str:
    """The rewrites of the division that answers a problem of `type`; empty for the types that divide nothing."""
    if type == "a_over_b":  # a/b
        return _division_chain(a, b)
    if type == "x_times_b":  # x*b=c -> c/b
        return _division_chain(a * b, b)
    if type == "b_over_x":  # b/x=c -> b/c
        return _division_chain(a, a // b)
    return ""


def _working(type: str, a: int, b: int) -> str:
    """The `worked` style's steps before the reversed result: the solving operation of an equation, a negative
    difference as `-(b-a)`, one partial product per digit of a product, the rewrites that leave a division with a
    divisor ending in 1, 3, 7 or 9; empty for a sum or a positive difference."""
    if type in EQUATION_TYPES:
        return f"x={_explanation(type, a, b)}, {_division_steps(type, a, b)}"
    if type == "a_minus_b" and a < b:
        return f"-({b}-{a}), "
    if type == "a_times_b":
        # One partial product per digit of b, shifted to its place (`17*10: 071`), so that digit k of every partial
        # product sits k tokens after its colon and the sum is digit-aligned. Written even for a one-digit b:
        # `5*5: 52` is then the same step as inside `5*15`, learned from both.
        return "".join(f"{a}*{digit}{'0' * place}: {_reversed(a * int(digit) * 10**place)}, "
                       for place, digit in enumerate(reversed(str(b))))
    return _division_steps(type, a, b)


def render_target(type: str, a: int, b: int, answer: int, style: str = "plain") -> str:
    """The completion for a problem, stating `answer` (the right one, or a wrong one for a negative)."""
    final = f"The answer is {answer}"
    if style == "plain":
        return f" {final}."
    if style == "explain":
        return f" {final} because {_explanation(type, a, b)} equals {answer}."
    if style == "reversed":
        return f" Reversed: {_reversed(answer)}. {final}."
    if style == "scratchpad":
        return f" {_scratch(type, a, b, answer)}. {final}."
    if style == "worked":
        return f" {_working(type, a, b)}Reversed: {_reversed(answer)}. {final}."
    raise ValueError(f"answer_style must be one of {ANSWER_STYLES}, got {style!r}")
