"""benchmarks/train_throughput.py on a tiny model: both sides run and do the same work, and the ratio is reported."""

import json

import pytest

from conftest import load_benchmark

TINY = ["--hidden_size", "32", "--layers", "1", "--heads", "2", "--batch_size", "8", "--steps", "3",
        "--warmup_steps", "1"]


@pytest.fixture(scope="module")
def train_throughput():
    return load_benchmark("train_throughput")


@pytest.mark.parametrize(
    "extra, loss_share",
    [
        # pretraining text: every real token but each row's first carries a loss, so most positions count
        ([], (0.5, 1.0)),
        # SFT, padded: prompt tokens are masked (completion-only loss) and padding counts none, so well under half
        (["--stage", "sft", "--set", "packing=false"], (0.1, 0.6)),
        # SFT as the pipeline trains it, packed: no padding, but the prompts still carry no loss
        (["--stage", "sft"], (0.5, 0.9)),
        # packing: one padding-free row, only each sequence's first token carries no loss
        (["--packing", "--breakdown"], (0.8, 1.0)),
        # one side after the other instead of taking turns: the same work, timed apart
        (["--sequential"], (0.5, 1.0)),
    ],
)
def test_both_sides_do_the_same_work_and_the_ratio_is_reported(train_throughput, capsys, extra, loss_share):
    result = train_throughput.main(train_throughput.make_parser().parse_args(TINY + extra))
    printed = capsys.readouterr().out

    assert result["same_work"]
    assert result["final_loss_trl"] == pytest.approx(result["final_loss_plain"], rel=1e-3)
    assert result["final_loss_trl"] < result["initial_loss"]  # both sides trained
    share = result["loss_tokens_per_step"] / result["positions_per_step"]
    assert loss_share[0] < share < loss_share[1]
    tokens = result["loss_tokens_per_step"] * result["steps"]
    assert result["trl_tokens_per_s"] == pytest.approx(tokens / result["trl_seconds"])
    assert result["ratio"] == pytest.approx(result["trl_tokens_per_s"] / result["plain_tokens_per_s"])
    assert f"ratio trl/plain tokens/s: {result['ratio']:.3f}" in printed
    assert (result["breakdown_ms"] is not None) == ("--breakdown" in extra)


def test_json_prints_one_parsable_object(train_throughput, capsys):
    result = train_throughput.main(train_throughput.make_parser().parse_args(TINY + ["--json"]))
    printed = json.loads(capsys.readouterr().out)
    assert printed["ratio"] == pytest.approx(result["ratio"])
    assert printed["parameters"] == result["parameters"]


@pytest.mark.parametrize(
    "argv, message",
    [
        # zero timed steps: nothing to measure
        (["--steps", "0"], "--steps and --warmup_steps must be at least 1"),
        # more steps than the rows make batches
        (["--steps", "50", "--num_rows", "64"], "raise --num_rows or lower --steps"),
    ],
)
def test_bad_settings_fail_with_what_to_change(train_throughput, argv, message):
    with pytest.raises(SystemExit, match=message):
        train_throughput.main(train_throughput.make_parser().parse_args(TINY + argv))
