"""Evaluation: the metric on hand-made outputs, batched generation, reports and plots, the CLI, attention."""

import json
import math

import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from mathalign.attention import AttentionEntropyCallback, attention_entropy, attention_weights
from mathalign.cli import main as cli_main
from mathalign.evaluation import evaluate_model, generate_batched, load_eval_dataset, load_metric, resolve_splits
from mathalign.report import (plot_accuracy_vs_length, plot_training_curves, split_metrics, split_type_text,
                              training_curves, write_report, write_stage_comparison)
from mathalign.tasks import get_task

from conftest import make_tiny_model

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STEPS = " <think> Step 1: 10 - 3 = 7 Expression now: 5 + 7 Step 2: 5 + 7 = 12 Expression now: 12 </think>"

# (model output, gold answer, family, type, difficulty, correct, parsed)
METRIC_CASES = [
    (" The answer is 18.", "18", "arithmetic", "a_over_b", 1, True, True),  # right
    (" The answer is 17.", "18", "arithmetic", "a_over_b", 2, False, True),  # wrong number
    (" Sorry, I do not know!", "7", "arithmetic", "a_plus_b", 1, False, False),  # no number at all
    ("", "7", "arithmetic", "a_plus_b", 2, False, False),  # empty output
    (STEPS + " Final Result: 12", "12", "expressions", "well_formed", 2, True, True),  # right, with reasoning
    (" <think> Step 1: 5 / 0 </think> Final Result: ERROR", "ERROR", "expressions", "division_by_zero", 1, True, True),
]


def _png_ok(path) -> bool:
    """A real PNG: the signature, and a decodable image of a sensible size."""
    from PIL import Image

    with open(path, "rb") as f:
        if f.read(8) != PNG_SIGNATURE:
            return False
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        return image.width >= 200 and image.height >= 150


def _eval_dataset(rows_test=6, rows_ood=4) -> DatasetDict:
    """A DatasetDict like the builders make: ClassLabel `type`, `test` and `test_ood` splits, gold completions."""
    problems = [
        ("72/4=?", " The answer is 18.", "18", "a_over_b", 2),
        ("x-18=21, x=?", " The answer is 39.", "39", "x_minus_b", 2),
        ("3+4=?", " The answer is 7.", "7", "a_plus_b", 1),
    ]
    features = Features(
        {
            "prompt": Value("string"),
            "completion": Value("string"),
            "answer": Value("string"),
            "task": Value("string"),
            "type": ClassLabel(names=get_task("arithmetic").types),
            "difficulty": Value("int32"),
        }
    )

    def split(n, bump):
        rows = [problems[i % len(problems)] for i in range(n)]
        return Dataset.from_dict(
            {
                "prompt": [p for p, *_ in rows],
                "completion": [c for _, c, *_ in rows],
                "answer": [a for _, _, a, *_ in rows],
                "task": ["arithmetic"] * n,
                "type": [t for *_, t, _ in rows],
                "difficulty": [d + bump for *_, d in rows],
            },
            features=features,
        )

    return DatasetDict({"test": split(rows_test, 0), "test_ood": split(rows_ood, 1)})


def _held_out_dataset() -> DatasetDict:
    """`_eval_dataset` with the other held-out splits the builders publish: surface variants (with a `form`
    column), uniformly drawn operands, and a validation split that evaluation leaves alone by default."""
    data = _eval_dataset(rows_test=3, rows_ood=3)
    surface = data["test"].add_column("form", ["spaced", "", "spaced"])  # empty: the canonical form
    surface = surface.map(lambda row: {"prompt": row["prompt"].replace("/", " / ") if row["form"] == "spaced"
                                       else row["prompt"]})
    return DatasetDict({**data, "validation": data["test"], "test_uniform": data["test"], "test_surface": surface})


# ---------------------------------------------------------------------------------------------------------------
# The metric module


