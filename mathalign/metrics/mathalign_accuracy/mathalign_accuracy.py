"""mathalign_accuracy: exact-match accuracy of model outputs, checked by each problem's own family.

An `evaluate` metric module shipped inside the package and loaded by path, so it works offline:

    >>> import evaluate, mathalign.evaluation as ev
    >>> metric = evaluate.load(ev.METRIC_PATH, keep_in_memory=True)
    >>> metric.compute(predictions=[" The answer is 18.", " Sorry, I do not know!"], references=["18", "7"],
    ...                tasks="arithmetic")["accuracy"]
    0.5

The metric never parses answers itself: every output goes through `get_task(task).extract_answer` (did the model
write an answer at all?) and `get_task(task).check` (is it the gold one?), the same code the rewards and data
builders use.
"""

from collections import defaultdict

import datasets
import evaluate

from mathalign.tasks import get_task

_DESCRIPTION = """\
Exact-match accuracy of generated solutions against gold answers, as judged by the problem family of each row
(arithmetic, expressions, gsm8k, aqua), plus the parse success rate (an answer could be extracted at all), the
average generation length, and accuracy broken down by problem type, difficulty, family and split.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): the generated completions (what the model wrote after the prompt).
    references (`list[str]`): the gold answers as canonical strings ("18", "-3", "ERROR", "C").
    tasks (`str` or `list[str]`): the problem family of every row, or one family for all rows.
    types (`list[str]`, optional): problem type per row, for `accuracy_per_type`.
    difficulties (`list[int]`, optional): difficulty per row, for `accuracy_per_difficulty`.
    generation_lengths (`list[int]`, optional): generated tokens per row, for `avg_generation_length`.
    return_per_sample (`bool`, optional): also return `correct` and `extracted` lists, one entry per row.
Returns:
    accuracy (`float`): fraction of rows whose extracted answer equals the gold answer.
    parse_rate (`float`): fraction of rows where the family could extract an answer at all.
    avg_generation_length (`float` or `None`): mean of `generation_lengths` when given.
    num_samples, num_correct, num_parsed (`int`).
    accuracy_per_type / count_per_type, accuracy_per_difficulty / count_per_difficulty,
    accuracy_per_task / count_per_task (`dict`): the breakdowns (difficulty keys are strings, as in JSON).
Examples:
    >>> metric.compute(predictions=[" <think> Step 1: 2 + 3 = 5 </think> Final Result: 5"], references=["5"],
    ...                tasks=["expressions"], types=["depth_1"])["accuracy_per_type"]
    {'depth_1': 1.0}
"""

_CITATION = ""


def _per_row(values, n: int, name: str) -> list:
    """A per-row list from a list or from one value meant for every row."""
    if values is None or isinstance(values, (str, int)):
        return [values] * n
    values = list(values)
    if len(values) != n:
        raise ValueError(f"mathalign_accuracy: `{name}` has {len(values)} entries for {n} predictions.")
    return values


def _breakdown(keys: list, correct: list[bool]) -> tuple[dict, dict]:
    hits, counts = defaultdict(int), defaultdict(int)
    for key, ok in zip(keys, correct):
        key = "unknown" if key is None else key
        counts[key] += 1
        hits[key] += int(ok)
    order = sorted(counts, key=lambda k: (isinstance(k, str), k))  # numbers in numeric order, then names
    return {str(k): hits[k] / counts[k] for k in order}, {str(k): counts[k] for k in order}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MathalignAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
        )

    def _compute(
        self,
        predictions,
        references,
        tasks=None,
        types=None,
        difficulties=None,
        generation_lengths=None,
        return_per_sample=False,
    ):
        n = len(predictions)
        if n == 0:
            raise ValueError("mathalign_accuracy: no predictions to score.")
        if tasks is None:
            raise ValueError("mathalign_accuracy: pass `tasks` (the problem family per row, e.g. 'arithmetic').")
        tasks = _per_row(tasks, n, "tasks")
        families = {name: get_task(name) for name in set(tasks)}  # unknown names fail here, with the valid ones

        extracted, correct = [], []
        for output, gold, task in zip(predictions, references, tasks):
            family = families[task]
            output = output or ""
            extracted.append(family.extract_answer(output))
            correct.append(bool(family.check(output, gold)))

        num_correct = sum(correct)
        num_parsed = sum(answer is not None for answer in extracted)
        result = {
            "accuracy": num_correct / n,
            "parse_rate": num_parsed / n,
            "avg_generation_length": None,
            "num_samples": n,
            "num_correct": num_correct,
            "num_parsed": num_parsed,
        }
        if generation_lengths is not None:
            lengths = _per_row(generation_lengths, n, "generation_lengths")
            result["avg_generation_length"] = sum(lengths) / n
        breakdowns = {"type": types, "difficulty": difficulties, "task": tasks}
        for name, keys in breakdowns.items():
            if keys is None:
                continue
            accuracy, count = _breakdown(_per_row(keys, n, name + "s"), correct)
            result[f"accuracy_per_{name}"] = accuracy
            result[f"count_per_{name}"] = count
        if return_per_sample:
            result["correct"] = correct
            result["extracted"] = extracted
        return result
