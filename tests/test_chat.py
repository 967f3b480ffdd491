"""The interactive solver: routing typed input, showing steps and verdicts, leaving cleanly, never a traceback."""

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mathalign.chat import (NotAProblem, Solution, chat_loop, expected_answer, format_solution, reasoning_steps, route,
                            trained_family)
from mathalign.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]
STEPS_OUTPUT = " <think> Step 1: 10 - 3 = 7 Expression now: 5 + 7 Step 2: 5 + 7 = 12 Expression now: 12 </think> Final Result: 12"


@pytest.mark.parametrize(
    "typed, expected",
    [
        ("5 + (10 - 3)", ("expressions", "Evaluate: 5 + (10 - 3)")),  # bare expression -> Evaluate:
        ("evaluate:5+(10 -3)", ("expressions", "Evaluate: 5 + (10 - 3)")),  # the prompt itself, any spacing
        ("72/4=?", ("arithmetic", "72/4=?")),  # arithmetic question as trained
        ("x - 18 = 21 , x = ?", ("arithmetic", "x-18=21, x=?")),  # spacing variants are the same problem
        ("72 ÷ 4 =", ("arithmetic", "72/4=?")),  # typed symbols and a missing `?`
    ],
)
def test_route(typed, expected):
    assert route(typed) == expected


@pytest.mark.parametrize(
    "typed",
    [
        "hello",  # words
        "what is 2+2",  # a question in words: not a trained format
        "=?",  # no number
        "",  # nothing
    ],
)
def test_route_refuses_nonsense_politely(typed):
    with pytest.raises(NotAProblem, match="Sorry|Type"):
        route(typed)


@pytest.mark.parametrize(
    "typed, expected",
    [
        ("99*64", ("arithmetic", "99*64=?")),  # one of the nine types: the question an arithmetic model knows
        ("72 / 4", ("arithmetic", "72/4=?")),
        ("5 + (10 - 3)", ("expressions", "Evaluate: 5 + (10 - 3)")),  # no arithmetic problem: still an expression
        ("7/2", ("expressions", "Evaluate: 7 / 2")),  # inexact division is none of the nine types
    ],
)
def test_route_prefers_the_family_the_model_was_trained_on(typed, expected):
    assert route(typed, prefer="arithmetic") == expected
    assert route(typed)[0] == "expressions"  # without a preference a bare expression is an expression


@pytest.mark.parametrize(
    "recipe, family",
    [
        ("dataset_name: sft\ndata_options: {task: [arithmetic], num_train: 8}\n", "arithmetic"),
        ("dataset_name: sft\ndata_options: {task: expressions}\n", "expressions"),  # a bare name
        ("dataset_name: sft\n", "arithmetic"),  # the builders' default family
        ("dataset_name: sft\ndata_options: {task: [arithmetic, expressions]}\n", None),  # both: no preference
        ("dataset_name: gsm8k\n", None),  # not a generated family
        ("[not, a, mapping]\n", None),  # unreadable: routing by what is typed alone
        (None, None),  # no recipe.yaml (a Hub id, a foreign checkpoint)
    ],
)
def test_trained_family_reads_the_runs_recipe(tmp_path, recipe, family):
    if recipe is not None:
        (tmp_path / "recipe.yaml").write_text(recipe)
    assert trained_family(tmp_path) == family


def test_forced_family_and_unknown_family():
    assert route("72/4", task="arithmetic") == ("arithmetic", "72/4=?")  # --task arithmetic completes the question
    with pytest.raises(ValueError, match="unknown task"):
        route("72/4", task="algebra")


def test_reasoning_steps_and_expected_answer():
    assert reasoning_steps(STEPS_OUTPUT) == [
        "Step 1: 10 - 3 = 7 Expression now: 5 + 7",
        "Step 2: 5 + 7 = 12 Expression now: 12",
    ]
    assert reasoning_steps(" The answer is 18.") == []  # no <think>: no steps
    assert expected_answer("expressions", "Evaluate: 5 + (10 - 3)") == "12"  # the family solves it itself
    assert expected_answer("expressions", "Evaluate: 5 / (3 - 3)") == "ERROR"
    assert expected_answer("arithmetic", "x-18=21, x=?") == "39"
    assert expected_answer("arithmetic", "1+2+3=?") is None  # none of the nine types: not checked