def test_metric_on_hand_made_outputs():
    outputs, golds, tasks, types, difficulties, correct, parsed = map(list, zip(*METRIC_CASES))
    lengths = [5, 5, 6, 0, 30, 12]
    result = load_metric().compute(
        predictions=outputs, references=golds, tasks=tasks, types=types, difficulties=difficulties,
        generation_lengths=lengths, return_per_sample=True,
    )
    assert result["correct"] == correct
    assert [e is not None for e in result["extracted"]] == parsed
    assert result["accuracy"] == pytest.approx(3 / 6)
    assert result["parse_rate"] == pytest.approx(4 / 6)
    assert result["avg_generation_length"] == pytest.approx(sum(lengths) / 6)
    assert result["accuracy_per_type"] == {"a_over_b": 0.5, "a_plus_b": 0.0, "well_formed": 1.0, "division_by_zero": 1.0}
    assert result["count_per_type"]["a_plus_b"] == 2
    assert result["accuracy_per_difficulty"] == {"1": pytest.approx(2 / 3), "2": pytest.approx(1 / 3)}
    assert result["accuracy_per_task"] == {"arithmetic": 0.25, "expressions": 1.0}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(predictions=[], references=[], tasks="arithmetic"), "no predictions"),  # nothing to score
        (dict(predictions=["1"], references=["1"], tasks=["arithmetic", "arithmetic"]), "entries"),  # misaligned
        (dict(predictions=["1"], references=["1"]), "tasks"),  # which family checks it?
    ],
)
def test_metric_refuses_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_metric().compute(**kwargs)


# ---------------------------------------------------------------------------------------------------------------
# Generation


def test_left_padded_batch_equals_one_at_a_time(tiny_model, tiny_tokenizer):
    prompts = ["72/4=?", "x-18=21, x=?", "Evaluate: 5 + (10 - 3)", "1+1=?"]  # 4 different prompt lengths
    kwargs = dict(max_new_tokens=10, min_new_tokens=10, progress=False)
    _, lengths, batched = generate_batched(tiny_model, tiny_tokenizer, prompts, batch_size=4, **kwargs)
    _, _, single = generate_batched(tiny_model, tiny_tokenizer, prompts, batch_size=1, use_cache=False, **kwargs)
    assert batched == single
    assert lengths == [10] * 4  # forced length, counted per prompt


def test_generation_stops_at_eos(tiny_tokenizer):
    # A model that always says eos: final norm outputs a constant vector that only the eos row of lm_head reads.
    model = make_tiny_model(tiny_tokenizer, bias=True, tie_word_embeddings=False)
    with torch.no_grad():
        model.model.norm.weight.zero_()
        model.model.norm.bias.zero_()
        model.model.norm.bias[0] = 1.0
        model.lm_head.weight.zero_()
        model.lm_head.weight[tiny_tokenizer.eos_token_id, 0] = 1.0
    texts, lengths, ids = generate_batched(model, tiny_tokenizer, ["3+4=?", "x-18=21, x=?"], max_new_tokens=8,
                                           progress=False)
    assert (texts, lengths, ids) == (["", ""], [0, 0], [[], []])  # eos is neither decoded nor counted


# ---------------------------------------------------------------------------------------------------------------
# End to end


def test_evaluate_model_end_to_end(tiny_model_dir, tmp_path):
    data_dir = tmp_path / "data"
    _eval_dataset().save_to_disk(data_dir)
    out = tmp_path / "eval"
    metrics = evaluate_model(str(tiny_model_dir), dataset=str(data_dir), batch_size=4, out_dir=out, progress=False)

    assert set(metrics["splits"]) == {"test", "test_ood"}  # test_ood evaluated by default when present
    assert metrics["num_samples"] == 6 and metrics["splits"]["test_ood"]["num_samples"] == 4
    assert set(metrics["accuracy_per_type"]) == {"a_over_b", "x_minus_b", "a_plus_b"}  # ClassLabel ids as names
    assert metrics["accuracy"] <= metrics["parse_rate"]  # a right answer is always a parsed one
    for name in ("metrics.json", "samples.jsonl", "report.md", "accuracy_per_type.png"):
        assert (out / name).is_file(), name
    assert _png_ok(out / "accuracy_per_type.png")
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 10
    for s in samples:  # every verdict is the family's own
        assert s["correct"] == get_task(s["task"]).check(s["output"], s["gold"])
        assert set(s) >= {"prompt", "output", "gold", "correct", "type"}
    assert metrics["accuracy"] == sum(s["correct"] for s in samples if s["split"] == "test") / 6
    report = (out / "report.md").read_text()
    assert "| a_over_b |" in report and "test_ood" in report
    assert json.loads((out / "metrics.json").read_text())["accuracy"] == metrics["accuracy"]


