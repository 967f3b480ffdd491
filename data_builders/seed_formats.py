"""The seeds' own file formats, in and out of mathalign datasets.

    pos_neg_pairs.json  [{"positive": "72/4=? The answer is 18 because 72/4 equals 18.",
                          "negative": "72/4=? Sorry, I do not know!", "Q": "72/4=?", "A": "18", "type": "a_over_b_q"}]
                        <-> preference rows (prompt / chosen / rejected); the prompt is `Q` when given, else the
                            positive's and negative's shared prefix cut after its last `?` (or last space).
    steps JSONL         {"expression": "5 + (10 - 3)", "problem": "Evaluate: 5 + (10 - 3)",
                         "solution": "<think>\\nStep 1: 10 - 3 = 7\\n...\\n</think>\\nFinal Result: 12", "answer": 12}
                        <-> sft rows (prompt / completion); completions are the same text on one line.

    python -m data_builders.seed_formats import-pairs pos_neg_pairs.json --out data/seed_dpo
    python -m data_builders.seed_formats import-steps train.jsonl --out data/seed_steps
    python -m data_builders.seed_formats export-steps data/sft_expressions --split test --out test.jsonl
    python -m data_builders.seed_formats export-pairs data/dpo --split train --out pos_neg_pairs.json

(also `mathalign data convert ...`). Imported rows are checked with the families' own verifiers: a positive that
is wrong, a negative that is right, or an answer that disagrees with the expression is an error naming the file
and row (`--skip-bad-rows` drops them instead).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from datasets import Dataset, DatasetDict, Features, Value, load_from_disk

from mathalign.tasks import get_task
from mathalign.tasks import expressions as ex

from . import core, outputs

PAIR_KEYS = ("positive", "negative")
STEP_KEYS = ("expression", "problem", "solution", "answer")
PREFERENCE_FEATURES = {"prompt": Value("string"), "chosen": Value("string"), "rejected": Value("string")}
SFT_FEATURES = {"prompt": Value("string"), "completion": Value("string")}
FAMILY_ORDER = ("arithmetic", "expressions")
COMMON_COLUMNS = ("task", "type", "difficulty", "answer", "key")


# ---------------------------------------------------------------------------------------------------------------
# pos_neg_pairs.json


def read_pos_neg_pairs(path: str | Path) -> list[dict]:
    """The pairs of a pos_neg_pairs.json file (a JSON list, or JSON lines), each checked for positive/negative."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        pairs = json.loads(text)
    except json.JSONDecodeError:
        try:
            pairs = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: neither a JSON list nor JSON lines ({err.msg})") from None
    if not isinstance(pairs, list):
        raise ValueError(f"{path}: expected a list of {{'positive', 'negative'}} objects, got {type(pairs).__name__}")
    for i, pair in enumerate(pairs):
        missing = [k for k in PAIR_KEYS if not isinstance(pair, dict) or not isinstance(pair.get(k), str)]
        if missing:
            found = sorted(pair) if isinstance(pair, dict) else repr(pair)
            raise ValueError(f"{path}: pair {i} has no string {missing} (found: {found})")
    return pairs


def split_prompt(positive: str, negative: str, question: str | None = None) -> tuple[str, str, str]:
    """(prompt, chosen, rejected): the prompt is `question` when both texts start with it, else their shared prefix
    cut after its last `?` (else its last space); chosen/rejected keep their leading space."""
    if question and positive.startswith(question) and negative.startswith(question):
        prompt = question.rstrip()
    else:
        prefix = os.path.commonprefix([positive, negative])
        cut = prefix.rfind("?") + 1 or prefix.rstrip().rfind(" ")
        if cut <= 0:
            raise ValueError(f"no shared prompt in {positive[:40]!r} / {negative[:40]!r}")
        prompt = prefix[:cut].rstrip()
    return prompt, positive[len(prompt):], negative[len(prompt):]


def pairs_to_preference_rows(pairs: list[dict], source: str = "pairs", strict: bool = True):
    """(columns, families): prompt/chosen/rejected + task/type/difficulty/answer/key. Arithmetic and expression
    prompts are recognised and checked (positive right, negative wrong); other prompts keep `type` unlabeled (-1)."""
    rows = []
    for i, pair in enumerate(pairs):
        try:
            rows.append(_pair_row(pair))
        except ValueError as err:
            if strict:
                raise ValueError(f"{source}: pair {i}: {err}") from None
    families = [f for f in FAMILY_ORDER if any(r["task"] == f for r in rows)] or ["arithmetic"]
    index = {name: i for i, name in enumerate(core.type_names(families))}
    columns: dict[str, list] = {name: [] for name in [*PREFERENCE_FEATURES, *COMMON_COLUMNS]}
    for row in rows:
        row["type"] = index.get(row["type"], -1)
        for name in columns:
            columns[name].append(row[name])
    return columns, families


