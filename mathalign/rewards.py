"""Reward functions for GRPO, with TRL's signature, picked by name from a registry.

    >>> from mathalign.rewards import resolve_rewards
    >>> funcs, weights = resolve_rewards(["correctness_reward", "format_reward"], [1.0, 0.2])
    >>> [f.__name__ for f in funcs], weights
    (['correctness_reward', 'format_reward'], [1.0, 0.2])

TRL's GRPOTrainer calls every function as `f(prompts=, completions=, completion_ids=, trainer_state=, log_extra=,
log_metric=, **dataset_columns)` and logs its mean under `rewards/<f.__name__>/mean`, so each function here is named
after its registry key. Completions are strings or conversational lists of messages; both are read.

    name                 what it scores                                                    values
    correctness_reward   the row's family checker (`get_task(task).check(text, answer)`)   0 or 1
    format_reward        the family's answer cue, written once and where it belongs        0 or 1
    steps_reward         every `a op b = c` step exact; wrong or repeated steps cost       -1 .. 1 (0: no steps)
    choice_reward        multiple-choice letter ("nanochatAquaRat"): right / valid / none  1, 0.1 or 0

Correctness and choices are checked by the problem families in `mathalign.tasks`, never re-parsed here. Parameters go
through factories (`make_steps_reward(discount=0.8)`, or `get_reward_function("steps_reward", discount=0.8)`), which
return a `functools.partial` that keeps the function's name and pickles (TRL's async rollout worker pickles rewards).

Whatever the model writes (None, nested junk, a 10,000-digit number, `The answer is 1e309`), a reward function returns
one float per completion and never raises, and its work is bounded: it reads at most `MAX_SCORED_CHARS` (100,000)
characters of a completion, the last ones for answers (correctness, choice: the answer is the last thing written)
and the first ones for steps (early steps weigh most); a longer completion has no format. Only a completion longer
than that can score otherwise than on a full read, and a model sampled with max_completion_length=4,096 would need
more than 24 characters per token to write one (this project's recipes stop at 80 tokens, a few hundred
characters). A runaway 1,000,000-character completion costs milliseconds instead of seconds, and answers are found
from the end of the text (`mathalign.tasks.base.last_match`), so reading 100,000 characters costs little too.

A broken *dataset* is another matter: a missing `answer` column or an unknown family name raises one clear ValueError
on the first batch instead of training on all-zero rewards.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
from collections.abc import Callable, Sequence

from .tasks import get_task
from .tasks.expressions import (
    find_steps,  # re-exported: the steps reward scores what it finds
)

# ---------------------------------------------------------------------------------------------------------------
# Reading completions and dataset columns.


def completion_text(completion) -> str:
    """The text of one completion: a string as is; a conversational list of messages -> the assistant contents joined.

    Anything else (None, numbers, junk) is the empty string, which every reward scores as a miss.

    >>> completion_text([{"role": "assistant", "content": " The answer is 18."}])
    ' The answer is 18.'
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if not isinstance(completion, (list, tuple)):
        return ""
    parts = []
    for message in completion:
        if isinstance(message, str):
            parts.append(message)
        elif isinstance(message, dict) and message.get("role", "assistant") == "assistant":  # tool output is not ours
            parts.append(_content_text(message.get("content")))
    return "\n".join(part for part in parts if part)


def _content_text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):  # multimodal content: [{"type": "text", "text": "..."}, ...]
        texts = [part.get("text") for part in content if isinstance(part, dict)]
        return "".join(text for text in texts if isinstance(text, str))
    return ""


def _column(values, n: int, column: str, reward: str, hint: str) -> list:
    """A dataset column as one value per completion (a single value is broadcast); ValueError if absent or short."""
    if values is None:
        raise ValueError(f"{reward} needs a '{column}' column in the dataset (one value per row); {hint}")
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        return [values] * n
    if len(values) != n:
        raise ValueError(f"{reward}: got {len(values)} '{column}' values for {n} completions; pass one per completion")
    return list(values)