@pytest.mark.parametrize(
    "available, split, expected",
    [
        # every held-out test_* split joins `test`, test_ood/test_surface/test_uniform first, then the rest by name
        (["train", "test_uniform", "test_zeta", "test", "validation", "test_surface", "test_ood"], None,
         ["test", "test_ood", "test_surface", "test_uniform", "test_zeta"]),
        # nothing held out: `test` alone
        (["train", "validation", "test"], None, ["test"]),
        # a single split (a parquet file) is evaluated whatever its name
        (["data"], None, ["data"]),
        # named splits are exactly the ones evaluated, in the order given
        (["test", "test_ood", "validation", "validation_surface"], "validation,validation_surface",
         ["validation", "validation_surface"]),
        (["test", "test_ood", "test_surface"], ["test_surface"], ["test_surface"]),
    ],
)
def test_default_splits_are_test_and_every_held_out_split(available, split, expected):
    resolved = resolve_splits(dict.fromkeys(available), split)
    assert [name for name, _ in resolved] == expected
    # a default held-out split smaller than --num-samples is taken whole; only named ones (and `test`) must hold it
    assert [explicit for _, explicit in resolved] == [True] + [split is not None] * (len(expected) - 1)


class _Builder:
    """A stand-in data builder that refuses the options named in `refused`, like a builder without those splits."""

    def __init__(self, refused=()):
        self.refused, self.calls = set(refused), []

    def build(self, **kwargs):
        self.calls.append(kwargs)
        unknown = sorted(self.refused & set(kwargs))
        if unknown:
            raise ValueError(f"unknown option {unknown[0]!r}; valid options: num_train, num_test")
        return _eval_dataset()


def test_builders_without_a_held_out_split_are_built_without_it(monkeypatch):
    import mathalign.evaluation as ev

    # the surface and uniform splits are asked for by default, dropped one by one when a builder refuses them
    builder = _Builder(refused={"num_test_surface", "num_test_uniform", "num_test_ood"})
    monkeypatch.setattr(ev, "_get_builder", lambda name: builder)
    assert set(load_eval_dataset("gsm8k")) == {"test", "test_ood"}
    assert builder.calls[0]["num_test_surface"] == builder.calls[0]["num_test_uniform"] == 256
    assert not any(k.startswith("num_test_") for k in builder.calls[-1])
    # a builder that draws them gets them on the first try
    builder = _Builder()
    monkeypatch.setattr(ev, "_get_builder", lambda name: builder)
    load_eval_dataset("sft")
    assert len(builder.calls) == 1 and builder.calls[0]["num_test_uniform"] == 256
    # a size the caller asked for is never dropped: the builder's own error reaches the user
    builder = _Builder(refused={"num_test_surface"})
    monkeypatch.setattr(ev, "_get_builder", lambda name: builder)
    with pytest.raises(ValueError, match="num_test_surface"):
        ev._build(builder, "sft", {"num_test_surface": 10})