def _pair_row(pair: dict) -> dict:
    prompt, chosen, rejected = split_prompt(pair["positive"], pair["negative"], pair.get("Q"))
    family = "expressions" if prompt.lower().startswith("evaluate") else "arithmetic"
    task = get_task(family)
    problem = task.from_prompt(prompt) if family == "arithmetic" else _expression_problem(prompt)
    if problem is not None:
        answer, type, difficulty, key = problem.answer, problem.type, problem.difficulty, problem.key
    else:
        answer = task.canonical_answer(pair["A"]) if "A" in pair else task.extract_answer(chosen)
        type, difficulty, key = None, 0, task.normalize_prompt(prompt)
    if answer is None:
        raise ValueError(f"no answer for {prompt!r} (no A, and none in the positive)")
    if "A" in pair and task.canonical_answer(pair["A"]) != answer:
        raise ValueError(f"A={pair['A']!r} but {prompt!r} has answer {answer}")
    if not task.check(chosen, answer):
        raise ValueError(f"the positive {chosen!r} does not give the answer {answer} to {prompt!r}")
    if task.check(rejected, answer):
        raise ValueError(f"the negative {rejected!r} gives the right answer {answer} to {prompt!r}")
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, "task": family, "type": type,
            "difficulty": difficulty, "answer": answer, "key": key}


def _expression_problem(prompt: str):
    body = prompt.split(":", 1)[1] if ":" in prompt else prompt
    return get_task("expressions").from_expression(body)


def import_pos_neg_pairs(path: str | Path, strict: bool = True) -> Dataset:
    """A pos_neg_pairs.json file as a typed preference Dataset (split `train`)."""
    columns, families = pairs_to_preference_rows(read_pos_neg_pairs(path), str(path), strict)
    features = Features({**PREFERENCE_FEATURES, **core.common_features(families)})
    return core.make_dataset(columns, features, "train", f"mathalign import of {Path(path).name}")


