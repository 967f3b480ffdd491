"""Preference dataset: `prompt` / `chosen` / `rejected` rows, TRL's preference format (DPO and friends).

    python -m data_builders.preferences --out data/dpo --num-train 20000 --answer-style explain
    mathalign data build preferences --out data/dpo --negatives refusal=1 near_miss=2 wrong_step=2 \
        --task arithmetic expressions

    row  {"prompt": "72/4=?", "chosen": " The answer is 18.", "rejected": " The answer is 81.",
          "negative": 1 (near_miss), "task": "arithmetic", "type": 3, "difficulty": 2, "answer": "18", ...}

Rejected completions are refusals (`Sorry, I do not know!`, seed a's), near misses (off by a little, swapped
digits, a tens slip) or, for step-by-step targets, one wrong intermediate step carried through. None is ever
correct: each is checked with the family's `check`. The `negative` column says which kind a row got.

`sampled` negatives are on-policy: a model answers each prompt (greedily, then `samples_per_prompt` times at
temperature 1) and its own wrong answer becomes the rejected completion, so preference training works on the
mistakes that model really makes. A prompt it always gets right falls back to a near miss. With the same model and
seed the rows are the same.

    mathalign data build preferences --out data/dpo_onpolicy --negatives sampled --negatives-model runs/sft

In Python: `data_builders.preferences.build(num_train=1000, negatives=("near_miss",))`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from datasets import ClassLabel, Value

from mathalign.errors import RecipeError
from mathalign.tasks.base import option, parse_weights

from . import core, generated
from .negatives import KINDS, STATIC_KINDS, make_negative
from .publishing import run_main

NAME = "preferences"
SUMMARY = ("Chosen/rejected completion pairs for preference optimisation (TRL `DPOTrainer`). Rejected completions "
           "are refusals, near-miss answers or a wrong intermediate step; none is ever correct.")
FEATURES = {
    "prompt": Value("string"),
    "chosen": Value("string"),
    "rejected": Value("string"),
    "negative": ClassLabel(names=list(KINDS)),  # the kind of rejected completion
}


@dataclass
class PreferenceOptions(core.BuildOptions):
    negatives: tuple[str, ...] | dict[str, float] = option(
        STATIC_KINDS, f"kinds of rejected completions, mixed evenly or weighted as kind=weight: {', '.join(KINDS)} "
        "(wrong_step applies to step-by-step targets; elsewhere it becomes near_miss; sampled needs "
        "--negatives-model)", nargs="+")
    negatives_model: str | None = option(
        None, "model whose own wrong answers are the `sampled` negatives: a checkpoint directory or Hub id "
        "(`mathalign train` uses the recipe's model when this is not set)", type=str)
    samples_per_prompt: int = option(4, "temperature-1 samples per prompt for `sampled` negatives, besides the "
                                     "greedy answer (which is used first when it is wrong)")

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.negatives, str):
            self.negatives = tuple(self.negatives.replace(",", " ").split())
        self.negatives = parse_weights("negatives", self.negatives)
        weights = self.negatives if isinstance(self.negatives, dict) else {k: 1.0 for k in self.negatives}
        bad = [k for k in weights if k not in KINDS]
        if bad or not weights or sum(weights.values()) <= 0 or min(weights.values()) < 0:
            raise ValueError(f"negatives must name some of {KINDS} (with positive weights), got {self.negatives!r}")
        if weights.get("sampled", 0) > 0 and not self.negatives_model:
            raise ValueError("negatives 'sampled' needs negatives_model: the model whose wrong answers become the "
                             "rejected completions (a checkpoint directory or Hub id)")
        if not isinstance(self.samples_per_prompt, int) or self.samples_per_prompt < 0:
            raise ValueError(f"samples_per_prompt must be an integer >= 0, got {self.samples_per_prompt!r}")

    @property
    def negative_weights(self) -> dict[str, float]:
        return self.negatives if isinstance(self.negatives, dict) else {k: 1.0 for k in self.negatives}


def options_for_model(options: dict, model_name_or_path: str | None) -> dict:
    """`build(**options)` for a training stage whose model is `model_name_or_path`: `sampled` negatives sample that
    model unless `negatives_model` is set (`mathalign train` calls this for any builder that defines it)."""
    if "sampled" not in str(options.get("negatives", "")) or options.get("negatives_model"):
        return options
    if model_name_or_path is None:
        raise RecipeError("`sampled` negatives need a model to sample: set model_name_or_path (or "
                          "data_options.negatives_model).")
    return {**options, "negatives_model": model_name_or_path}


def rows(problems, options: PreferenceOptions, specs, split) -> dict[str, list]:
    rng = random.Random(f"mathalign:{options.seed}:{split}:negatives")  # its own stream: problems do not move
    kinds, weights = zip(*options.negative_weights.items())
    index = {kind: i for i, kind in enumerate(KINDS)}
    out: dict[str, list] = {"prompt": [], "chosen": [], "rejected": [], "negative": []}
    drawn = [rng.choices(kinds, weights)[0] for _ in problems]
    wrong_answers = model_mistakes(options, [(f, p) for (f, p), k in zip(problems, drawn) if k == "sampled"], split)
    for (family, problem), kind in zip(problems, drawn):
        if kind == "sampled" and problem.key in wrong_answers:
            rejected, used = wrong_answers[problem.key], "sampled"
        else:  # a static kind, or a problem the model always solved: a near miss stands in
            rejected, used = make_negative(family, problem, kind, rng, specs.get(family))
        out["prompt"].append(problem.prompt)
        out["chosen"].append(problem.target)
        out["rejected"].append(rejected)
        out["negative"].append(index[used])
    return out


def model_mistakes(options: PreferenceOptions, problems, split: str) -> dict[str, str]:
    """{problem key: a wrong completion of `options.negatives_model`}: its greedy answer when that is wrong,
    otherwise its first wrong temperature-1 sample; problems it never gets wrong are left out."""
    if not problems:
        return {}
    import torch

    from mathalign.generation import generate_batched, load_model_and_tokenizer
    from mathalign.tasks import get_task

    model, tokenizer = load_model_and_tokenizer(options.negatives_model)
    budget = max(len(tokenizer(p.target)["input_ids"]) for _, p in problems)
    max_new_tokens = budget + budget // 4 + 2  # room for a wrong answer a little longer than the right one
    mistakes: dict[str, str] = {}
    torch.manual_seed(options.seed)
    for attempt in range(1 + options.samples_per_prompt):
        todo = [(f, p) for f, p in problems if p.key not in mistakes]
        if not todo:
            break
        texts, _, _ = generate_batched(
            model, tokenizer, [p.prompt for _, p in todo], batch_size=256, max_new_tokens=max_new_tokens,
            temperature=None if attempt == 0 else 1.0, desc=f"{split}: sampling {options.negatives_model}",
        )
        for (family, problem), text in zip(todo, texts):
            if text.strip() and not get_task(family).check(text, problem.answer):
                mistakes[problem.key] = text
    return mistakes


build, add_arguments, main, make_parser = generated.entry_points(
    NAME, PreferenceOptions, rows, FEATURES, SUMMARY, __doc__, __name__)


if __name__ == "__main__":
    run_main(make_parser, main)
