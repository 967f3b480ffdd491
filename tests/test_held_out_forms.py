"""benchmarks/held_out_forms.py writes problems with code of its own; each must be the problem mathalign reads."""

import random

import pytest
from conftest import load_benchmark

from mathalign.tasks import get_task

forms = load_benchmark("held_out_forms")


@pytest.mark.parametrize("suite", ["canonical", "spaced", "compact", "mixed"])
def test_arithmetic_prompts_are_the_problems_mathalign_reads(suite):
    task, rng = get_task("arithmetic"), random.Random(suite)
    for type in forms.ARITHMETIC_TYPES:
        for _ in range(50):
            pieces, gold = forms.arithmetic_problem(rng, type)
            prompt = forms.write_arithmetic(pieces, suite, rng)
            problem = task.from_prompt(prompt)
            assert problem is not None and problem.answer == str(gold), prompt
            if suite == "canonical":
                assert problem.prompt == prompt  # the training form, exactly


@pytest.mark.parametrize("suite", ["minimal", "all_parens", "mixed", "malformed"])
def test_expression_prompts_are_the_problems_mathalign_reads(suite):
    task = get_task("expressions")
    rows = forms.expression_problems(random.Random(suite), suite, 300)
    for prompt, gold, _ in rows:
        assert task.problem_of(prompt).answer == gold, prompt
    if suite == "all_parens":
        assert all("(" in prompt for prompt, _, type in rows if type != "2 numbers")  # `9 + 4` has no operand to wrap
    if suite == "mixed":
        assert any(prompt.startswith("Evaluate: (") and prompt.endswith(")") for prompt, _, _ in rows)


def test_main_runs_a_saved_model_with_plain_transformers(tiny_model_dir, tmp_path, capsys):
    results = forms.main([str(tiny_model_dir), "--per_type", "2", "--json", str(tmp_path / "r.json")])
    assert {"canonical/all", "spaced/all", "compact/all", "mixed/all", "mixed/a*b"} <= set(results)
    assert all(0.0 <= value <= 1.0 for value in results.values())
    assert "canonical" in capsys.readouterr().out and (tmp_path / "r.json").is_file()