def export_pos_neg_pairs(dataset: Dataset, path: str | Path | None = None) -> list[dict]:
    """Preference rows as seed-a pairs: positive/negative full texts plus Q, A and type (written if `path`)."""
    names = dataset.features["type"].names if "type" in dataset.features else None
    pairs = []
    for row in dataset:
        pair = {"positive": row["prompt"] + row["chosen"], "negative": row["prompt"] + row["rejected"],
                "Q": row["prompt"], "A": row.get("answer")}
        if names is not None and row["type"] is not None and row["type"] >= 0:
            pair["type"] = names[row["type"]]
        pairs.append(pair)
    if path is not None:
        Path(path).write_text(json.dumps(pairs, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return pairs


# ---------------------------------------------------------------------------------------------------------------
# step-by-step JSONL


def read_steps_jsonl(path: str | Path) -> list[dict]:
    """Rows of a step-by-step JSONL file, each checked for expression/problem/solution/answer."""
    path = Path(path)
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: line {number} is not JSON ({err.msg})") from None
        missing = [k for k in STEP_KEYS if not isinstance(row, dict) or k not in row]
        if missing:
            raise ValueError(f"{path}: line {number} has no {missing}; step rows need {list(STEP_KEYS)}")
        rows.append(row)
    return rows


def from_seed_solution(solution: str) -> str:
    """The seed's multi-line solution as a mathalign completion: one line, leading space."""
    return " " + " ".join(str(solution).split())


def to_seed_solution(completion: str) -> str:
    """A mathalign completion in the seed's layout: `<think>`, each step, `Expression now`, `</think>` on own lines."""
    text = " ".join(completion.split())
    for marker in ("Step ", "Expression now:", "Error:", "</think>", "Final Result:"):
        text = text.replace(" " + marker, "\n" + marker)
    return text.replace("<think> ", "<think>\n")


def steps_to_sft_rows(rows: list[dict], source: str = "steps", strict: bool = True) -> dict[str, list]:
    """Columns prompt/completion + task/type/difficulty/answer/key; the answer must agree with the expression."""
    task = get_task("expressions")
    index = {name: i for i, name in enumerate(task.types)}
    columns: dict[str, list] = {name: [] for name in [*SFT_FEATURES, *COMMON_COLUMNS]}
    for number, row in enumerate(rows):
        problem = task.from_expression(str(row["expression"]))
        given = task.canonical_answer(row["answer"])
        if given != problem.answer:
            if strict:
                raise ValueError(f"{source}: row {number}: answer {row['answer']!r} but {row['expression']!r} "
                                 f"evaluates to {problem.answer}")
            continue
        completion = from_seed_solution(row["solution"])
        if not task.check(completion, problem.answer):
            if strict:
                raise ValueError(
                    f"{source}: row {number}: the solution does not end in 'Final Result: {problem.answer}'")
            continue
        columns["prompt"].append(task.normalize_prompt(str(row["problem"])))
        columns["completion"].append(completion)
        columns["task"].append("expressions")
        columns["type"].append(index[problem.type])
        columns["difficulty"].append(problem.difficulty)
        columns["answer"].append(problem.answer)
        columns["key"].append(problem.key)
    return columns


def import_steps_jsonl(path: str | Path, strict: bool = True) -> Dataset:
    """A step-by-step JSONL file as a typed SFT Dataset (split `train`)."""
    columns = steps_to_sft_rows(read_steps_jsonl(path), str(path), strict)
    features = Features({**SFT_FEATURES, **core.common_features(["expressions"])})
    return core.make_dataset(columns, features, "train", f"mathalign import of {Path(path).name}")


def export_steps_jsonl(dataset: Dataset, path: str | Path | None = None) -> list[dict]:
    """Expression rows (sft with completions, or rl prompts) as seed-c JSONL rows (written if `path`)."""
    out = []
    for row in dataset:
        if row.get("task", "expressions") != "expressions":
            continue
        expression = row["prompt"].removeprefix(ex.PROMPT_PREFIX)
        answer, completion = ex.solve(expression)
        completion = row.get("completion") or completion
        out.append({"expression": expression, "problem": row["prompt"], "solution": to_seed_solution(completion),
                    "answer": int(answer) if answer != ex.ERROR else ex.ERROR})
    if path is not None:
        with open(path, "w", encoding="utf-8") as f:
            for row in out:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return out


# ---------------------------------------------------------------------------------------------------------------
# Command line (also `mathalign data convert ...`).


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="convert_command", required=True, metavar="COMMAND")
    for name, help, reader in (
        ("import-pairs", "pos_neg_pairs.json -> preference dataset (prompt/chosen/rejected)", "pairs"),
        ("import-steps", "step-by-step JSONL -> sft dataset (prompt/completion)", "steps"),
    ):
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument("path", help="the seed file")
        sub.add_argument("--out", required=True, help="folder for the dataset and its card (an existing file or "
                         "non-empty folder is refused, unless --overwrite)")
        sub.add_argument("--overwrite", action="store_true", help="replace --out if it is an existing file or "
                         "non-empty folder (everything in it is deleted)")
        sub.add_argument("--format", choices=("arrow", "parquet"), default="arrow", help="(default: arrow)")
        sub.add_argument("--push-to-hub", metavar="REPO_ID", default=None, help="also publish to the Hub")
        sub.add_argument("--skip-bad-rows", action="store_true", help="drop rows that fail the checks")
        sub.set_defaults(func=_import, reader=reader, progress=False)
    for name, help in (("export-steps", "an expressions dataset -> step-by-step JSONL"),
                       ("export-pairs", "a preference dataset -> pos_neg_pairs.json")):
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument("dataset", help="a dataset folder written by a builder (save_to_disk)")
        sub.add_argument("--split", default="train", help="which split to export (default: train)")
        sub.add_argument("--out", required=True, help="the file to write (an existing one is refused, unless "
                         "--overwrite)")
        sub.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
        sub.set_defaults(func=_export)


def _import(args) -> None:
    core.check_out(args)  # before reading the seed file
    if args.reader == "pairs":
        dataset = import_pos_neg_pairs(args.path, strict=not args.skip_bad_rows)
        summary = f"Preference pairs imported from the seed file `{Path(args.path).name}` (pos_neg_pairs format)."
    else:
        dataset = import_steps_jsonl(args.path, strict=not args.skip_bad_rows)
        summary = f"Step-by-step expression solutions imported from `{Path(args.path).name}` (JSONL)."
    name = f"import-{args.reader}"
    command = f"mathalign data convert {name} {Path(args.path).name} --out OUT_DIR"
    core.finish(DatasetDict({"train": dataset}), args, name, {"source": Path(args.path).name}, command,
                summary)


def _export(args) -> None:
    outputs.check_output(args.out, args.overwrite, kind="file")  # before loading the dataset
    dataset = load_from_disk(args.dataset)
    if isinstance(dataset, DatasetDict):
        if args.split not in dataset:
            raise ValueError(f"{args.dataset} has no split {args.split!r}; splits: {list(dataset)}")
        dataset = dataset[args.split]
    if args.convert_command == "export-steps":
        export = export_steps_jsonl
    else:
        missing = [c for c in ("prompt", "chosen", "rejected") if c not in dataset.column_names]
        if missing:
            raise ValueError(f"{args.dataset}: not a preference dataset (no {missing} columns)")
        export = export_pos_neg_pairs
    rows = []
    outputs.write_file(args.out, lambda path: rows.extend(export(dataset, path)), args.overwrite)
    print(f"wrote {len(rows)} rows to {args.out}", file=sys.stderr)


def make_parser() -> argparse.ArgumentParser:
    parser = core.make_parser(__doc__, "python -m data_builders.seed_formats")
    add_arguments(parser)
    return parser


def main(args) -> None:
    args.func(args)


if __name__ == "__main__":
    core.run_main(make_parser, main)
