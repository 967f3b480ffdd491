"""Rejected completions for preference data, as the seeds made them, and never one that happens to be right.

    refusal     " Sorry, I do not know!"                      (seed a's negatives)
    near_miss   " The answer is 19."  for 18                  (off by a little, swapped digits, a tens slip)
    wrong_step  " <think> Step 1: 10 - 3 = 8 Expression now: 5 + 8 ... Final Result: 13"
                                                             (one slip in an intermediate step, carried through)
    sampled     the model's own wrong answer                 (on-policy: see data_builders.preferences)

Every negative is checked with the family's own `check`; one that would pass becomes a refusal.
"""

from __future__ import annotations

import random

from mathalign.tasks import Problem, get_task
from mathalign.tasks import expressions as ex

KINDS = ("refusal", "near_miss", "wrong_step", "sampled")
STATIC_KINDS = KINDS[:3]  # made from the problem alone; `sampled` needs a model
REFUSAL = " Sorry, I do not know!"


def near_miss_number(rng: random.Random, n: int) -> int:
    """A number a model could plausibly write instead of `n`: off by 1-3, two digits swapped, or off by ten."""
    digits = str(abs(n))
    how = rng.randrange(3)
    if how == 0 and len(digits) >= 2:
        i = rng.randrange(len(digits) - 1)
        swapped = digits[:i] + digits[i + 1] + digits[i] + digits[i + 2:]
        candidate = int(swapped) * (-1 if n < 0 else 1)
        if candidate != n:
            return candidate
    if how == 1:
        return n + rng.choice((-10, 10))
    return n + rng.choice((-3, -2, -1, 1, 2, 3))


def make_negative(family: str, problem: Problem, kind: str, rng: random.Random, spec=None) -> tuple[str, str]:
    """(rejected completion, kind actually used). A kind that does not apply falls back to near_miss, and anything
    that would pass `check` falls back to a refusal."""
    task = get_task(family)
    text, used = None, kind
    if kind == "sampled":  # needs a model (data_builders.preferences); without one, the closest static kind
        used = "near_miss"
    if kind == "wrong_step":
        text = _wrong_step(family, problem, rng)
        if text is None:
            used = "near_miss"
    if used == "near_miss":
        text = _near_miss(family, problem, rng, spec)
    if text is None or task.check(text, problem.answer):
        return REFUSAL, "refusal"
    return text, used


def _near_miss(family: str, problem: Problem, rng: random.Random, spec) -> str | None:
    if family == "arithmetic":
        task = get_task(family)
        for _ in range(8):
            wrong = near_miss_number(rng, int(problem.answer))
            if wrong != int(problem.answer):
                return task.render_target(problem, wrong, spec)
        return None
    if family == "expressions":
        if problem.answer == ex.ERROR:
            return _pretend_valid(problem)
        tree = problem.meta.get("tree")
        if tree is None:
            return None
        steps, _ = ex.solution_steps(tree)
        value = int(problem.answer)
        wrong = near_miss_number(rng, value)
        return _with_wrong_step(tree, len(steps) - 1, wrong - value)
    if family == "gsm8k":
        wrong = near_miss_number(rng, int(problem.answer)) if _is_int(problem.answer) else None
        return None if wrong is None else problem.target[: problem.target.rindex("####")] + f"#### {wrong}"
    if family == "aqua":
        letters = [o[0] for o in problem.meta.get("options", [])] or list("ABCDE")
        wrong = rng.choice([x for x in letters if x != problem.answer] or ["A"])
        return problem.target[: problem.target.rindex("Final Answer:")] + f"Final Answer: {wrong}"
    return None


def _wrong_step(family: str, problem: Problem, rng: random.Random) -> str | None:
    """One wrong intermediate step of a step-by-step target, the rest computed from it."""
    if family != "expressions" or problem.answer == ex.ERROR or "tree" not in problem.meta:
        return None
    tree = problem.meta["tree"]
    steps, _ = ex.solution_steps(tree)
    if len(steps) < 2:
        return None  # the only step is the last one: that is a near miss
    for _ in range(8):
        i = rng.randrange(len(steps) - 1)
        delta = near_miss_number(rng, steps[i][3]) - steps[i][3]
        text = _with_wrong_step(tree, i, delta)
        if text is not None and ex.extract_answer(text) != problem.answer:
            return text
    return None


def _with_wrong_step(tree, index: int, delta: int) -> str | None:
    if delta == 0:
        return None
    try:
        steps, value = ex.solution_steps(tree, wrong_step=(index, delta))
    except ex.ExpressionError:  # the slip led to a division that has no value: draw another
        return None
    return ex.render_target(steps, value)


def _pretend_valid(problem: Problem) -> str | None:
    """For a malformed expression: the reduction a model that missed the defect would write."""
    source = problem.meta.get("source")
    if source is None:
        return None
    try:
        steps, value = ex.solution_steps(source, undefined=0)  # `7 / 0 = 0` for division by zero
    except ex.ExpressionError:
        return None
    return ex.render_target(steps, value)


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()