@pytest.mark.parametrize(
    "solution, shown",
    [
        # right, with reasoning: each step on its own line, then the verdict
        (Solution("expressions", "Evaluate: 5 + (10 - 3)", STEPS_OUTPUT, "12", reasoning_steps(STEPS_OUTPUT), "12", True),
         ["  Step 2: 5 + 7 = 12 Expression now: 12", "Final result: 12", "right"]),
        # wrong: the family's answer is given
        (Solution("arithmetic", "72/4=?", " The answer is 17.", "17", [], "18", False),
         ["72/4=? The answer is 17.", "Answer: 17", "wrong, the answer is 18"]),
        # nothing to check against
        (Solution("arithmetic", "72/4=?", " The answer is 18.", "18", [], None, None), ["(not checked)"]),
        # no answer in the output
        (Solution("arithmetic", "72/4=?", " Sorry, I do not know!", None, [], "18", False), ["no answer found"]),
    ],
)
def test_format_solution(solution, shown):
    text = format_solution(solution)
    assert all(piece in text for piece in shown), text


def _scripted(lines):
    """A `read` function typing `lines`, then Ctrl-D (EOF), and a list collecting what is written."""
    feed, written = iter(lines), []

    def read(prompt):
        written.append(prompt)
        try:
            return next(feed)
        except StopIteration:
            raise EOFError from None

    return read, written.append, written


@pytest.mark.parametrize(
    "lines",
    [
        ["exit", "72/4=?"],  # exit
        ["quit", "72/4=?"],  # quit
        ["  Q  ", "72/4=?"],  # q, any case and spacing
        [],  # Ctrl-D at once
    ],
)
def test_chat_loop_leaves(lines, tiny_model, tiny_tokenizer):
    read, write, written = _scripted(lines)
    assert chat_loop(tiny_model, tiny_tokenizer, read=read, write=write) == 0
    assert written.count("math> ") == 1  # left at the first prompt: nothing after the exit word was read


def test_chat_loop_answers_and_survives_nonsense(tiny_model, tiny_tokenizer):
    read, write, written = _scripted(["hello", "", "5 + (10 - 3)", "x-18=21, x=?"])
    assert chat_loop(tiny_model, tiny_tokenizer, read=read, write=write) == 0
    text = "\n".join(map(str, written))
    assert "Sorry, I can't read 'hello'" in text
    assert "Evaluate: 5 + (10 - 3)" in text and "x-18=21, x=?" in text
    assert text.count("math> ") == 5  # asked again after each input, blank line included


def test_one_shot_prompt(tiny_model_dir, capsys):
    assert cli_main(["chat", str(tiny_model_dir), "--prompt", "5 + (10 - 3)"]) == 0
    out = capsys.readouterr().out
    assert "Evaluate: 5 + (10 - 3)" in out and "Final result:" in out
    assert "right" in out or "the answer is 12" in out  # checked against the family's own answer
    assert cli_main(["chat", str(tiny_model_dir), "--prompt", "tell me a joke"]) == 2  # nonsense: exit 2
    assert "Sorry, I can't read" in capsys.readouterr().err


def _env():
    return {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE",
            "TOKENIZERS_PARALLELISM": "false"}


def test_chat_through_stdin(tiny_model_dir):
    result = subprocess.run(
        [sys.executable, "-m", "mathalign.cli", "chat", str(tiny_model_dir)],
        input="5 + (10 - 3)\nhello there\n72/4=?\n",  # ends without an exit word: EOF leaves
        capture_output=True, text=True, timeout=120, env=_env(), cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "Evaluate: 5 + (10 - 3)" in result.stdout and "Sorry, I can't read 'hello there'" in result.stdout
    assert result.stdout.count("math> ") == 4


def _read_until(fd, marker: bytes, timeout: float = 90.0) -> bytes:
    buffer, deadline = b"", time.monotonic() + timeout
    while marker not in buffer:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError(f"timed out waiting for {marker!r}; got {buffer[-500:]!r}")
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        buffer += chunk
    return buffer


def test_chat_in_a_pseudo_terminal(tiny_model_dir):
    master, slave = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-m", "mathalign.cli", "chat", str(tiny_model_dir)],
        stdin=slave, stdout=slave, stderr=slave, env=_env(), cwd=REPO, close_fds=True,
    )
    os.close(slave)
    try:
        _read_until(master, b"math> ")
        os.write(master, b"x-18=21, x=?\n")
        answer = _read_until(master, b"math> ")
        assert b"x-18=21, x=?" in answer and b"Answer:" in answer and b"39" in answer  # checked against 39
        os.write(master, b"!!!\n")
        assert b"Sorry" in _read_until(master, b"math> ")
        os.write(master, b"\x04")  # Ctrl-D
        assert child.wait(timeout=30) == 0
    finally:
        if child.poll() is None:
            child.kill()
        os.close(master)


def test_chat_holds_no_prompt_regexes():
    # routing and checking ask the families (read_prompt, as_prompt, problem_of, steps): chat parses no text itself
    import ast
    import inspect

    import mathalign.chat

    tree = ast.parse(inspect.getsource(mathalign.chat))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert "re" not in imported
    compiled = [name for name, value in vars(mathalign.chat).items() if hasattr(value, "pattern")]
    assert not compiled