def test_every_held_out_split_is_evaluated_and_shown_per_type(tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "data"
    _held_out_dataset().save_to_disk(data)
    out = tmp_path / "eval"
    capsys.readouterr()
    assert cli_main(["eval", str(tiny_model_dir), "--data", str(data), "--out", str(out), "--batch-size", "4"]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())

    splits = ["test", "test_ood", "test_surface", "test_uniform"]  # not validation: it is for tuning
    assert list(metrics["splits"]) == splits
    for split, m in metrics["splits"].items():  # each split keeps its own breakdowns
        assert set(m["accuracy_per_type"]) == {"a_over_b", "x_minus_b", "a_plus_b"}, split
        assert m["accuracy_per_difficulty"] and m["accuracy_per_type_and_difficulty"]["a_over_b"], split
        assert ("accuracy_per_form" in m) == (split == "test_surface")  # only rows with a `form` column have one
    surface = metrics["splits"]["test_surface"]
    assert surface["count_per_form"] == {"canonical": 1, "spaced": 2}
    assert metrics["splits"]["test_ood"]["count_per_type_and_difficulty"]["a_over_b"] == {"3": 1}

    # One table in the terminal: a row per type (then `all`), a column per split.
    lines = printed.splitlines()
    header = lines.index("accuracy per type and split") + 1
    assert lines[header].split() == ["type", *splits]
    rows = {line.split()[0]: line.split()[1:] for line in lines[header + 1:header + 6]}
    assert list(rows) == ["a_plus_b", "a_over_b", "x_minus_b", "all", "problems"]  # the ClassLabel's order
    assert rows["problems"] == ["3", "3", "3", "3"]
    assert rows["all"][2] == f"{100 * surface['accuracy']:.1f}%"
    assert "accuracy per form (test_surface): canonical 0.0%, spaced 0.0%" in printed  # the untrained model

    # The same table in report.md, and the samples say which surface form each problem had.
    report = (out / "report.md").read_text()
    assert "## Accuracy per problem type and split" in report
    assert "| type | test (n) | test_ood (n) | test_surface (n) | test_uniform (n) |" in report
    assert "| **all** |" in report and "## Accuracy per surface form" in report
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert {s["form"] for s in samples if s["split"] == "test_surface"} == {"spaced", "canonical"}
    # the model reads each prompt as the split writes it (`72 / 4=?`), not normalised back to the canonical form
    written = _held_out_dataset()["test_surface"]["prompt"]
    assert "72 / 4=?" in written and [s["prompt"] for s in samples if s["split"] == "test_surface"] == written
    # operand lengths 1-3 over the splits combined: the length plot is written
    assert _png_ok(out / "accuracy_vs_length.png") and "accuracy_vs_length.png" in report


def test_the_builders_held_out_splits_are_all_evaluated(tiny_model_dir):
    import data_builders

    sizes = {"num_test_ood": 4, "num_test_surface": 4, "num_test_uniform": 4}
    try:
        data = data_builders.get_builder("sft").build(num_train=0, num_validation=0, num_test=4, seed=0,
                                                      progress=False, **sizes)
    except ValueError as err:  # (until the builders draw surface variants and uniform operands)
        pytest.skip(f"the sft builder does not draw every held-out split: {err}")
    metrics = evaluate_model(str(tiny_model_dir), dataset=data, batch_size=16, progress=False)
    assert list(metrics["splits"]) == ["test", "test_ood", "test_surface", "test_uniform"]
    assert all(m["num_samples"] == 4 for m in metrics["splits"].values())
    ood = metrics["splits"]["test_ood"]["accuracy_per_difficulty"]
    assert min(map(int, ood)) > max(map(int, metrics["splits"]["test"]["accuracy_per_difficulty"]))  # longer
    if "form" in data["test_surface"].column_names:  # which surface forms the model reads
        assert sum(metrics["splits"]["test_surface"]["count_per_form"].values()) == 4


def test_evaluate_lora_adapter_and_parquet(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model

    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    adapter = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    adapter.save_pretrained(tmp_path / "adapter")  # no tokenizer saved: it must come from the base model
    _eval_dataset()["test"].to_parquet(tmp_path / "test.parquet")
    metrics = evaluate_model(str(tmp_path / "adapter"), dataset=str(tmp_path / "test.parquet"), progress=False)
    assert list(metrics["splits"]) == ["test"] and metrics["num_samples"] == 6


@pytest.mark.parametrize(
    "argv, message",
    [
        (["eval", "{tmp}/missing-model", "--data", "{data}"], "does not exist"),  # no such checkpoint
        (["eval", "{model}", "--data", "{tmp}/no-such-data"], "does not exist"),  # no such dataset
        (["eval", "{model}", "--data", "{bad}"], "lacks column(s) ['answer', 'task']"),  # pretrain-style rows
        (["eval", "{model}", "--data", "{data}", "--split", "test", "--num-samples", "7"], "larger than split"),
        (["eval", "{model}", "--data", "{data}", "--split", "validation"], "not in the dataset"),  # unknown split
    ],
)
def test_eval_cli_bad_input_is_one_line(argv, message, tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "data"
    _eval_dataset().save_to_disk(data)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "3+4=?", "text": "3+4=? The answer is 7."}\n')
    argv = [a.format(tmp=tmp_path, data=data, model=tiny_model_dir, bad=bad) for a in argv]
    capsys.readouterr()  # drop the progress bars of the set-up
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    last = err.splitlines()[-1]  # (loading a data file may draw a progress bar before)
    assert last.startswith("mathalign eval: error: ") and message in last


def test_compare_cli_writes_table_and_plot(tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "data"
    _eval_dataset(rows_test=3, rows_ood=2).save_to_disk(data)
    out = tmp_path / "cmp"
    argv = ["compare", str(tiny_model_dir), str(tiny_model_dir), "--names", "base,sft", "--data", str(data),
            "--out", str(out)]
    assert cli_main(argv) == 0
    assert "test_ood" in capsys.readouterr().out.splitlines()[-2]  # each stage's accuracy on every split
    table = (out / "comparison.md").read_text()
    assert "| | base | sft |" in table and "`a_over_b`" in table and "out of distribution" in table
    assert _png_ok(out / "comparison.png")
    assert (out / "base" / "report.md").is_file() and (out / "sft" / "metrics.json").is_file()


# ---------------------------------------------------------------------------------------------------------------
# Reports and plots from hand-written metrics


def _metrics(accuracy: float) -> dict:
    return {
        "accuracy": accuracy, "parse_rate": 1.0, "avg_generation_length": 7.0, "num_samples": 4,
        "accuracy_per_type": {"a_plus_b": accuracy, "a_over_b": accuracy / 2},
        "count_per_type": {"a_plus_b": 2, "a_over_b": 2},
        "accuracy_per_difficulty": {"1": accuracy, "2": accuracy / 2},
        "count_per_difficulty": {"1": 2, "2": 2},
    }


def test_write_report_files(tmp_path):
    metrics = {"model": "m", "dataset": "d", "split": "test", **_metrics(0.5), "splits": {"test": _metrics(0.5)}}
    samples = [{"prompt": "3+4=?", "output": " The answer is 8.", "extracted": "8", "gold": "7", "correct": False}]
    files = write_report(metrics, samples, tmp_path)
    assert {"metrics", "samples", "report", "accuracy_per_type", "accuracy_per_difficulty"} <= set(files)
    assert all(_png_ok(p) for p in files.values() if p.suffix == ".png")
    report = (tmp_path / "report.md").read_text()
    assert "| a_over_b | 25.0% (2) |" in report  # the per-type table
    assert "| `3+4=?` | `The answer is 8.` | 8 | 7 |" in report  # the failure list


def _split_metrics(accuracy: float, difficulties=("1", "2")) -> dict:
    """One split's metrics as evaluate_split makes them, with the per type and difficulty breakdown."""
    per = {t: {d: max(0.0, accuracy - 0.1 * int(d) * (t == "a_over_b")) for d in difficulties}
           for t in ("a_plus_b", "a_over_b")}
    return {**_metrics(accuracy), "accuracy_per_task": {"arithmetic": accuracy},
            "accuracy_per_type_and_difficulty": per,
            "count_per_type_and_difficulty": {t: dict.fromkeys(difficulties, 2) for t in per}}


def test_accuracy_against_operand_length_plot(tmp_path):
    # in-range lengths from `test`, longer ones from `test_ood`: one axis, a line per type
    splits = {"test": _split_metrics(1.0), "test_ood": _split_metrics(0.5, ("3", "4"))}
    metrics = {"model": "m", "split": "test", **splits["test"], "splits": splits}
    files = write_report(metrics, [], tmp_path / "two")
    assert _png_ok(files["accuracy_vs_length"])
    report = (tmp_path / "two" / "report.md").read_text()
    assert "## Accuracy per type and operand digits, every split combined" in report
    assert "| a_over_b | 90.0% (2) | 80.0% (2) | 20.0% (2) | 10.0% (2) |" in report
    # one length only: nothing to draw a line through, no plot and no table
    single = {"test": _split_metrics(1.0, ("2",))}
    files = write_report({"split": "test", **single["test"], "splits": single}, [], tmp_path / "one")
    assert "accuracy_vs_length" not in files and not (tmp_path / "one" / "accuracy_vs_length.png").exists()
    assert plot_accuracy_vs_length({"splits": single}, tmp_path / "x.png") is None
    # nine types: the legend moves outside the axes, and the picture is still a readable size
    nine = {"test": {**_split_metrics(0.9), "accuracy_per_type_and_difficulty": {
        f"type_{i}": {"1": 0.9, "2": 0.8} for i in range(9)}, "count_per_type_and_difficulty": {
        f"type_{i}": {"1": 2, "2": 2} for i in range(9)}}}
    assert _png_ok(plot_accuracy_vs_length({"splits": nine}, tmp_path / "nine.png"))


def test_split_type_table_marks_missing_cells():
    splits = {"test": _metrics(1.0), "test_surface": {**_metrics(0.5), "accuracy_per_type": {"a_plus_b": 0.5}}}
    text = split_type_text({"splits": splits})
    assert text.splitlines()[1:] == [
        "type        test  test_surface",
        "a_plus_b  100.0%         50.0%",
        "a_over_b   50.0%             -",  # the surface split has no a_over_b problem
        "all       100.0%         50.0%",
        "problems       4             4",
    ]


def test_split_metrics_reads_every_shape_of_result():
    both = {"split": "test", **_metrics(1.0), "splits": {"test": _metrics(1.0), "test_ood": _metrics(0.5)}}
    assert list(split_metrics(both)) == ["test", "test_ood"] and split_metrics(both)["test_ood"]["accuracy"] == 0.5
    one = {"split": "validation", **_metrics(0.25)}  # a single split's metrics, named by its `split`
    assert split_metrics(one) == {"validation": one}
    assert list(split_metrics(_metrics(0.25))) == ["test"]  # unnamed: `test`


def test_training_curves_from_trainer_state(tmp_path):
    log_history = [
        {"step": 1, "loss": 2.0, "rewards/margins": 0.1, "rewards/accuracies": 0.5, "learning_rate": 1e-3},
        {"step": 2, "loss": 1.5, "rewards/margins": 0.4, "rewards/accuracies": 0.75, "kl": 0.02, "reward": 0.3},
        {"step": 2, "eval_loss": 1.7},
        {"step": 2, "train_runtime": 3.0, "total_flos": 1.0},  # the end-of-training summary: nothing to plot
    ]
    state = tmp_path / "trainer_state.json"
    state.write_text(json.dumps({"log_history": log_history}))
    panels = training_curves(log_history)
    assert set(panels) == {"Loss", "DPO reward margin", "Accuracy", "KL to the reference", "Reward", "Learning rate"}
    assert panels["Loss"]["eval_loss"] == ([2], [1.7])
    assert _png_ok(plot_training_curves(state, tmp_path / "curves.png"))
    state.write_text(json.dumps({"log_history": [{"step": 1, "train_runtime": 1.0}]}))
    with pytest.raises(ValueError, match="no logged training values"):
        plot_training_curves(state, tmp_path / "empty.png")


def test_write_stage_comparison_from_metrics(tmp_path):
    stages = {"base": _metrics(0.1), "sft": _metrics(0.6), "dpo": _metrics(0.8)}
    files = write_stage_comparison(stages, tmp_path)
    table = files["markdown"].read_text()
    assert "| accuracy | 10.0% | 60.0% | **80.0%** |" in table  # best stage in bold
    assert _png_ok(files["plot"])
    assert json.loads(files["json"].read_text())["sft"]["accuracy"] == 0.6
    assert "(final stage)" not in table  # no split to break down, no length to plot
    with pytest.raises(ValueError, match="expected the metrics dict"):
        write_stage_comparison({"broken": {"loss": 1.0}}, tmp_path)


def test_stage_comparison_shows_every_split_and_the_final_stage_per_type(tmp_path):
    def stage(accuracy):
        splits = {"test": _split_metrics(accuracy), "test_ood": _split_metrics(accuracy / 2, ("3",)),
                  "test_surface": _split_metrics(accuracy - 0.1)}
        return {"split": "test", **splits["test"], "splits": splits}

    files = write_stage_comparison({"sft": stage(0.6), "grpo": stage(0.8)}, tmp_path)
    table = files["markdown"].read_text()
    assert "| accuracy, test_ood (out of distribution) | 30.0% | **40.0%** |" in table
    assert "| accuracy, test_surface | 50.0% | **70.0%** |" in table
    assert "## grpo (final stage): accuracy per type and split" in table
    assert "| **all** | **80.0% (4)** | **40.0% (4)** | **70.0% (4)** |" in table
    assert "![grpo: accuracy against operand digits](accuracy_vs_length.png)" in table
    assert _png_ok(files["accuracy_vs_length"]) and _png_ok(files["plot"])
    saved = json.loads(files["json"].read_text())["grpo"]["splits"]
    assert saved["test_surface"]["accuracy"] == pytest.approx(0.7) and "accuracy_per_type" in saved["test_ood"]


# ---------------------------------------------------------------------------------------------------------------
# Attention


def test_attention_cli_writes_heatmaps_and_prints_entropy(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "attention"
    assert cli_main(["attention", str(tiny_model_dir), "--prompt", "x - 18 = 21, x = ?", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "'x-18=21, x=?'" in printed  # normalised like chat input
    pngs = sorted(out.glob("attention_layer_*.png"))
    assert [p.name for p in pngs] == ["attention_layer_0.png", "attention_layer_1.png"]
    assert all(_png_ok(p) for p in pngs)
    entropies = [float(line.split()[1]) for line in printed.splitlines() if line[:5].strip().isdigit()]
    assert len(entropies) == 2 and all(0 < e < math.log(64) for e in entropies)


def test_attention_entropy_ignores_padding(tiny_model, tiny_tokenizer):
    # a prompt alone and the same prompt left-padded next to a longer one: same entropy for its real tokens
    alone, mask_alone = attention_weights(tiny_model, tiny_tokenizer, ["3+4=?"])
    padded, mask = attention_weights(tiny_model, tiny_tokenizer, ["3+4=?", "Evaluate: 5 + (10 - 3)"])
    one = attention_entropy([a[:1] for a in padded], mask[:1])
    assert one == pytest.approx(attention_entropy(alone, mask_alone), abs=1e-4)
    assert tiny_model.config._attn_implementation != "eager"  # restored after the measurement


def test_attention_entropy_callback_logs_during_training(tiny_model, tiny_tokenizer, tmp_path):
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    texts = ["3+4=? The answer is 7.", "72/4=? The answer is 18."] * 4
    train = Dataset.from_dict(dict(tiny_tokenizer(texts)))
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=2, logging_steps=1, per_device_train_batch_size=1, report_to="none",
        use_cpu=True, save_strategy="no", disable_tqdm=True,
    )
    collator = DataCollatorForLanguageModeling(tiny_tokenizer, mlm=False)
    trainer = Trainer(model=tiny_model, args=args, train_dataset=train, processing_class=tiny_tokenizer,
                      data_collator=collator)
    AttentionEntropyCallback(prompts=["3+4=?", "x-18=21, x=?"]).attach_to(trainer)  # tokenizer: the trainer's
    trainer.train()
    logged = [e for e in trainer.state.log_history if "loss" in e]
    assert len(logged) == 2
    assert all(e["attention_entropy/layer_0"] > 0 and "attention_entropy/layer_1" in e for e in logged)
    assert trainer.model.config._attn_implementation == "sdpa"  # eager only while measuring