def _tasks(task, n: int, reward: str) -> list:
    hint = f"or fix the family with make_{reward}(task='arithmetic')"
    names = _column(task, n, "task", reward, hint)
    families = []
    for name in names:
        if name is None:
            raise ValueError(f"{reward}: a row has no 'task' (family name); {hint}")
        try:
            families.append(get_task(name))
        except ValueError as err:
            raise ValueError(f"{reward}: {err}") from None
    return families


# The most characters of one completion a reward reads (see the module docstring): the bound on its work.
MAX_SCORED_CHARS = 100_000


def _answer_part(text: str) -> str:
    """The part of a completion its answer is read from: the last MAX_SCORED_CHARS characters."""
    return text[-MAX_SCORED_CHARS:] if len(text) > MAX_SCORED_CHARS else text


def _safely(score: Callable[[], float], floor: float = 0.0) -> float:
    """A reward must never take training down: any surprise in scoring one completion is that completion's floor."""
    try:
        value = float(score())
        return value if math.isfinite(value) else floor
    except Exception:
        return floor


# ---------------------------------------------------------------------------------------------------------------
# Correctness: the family's checker is the reward (as nanochat reuses its GSM8K evaluator).


def correctness_reward(completions, answer=None, task=None, log_extra=None, **kwargs) -> list[float]:
    """1.0 when the completion's answer is right for its row's problem family, else 0.0.

    Args:
        completions: strings, or conversational lists of messages.
        answer: the dataset's `answer` column (canonical gold answers: "18", "-3", "ERROR", "C").
        task: the dataset's `task` column (family names), or one family name for every row.
        log_extra: provided by GRPOTrainer; adds an `extracted_answer` column to its completions table.

    >>> correctness_reward([" The answer is 18.", " The answer is 17."], answer=["18", "18"], task="arithmetic")
    [1.0, 0.0]
    >>> correctness_reward([[{"role": "assistant", "content": "#### 1,072"}]], answer=["1072"], task=["gsm8k"])
    [1.0]
    """
    n = len(completions)
    golds = _column(answer, n, "answer", "correctness_reward", "the data builders write it")
    families = _tasks(task, n, "correctness_reward")
    texts = [_answer_part(completion_text(c)) for c in completions]
    rewards = [_safely(lambda: fam.check(text, gold)) for fam, text, gold in zip(families, texts, golds)]
    if log_extra is not None:
        log_extra("extracted_answer", [_safely_extract(fam, text) for fam, text in zip(families, texts)])
    return rewards


def _safely_extract(family, text: str) -> str | None:
    try:
        return family.extract_answer(text)
    except Exception:
        return None


# ---------------------------------------------------------------------------------------------------------------
# Format: the answer cue each family's targets end with, as the family states it (`Task.has_answer_format`).


def has_format(text: str, task: str) -> bool:
    """Whether `text` states its answer in the family's format (`get_task(task).has_answer_format`); never raises.

    >>> has_format(" <think> Step 1: 2 + 3 = 5 </think> Final Result: 5", "expressions")
    True
    >>> has_format(" Final Result: 5", "expressions")
    False
    """
    try:
        return get_task(task).has_answer_format(text)
    except Exception:
        return False


def format_reward(completions, task=None, **kwargs) -> list[float]:
    """1.0 when the completion states its answer in its family's format, else 0.0 (right or wrong answer alike).

    The family states its format (`Task.answer_cue`, `Task.format_pattern`): arithmetic `The answer is N` once;
    expressions exactly `<think> ... </think> Final Result: N` (or ERROR); gsm8k `#### N` at the end; aqua
    `Final Answer: X` at the end. GRPOTrainer decodes completions with
    `skip_special_tokens=True`: `<think>` reaches this function only if the tokenizer does not mark it special.

    >>> format_reward([" The answer is 7.", " 7", " The answer is 7. The answer is 8."], task="arithmetic")
    [1.0, 0.0, 0.0]
    """
    families = _tasks(task, len(completions), "format_reward")
    return [_safely(lambda: _has_short_format(completion_text(c), fam)) for fam, c in zip(families, completions)]


def _has_short_format(text: str, family) -> bool:
    return len(text) <= MAX_SCORED_CHARS and family.has_answer_format(text)  # longer: no formatted answer


# ---------------------------------------------------------------------------------------------------------------
# Steps: every `a op b = c` written, as `mathalign.tasks.steps` reads it, checked with the expressions family's rule
# (`find_steps`: exact integer division). "Math Mind" rewards correct steps, penalises wrong or repeated ones and
# discounts later steps.


def score_steps(steps, discount: float = 0.9) -> float:
    """Discounted mean of +1 (a new, correct step) and -1 (a wrong or repeated one): in [-1, 1]; 0.0 with no steps.

    Step k weighs `discount**k`, so an early mistake, which derails everything after it, costs the most. A repeat
    costs even when it is right, so padding a trace with one easy step cannot earn anything; the rare trace that
    legitimately repeats a step (`(11 / 1) / (17 / 17)` reduces `11 / 1` twice) pays for it too, but every correct
    trace of that problem pays the same, so GRPO's within-group comparison is unchanged.

    >>> score_steps([(1, "+", 1, 2, True), (2, "*", 3, 7, False)], discount=1.0)
    0.0
    """
    total = weights = 0.0
    seen = set()
    for k, (a, op, b, c, correct) in enumerate(steps):
        weight = discount**k
        total += weight if correct and (a, op, b, c) not in seen else -weight
        weights += weight
        seen.add((a, op, b, c))
    return total / weights if weights else 0.0


def steps_reward(completions, discount: float = 0.9, **kwargs) -> list[float]:
    """Score the `a op b = c` steps of each completion (see `score_steps`): -1 .. 1, and 0.0 when it has none.

    Works for any family: expressions' `Step 1: 10 - 3 = 7`, arithmetic scratchpads, GSM8K's `48/2 = 24`.

    >>> steps_reward([" <think> Step 1: 10 - 3 = 7 Expression now: 5 + 7 Step 2: 5 + 7 = 12 </think>",
    ...               " <think> Step 1: 10 - 3 = 7 Step 2: 10 - 3 = 7 </think>", " no steps"], discount=1.0)
    [1.0, 0.0, 0.0]
    """
    return [_safely(lambda: score_steps(find_steps(completion_text(c)[:MAX_SCORED_CHARS]), discount))
            for c in completions]


# ---------------------------------------------------------------------------------------------------------------
# Multiple choice ("nanochatAquaRat"): 1.0 for the right letter, a small bonus for a letter stated the right way.


def choice_reward(completions, answer=None, format_bonus: float = 0.1, **kwargs) -> list[float]:
    """1.0 for the right letter, `format_bonus` (0.1) for a wrong but readable letter, else 0.0.

    Letters are read by the aqua family (`Final Answer: X`, fallback `answer is X`; A-E in any case).

    >>> choice_reward(["... Final Answer: E", "... Final Answer: B", "... I think 55 km"], answer=["E", "E", "E"])
    [1.0, 0.1, 0.0]
    """
    golds = _column(answer, len(completions), "answer", "choice_reward", "it holds the correct letter")
    aqua = get_task("aqua")

    def score(completion, gold) -> float:
        letter = aqua.extract_answer(_answer_part(completion_text(completion)))
        if letter is None:
            return 0.0
        return 1.0 if letter == aqua.canonical_answer(gold) else format_bonus

    return [_safely(lambda: score(c, gold)) for c, gold in zip(completions, golds)]


# ---------------------------------------------------------------------------------------------------------------
# Factories: a parameter fixed ahead of training. A dataset column of the same name (`task`) still wins, so the fixed
# family is the fallback for datasets without a `task` column.


def _bind(func: Callable, **params) -> Callable:
    bound = functools.partial(func, **params)
    functools.update_wrapper(bound, func)  # keeps __name__ (TRL's log key) and the docstring
    return bound


def make_correctness_reward(task: str = "arithmetic") -> Callable:
    """`correctness_reward` with a fixed family for datasets that have no `task` column.

    >>> make_correctness_reward(task="expressions")([" <think> </think> Final Result: 12"], answer=["12"])
    [1.0]
    """
    get_task(task)  # an unknown family fails now, with the valid names, not on the first batch
    return _bind(correctness_reward, task=task)


def make_format_reward(task: str = "arithmetic") -> Callable:
    """`format_reward` with a fixed family for datasets that have no `task` column."""
    get_task(task)
    return _bind(format_reward, task=task)


def make_steps_reward(discount: float = 0.9) -> Callable:
    """`steps_reward` with another discount per step (1.0: all steps weigh the same)."""
    if not isinstance(discount, (int, float)) or not 0.0 < discount <= 1.0:
        raise ValueError(f"steps_reward: discount must be a number in (0, 1], got {discount!r}")
    return _bind(steps_reward, discount=float(discount))


def make_choice_reward(format_bonus: float = 0.1) -> Callable:
    """`choice_reward` with another bonus for a well-formed wrong letter (0.0: right or nothing)."""
    if not isinstance(format_bonus, (int, float)) or not 0.0 <= format_bonus < 1.0:
        raise ValueError(f"choice_reward: format_bonus must be a number in [0, 1), got {format_bonus!r}")
    return _bind(choice_reward, format_bonus=float(format_bonus))


# ---------------------------------------------------------------------------------------------------------------
# Registry.

REWARD_FUNCTIONS: dict[str, Callable] = {
    f.__name__: f for f in (correctness_reward, format_reward, steps_reward, choice_reward)
}
REWARD_FACTORIES: dict[str, Callable] = {
    "correctness_reward": make_correctness_reward,
    "format_reward": make_format_reward,
    "steps_reward": make_steps_reward,
    "choice_reward": make_choice_reward,
}


def get_reward_function(name: str, **params) -> Callable:
    """The reward function registered as `name`; with `params`, built by its factory.

    >>> get_reward_function("steps_reward", discount=0.5).__name__
    'steps_reward'
    >>> get_reward_function("corectness")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: unknown reward function 'corectness' (did you mean 'correctness_reward'?); valid names: ...
    """
    if name not in REWARD_FUNCTIONS:
        close = difflib.get_close_matches(str(name), list(REWARD_FUNCTIONS), n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown reward function {name!r}{hint}; valid names: {', '.join(sorted(REWARD_FUNCTIONS))}")
    if not params:
        return REWARD_FUNCTIONS[name]
    factory = REWARD_FACTORIES[name]
    valid = list(inspect.signature(factory).parameters)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(f"{name}: unknown parameter(s) {unknown}; valid parameters: {', '.join(valid)}")
    return factory(**params)


def resolve_rewards(names: Sequence[str] | str, weights: Sequence[float] | None = None) -> tuple[list, list[float]]:
    """Reward functions for `names` and one weight each (1.0 when `weights` is None), checked before any training.

    The weights go to `GRPOConfig(reward_weights=...)`, the functions to `GRPOTrainer(reward_funcs=...)`.

    >>> resolve_rewards(["correctness_reward", "format_reward"], [1.0])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: got 1 reward weight(s) [1.0] for 2 reward functions [...]; give one weight per function
    """
    names = [names] if isinstance(names, str) else list(names or [])
    if not names:
        raise ValueError(f"no reward functions named; choose from: {', '.join(sorted(REWARD_FUNCTIONS))}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"reward function(s) {duplicates} named twice; name each once, weigh it with reward_weights")
    funcs = [get_reward_function(name) for name in names]
    if weights is None:
        return funcs, [1.0] * len(funcs)
    weights = list(weights)
    if len(weights) != len(names):
        raise ValueError(
            f"got {len(weights)} reward weight(s) {weights} for {len(names)} reward functions {names}; "
            "give one weight per function"
        )
    for name, weight in zip(names, weights):
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise ValueError(f"reward weight for {name} must be a finite number, got {weight!r}")
    return funcs, [float(w) for w in weights]


__all__ = [
    "MAX_SCORED_CHARS",
    "REWARD_FACTORIES",
    "REWARD_FUNCTIONS",
    "choice_reward",
    "completion_text",
    "correctness_reward",
    "find_steps",
    "format_reward",
    "get_reward_function",
    "has_format",
    "make_choice_reward",
    "make_correctness_reward",
    "make_format_reward",
    "make_steps_reward",
    "resolve_rewards",
    "score_steps",
    "steps_reward",
]
