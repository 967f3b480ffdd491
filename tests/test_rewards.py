"""Reward functions: exact scores on known completions, no crash on garbage, and a real GRPOTrainer step."""

import doctest
import math
import pickle
import time

import pytest
from datasets import Dataset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mathalign.rewards
from mathalign.rewards import (
    REWARD_FUNCTIONS,
    choice_reward,
    completion_text,
    correctness_reward,
    find_steps,
    format_reward,
    get_reward_function,
    make_choice_reward,
    make_correctness_reward,
    make_steps_reward,
    resolve_rewards,
    score_steps,
    steps_reward,
)

FAMILIES = ["arithmetic", "expressions", "gsm8k", "aqua"]
# The values each registered function may return; the garbage tests hold every function to its row.
RANGES = {
    "correctness_reward": {0.0, 1.0},
    "format_reward": {0.0, 1.0},
    "steps_reward": (-1.0, 1.0),
    "choice_reward": {0.0, 0.1, 1.0},
}
EXPR_TARGET = (
    " <think> Step 1: 10 - 3 = 7 Expression now: 5 + 7 Step 2: 5 + 7 = 12 Expression now: 12 </think> Final Result: 12"
)
PARTS = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]


def test_docstring_examples():
    results = doctest.testmod(mathalign.rewards)
    assert results.attempted >= 15 and results.failed == 0


@pytest.mark.parametrize(
    "completion, expected",
    [
        (" The answer is 18.", " The answer is 18."),  # a plain string is the text
        ([{"role": "assistant", "content": "hi"}], "hi"),  # TRL's conversational completion
        ([{"role": "assistant", "content": PARTS}], "ab"),  # content as typed parts
        ([{"role": "assistant", "content": "a"}, {"role": "tool", "content": "4"}], "a"),  # tool output is not ours
        ({"role": "assistant", "content": "one"}, "one"),  # a bare message
        (None, ""),  # nothing
        ([[[]]], ""),  # nested junk
        ([{"content": 5}], ""),  # non-text content
        (3.5, ""),  # a number is not a completion
    ],
)
def test_completion_text(completion, expected):
    assert completion_text(completion) == expected


@pytest.mark.parametrize(
    "task, completion, answer, expected",
    [
        ("arithmetic", " The answer is 18.", "18", 1.0),  # the target itself
        ("arithmetic", " The answer is 17.", "18", 0.0),  # off by one
        ("arithmetic", " The answer is -3.", "-3", 1.0),  # negative answers
        ("arithmetic", " The answer is 18 because 72/4 equals 18.", "18", 1.0),  # the seed's "explain" style
        ("expressions", EXPR_TARGET, "12", 1.0),  # a full reasoning trace
        ("expressions", EXPR_TARGET, "13", 0.0),  # right format, wrong result
        ("expressions", " <think> Error: dangling operator </think> Final Result: ERROR", "ERROR", 1.0),  # bad input
        ("expressions", " Final Result: --5", "-5", 0.0),  # a double sign is not a number
        ("gsm8k", " she sold 1,072 clips.\n#### 1,072", "1072", 1.0),  # thousands separators
        ("gsm8k", " #### 71", "72", 0.0),  # wrong number
        ("aqua", " so 55 km.\nFinal Answer: e", "E", 1.0),  # the letter in any case
        ("aqua", " Final Answer: B", "E", 0.0),  # wrong letter
        ("arithmetic", "9" * 10000, "18", 0.0),  # a wall of digits
        ("gsm8k", "#### " + "9" * 10000, "9", 0.0),  # a 10,000-digit answer is not a number here
        ("arithmetic", " The answer is 1e309", "18", 0.0),  # float overflow bait
        ("arithmetic", None, "18", 0.0),  # no completion at all
        ("arithmetic", "", "18", 0.0),  # empty completion
    ],
)
def test_correctness_reward(task, completion, answer, expected):
    assert correctness_reward([completion], answer=[answer], task=[task]) == [expected]


def test_correctness_reward_mixed_rows_and_conversational():
    completions = [[{"role": "assistant", "content": text}] for text in (" The answer is 3.", "#### 3")]
    assert correctness_reward(completions, answer=["3", "4"], task=["arithmetic", "gsm8k"]) == [1.0, 0.0]


def test_correctness_reward_logs_extracted_answers():
    logged = {}
    completions = [" The answer is 7.", "junk"]
    correctness_reward(completions, answer=["7", "7"], task="arithmetic", log_extra=logged.__setitem__)
    assert logged == {"extracted_answer": ["7", None]}


def test_make_correctness_reward_fixes_the_family_and_a_column_wins():
    reward = make_correctness_reward(task="gsm8k")
    assert reward(["#### 5"], answer=["5"]) == [1.0]  # no task column: the fixed family reads `#### 5`
    assert reward(["#### 5"], answer=["5"], task=["expressions"]) == [0.0]  # the row's own family wins


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"task": ["arithmetic"]}, "'answer' column"),  # no answer column
        ({"answer": ["1"]}, "make_correctness_reward(task="),  # no task column and no fixed family
        ({"answer": ["1"], "task": ["arithmatic"]}, "valid tasks"),  # misspelled family
        ({"answer": ["1", "2"], "task": "arithmetic"}, "2 'answer' values for 1 completions"),  # short column
        ({"answer": ["1"], "task": [None]}, "has no 'task'"),  # a row without a family
    ],
)
def test_correctness_reward_refuses_a_broken_dataset(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        correctness_reward(["The answer is 1."], **kwargs)


@pytest.mark.parametrize(
    "task, completion, expected",
    [
        ("arithmetic", " The answer is 18.", 1.0),  # the plain target
        ("arithmetic", " The answer is 18 because 72/4 equals 18.", 1.0),  # the sentence may go on
        ("arithmetic", " Reversed: 81. The answer is 18.", 1.0),  # reversed-digit style
        ("arithmetic", " 18", 0.0),  # no cue
        ("arithmetic", " The answer is 18. The answer is 19.", 0.0),  # two answers
        ("arithmetic", " The answer is 1e309", 0.0),  # not an integer
        ("arithmetic", " The answer is 18.5", 0.0),  # not an integer
        ("expressions", EXPR_TARGET, 1.0),  # the target
        ("expressions", " <think> Error: dangling operator </think> Final Result: ERROR", 1.0),  # the error target
        ("expressions", " Final Result: 12", 0.0),  # no reasoning block
        ("expressions", " <think> 5 + 7 = 12 Final Result: 12", 0.0),  # unclosed block
        ("expressions", " <think> a <think> b </think> Final Result: 12", 0.0),  # nested blocks
        ("expressions", " <think> a </think> Final Result: 12 and more", 0.0),  # text after the result
        ("expressions", " <think> a </think> Final Result: --5", 0.0),  # a double sign
        ("gsm8k", " 48/2 = 24 clips.\n#### 72", 1.0),  # the target
        ("gsm8k", " #### $1,072.50", 1.0),  # money with separators
        ("gsm8k", " #### 72 because", 0.0),  # the answer must end the completion
        ("gsm8k", " #### 72\n#### 73", 0.0),  # two answers
        ("aqua", " 55 km.\nFinal Answer: B", 1.0),  # the target
        ("aqua", " Final Answer: (B).", 1.0),  # parenthesised letter
        ("aqua", " Final Answer: F", 0.0),  # not an option letter
        ("aqua", " the answer is B", 0.0),  # no cue
    ],
)
def test_format_reward(task, completion, expected):
    assert format_reward([completion], task=[task]) == [expected]
    assert format_reward([[{"role": "assistant", "content": completion}]], task=task) == [expected]  # chat form


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Step 1: 10 - 3 = 7 Expression now: 5 + 7", [(10, "-", 3, 7, True)]),  # the expressions family's step
        ("@@@@ 10 * 7 = 70 @@@@", [(10, "*", 7, 70, True)]),  # Math Mind's step markers
        ("48/2 = <<48/2=24>>24", [(48, "/", 2, 24, True)]),  # GSM8K calculator note
        ("7 / 2 = 3", [(7, "/", 2, 3, False)]),  # inexact division is wrong, not floored
        ("7 / 0 = 0", [(7, "/", 0, 0, False)]),  # division by zero is wrong
        ("5 - -3 = 8, 5-(-3)=8", [(5, "-", -3, 8, True), (5, "-", -3, 8, True)]),  # both ways to write a negative
        ("-4 * 3 = -12", [(-4, "*", 3, -12, True)]),  # negative left operand
        ("6 × 7 = 42", [(6, "*", 7, 42, True)]),  # unicode times
        ("2 + 3 * 4 = 14", []),  # a longer expression, not a binary step
        ("1.5 * 4 = 6", []),  # decimals are not scored
        ("2 * 3 = 6.5", []),  # a decimal result is not 6
        ("x-18=21, x=?", []),  # an equation with an unknown
        ("9" * 50 + " + 1 = 2", []),  # numbers past 30 digits are skipped
        ("17*10=170, 17*9=153", [(17, "*", 10, 170, True), (17, "*", 9, 153, True)]),  # the arithmetic scratchpad
    ],
)
def test_find_steps(text, expected):
    assert find_steps(text) == expected


@pytest.mark.parametrize(
    "steps, discount, expected",
    [
        ([], 0.9, 0.0),  # no steps: neutral
        ([(1, "+", 1, 2, True)], 0.9, 1.0),  # all right
        ([(1, "+", 1, 3, False)], 0.9, -1.0),  # all wrong
        ([(1, "+", 1, 2, True), (1, "+", 1, 2, True)], 1.0, 0.0),  # the repeat costs what the step earned
        ([(1, "+", 1, 3, False), (2, "+", 2, 4, True)], 0.5, (-1 + 0.5) / 1.5),  # an early slip costs more...
        ([(2, "+", 2, 4, True), (1, "+", 1, 3, False)], 0.5, (1 - 0.5) / 1.5),  # ...than a late one
    ],
)
def test_score_steps(steps, discount, expected):
    assert score_steps(steps, discount) == pytest.approx(expected)


def test_steps_reward_on_traces():
    completions = [EXPR_TARGET, EXPR_TARGET.replace("= 12", "= 13"), " The answer is 12."]
    rewards = make_steps_reward(discount=1.0)(completions)
    assert rewards == [1.0, 0.0, 0.0]  # all right; one of two wrong; no steps


@pytest.mark.parametrize(
    "completion, answer, expected",
    [
        (" so 55 km.\nFinal Answer: E", "E", 1.0),  # right letter
        (" Final Answer: b", "B", 1.0),  # lower case letter
        (" Final Answer: B", "E", 0.1),  # a well-formed wrong letter earns the format bonus
        (" the answer is C", "E", 0.1),  # the family's fallback cue is a valid letter too
        (" 55 km", "E", 0.0),  # no letter
        (" Final Answer: F", "E", 0.0),  # not an option
        (None, "E", 0.0),  # nothing
    ],
)
def test_choice_reward(completion, answer, expected):
    assert choice_reward([completion], answer=[answer]) == [expected]


def test_make_choice_reward_bonus():
    assert make_choice_reward(format_bonus=0.0)([" Final Answer: B"], answer=["E"]) == [0.0]


# -- the families' own targets are what the rewards ask for -----------------------------------------------------


def family_problems():
    import random

    from mathalign.tasks import get_task

    rng = random.Random(0)
    problems = []
    for style in ("plain", "explain", "reversed", "scratchpad"):
        arithmetic = get_task("arithmetic")
        spec = arithmetic.make_spec(answer_style=style)
        problems += [arithmetic.generate(rng, spec) for _ in range(40)]
    expressions = get_task("expressions")
    spec = expressions.make_spec(operators=["+", "-", "*", "/"], invalid_rate=0.3)
    problems += [expressions.generate(rng, spec) for _ in range(80)]
    gsm8k = {"question": "Natalia sold 48 clips ...?", "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72"}
    aqua = {"question": "A car covers ...?", "options": ["A)53 km", "B)55 km", "C)52 km", "D)60 km", "E)50 km"],
            "rationale": "Speed = 55 km.", "correct": "B"}
    problems += [get_task("gsm8k").from_row(gsm8k), get_task("aqua").from_row(aqua)]
    tasks = ["arithmetic"] * 160 + ["expressions"] * 80 + ["gsm8k", "aqua"]
    return problems, tasks


def test_family_targets_score_full_marks():
    problems, tasks = family_problems()
    targets, answers = [p.target for p in problems], [p.answer for p in problems]
    assert correctness_reward(targets, answer=answers, task=tasks) == [1.0] * len(targets)
    assert format_reward(targets, task=tasks) == [1.0] * len(targets)
    found = [find_steps(t) for t in targets]
    assert all(ok for steps in found for *_, ok in steps)  # the families' steps pass the family rule
    distinct = [t for t, steps in zip(targets, found) if len(set(steps)) == len(steps)]
    assert set(steps_reward(distinct)) == {0.0, 1.0}  # full marks, or neutral when a target writes no step
    assert sum(map(bool, found)) > 80  # scratchpads and expression traces do write steps
    # A legitimately repeated step (`(11 / 1) / (17 / 17)` reduces `11 / 1` twice; ~0.6% of traces with all four
    # operators) costs like spam does: the price of making a repeated correct step worthless.
    trace = " Step 1: 11 / 1 = 11 Step 2: 17 / 17 = 1 Step 3: 11 / 1 = 11"
    assert steps_reward([trace]) == [pytest.approx((1 + 0.9 - 0.81) / 2.71)]
    assert choice_reward(targets[-1:], answer=answers[-1:]) == [1.0]


# -- registry --------------------------------------------------------------------------------------------------


def test_registry_names_are_the_log_keys():
    assert set(REWARD_FUNCTIONS) == set(RANGES)
    for name, func in REWARD_FUNCTIONS.items():
        assert func.__name__ == name  # TRL logs rewards/<__name__>/mean


@pytest.mark.parametrize(
    "name, params",
    [
        ("correctness_reward", {"task": "gsm8k"}),  # fixed family
        ("format_reward", {"task": "aqua"}),  # fixed family
        ("steps_reward", {"discount": 0.5}),  # other discount
        ("choice_reward", {"format_bonus": 0.2}),  # other bonus
    ],
)
def test_factories_keep_name_and_pickle(name, params):
    from trl.trainer.utils import get_callable_name

    func = get_reward_function(name, **params)
    assert func.__name__ == name and get_callable_name(func) == name
    clone = pickle.loads(pickle.dumps(func))  # TRL's async rollout worker pickles reward functions
    assert clone(["x"], answer=["1"], task=["arithmetic"]) == func(["x"], answer=["1"], task=["arithmetic"])


@pytest.mark.parametrize(
    "name, params, message",
    [
        ("corectness_reward", {}, "did you mean 'correctness_reward'"),  # typo gets the closest name
        ("bleu", {}, "valid names: choice_reward, correctness_reward"),  # nothing close: the list
        ("steps_reward", {"gamma": 0.5}, r"parameter\(s\) \['gamma'\]; valid parameters: discount"),  # bad param
        ("steps_reward", {"discount": 0.0}, r"discount must be a number in \(0, 1\]"),  # out of range
        ("choice_reward", {"format_bonus": 1.5}, "format_bonus must be"),  # out of range
        ("correctness_reward", {"task": "algebra"}, "valid tasks"),  # unknown family, at build time
    ],
)
def test_get_reward_function_errors(name, params, message):
    with pytest.raises(ValueError, match=message):
        get_reward_function(name, **params)


@pytest.mark.parametrize(
    "names, weights, message",
    [
        ([], None, "no reward functions named"),  # nothing to train on
        (["format_reward", "format_reward"], None, "named twice"),  # the two would share a log key
        (["format_reward", "steps_reward"], [1.0], r"1 reward weight\(s\) \[1.0\] for 2 reward functions"),  # short
        (["format_reward"], [float("nan")], "finite number"),  # NaN weight
        (["format_reward"], ["high"], "finite number"),  # a string from YAML
        (["formatt_reward"], None, "did you mean 'format_reward'"),  # typo
    ],
)
def test_resolve_rewards_errors(names, weights, message):
    with pytest.raises(ValueError, match=message):
        resolve_rewards(names, weights)


def test_resolve_rewards():
    funcs, weights = resolve_rewards(["correctness_reward", "steps_reward"], [1, 0.5])
    assert funcs == [correctness_reward, steps_reward] and weights == [1.0, 0.5]
    assert resolve_rewards("format_reward") == ([format_reward], [1.0])  # one name, default weight


# -- garbage in, a bounded float out -----------------------------------------------------------------------------

ADVERSARIAL = [
    "9" * 10000,  # a wall of digits (int() refuses > 4300 digits)
    " The answer is 1e309",  # float overflow bait
    " The answer is " + "9" * 5000 + ".",  # a huge but well-formed answer
    " Final Result: --5",  # double sign
    " <think>" * 500 + " Final Result: 1",  # unbalanced tags
    "#### " * 1000,  # cues without numbers
    "1+1=2 " * 2000,  # the same step, over and over
    "(-" * 5000 + "1",  # nested signs
    "٣ + ٤ = ٧ Final Answer: Ⅻ",  # unicode digits and numerals
    "\x00\ud800\U0010ffff",  # NUL, lone surrogate, last code point
    "",  # empty
]
JUNK = st.recursive(
    st.none() | st.integers() | st.floats() | st.binary(max_size=8) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["role", "content", "text", "type"]), children, max_size=3),
    max_leaves=8,
)
STEPPY = st.lists(
    st.sampled_from(["1", "-", "+", "*", "/", "=", " ", "(", ")", "9" * 31, "<think>", "</think>", "Final Result:",
                     "####", "The answer is", "Final Answer:", "E", ".", "0", "\n"]),
    max_size=30,
).map("".join)
MESSAGE = st.fixed_dictionaries({"role": st.just("assistant"), "content": st.text(max_size=50) | JUNK})
MESSAGES = st.lists(MESSAGE, max_size=2)
COMPLETIONS = st.one_of(st.text(max_size=200), STEPPY, JUNK, MESSAGES)
GOLDS = st.sampled_from(["1", "-5", "ERROR", "E", "", "1e309"]) | st.text(max_size=10)


def assert_bounded(name, rewards, n):
    assert isinstance(rewards, list) and len(rewards) == n
    for reward in rewards:
        assert type(reward) is float and math.isfinite(reward)
        allowed = RANGES[name]
        assert reward in allowed if isinstance(allowed, set) else allowed[0] <= reward <= allowed[1]


def call(func, completions, answers, tasks):
    """Call `func` the way GRPOTrainer does: TRL's keyword arguments plus every dataset column."""
    n = len(completions)
    return func(prompts=["p"] * n, completions=completions, completion_ids=[[1]] * n, trainer_state=None,
                log_extra=None, log_metric=None, answer=answers, task=tasks, difficulty=[1] * n)


@pytest.mark.parametrize("name", sorted(REWARD_FUNCTIONS))
@pytest.mark.parametrize("completion", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_adversarial_completions_score_within_range(name, completion):
    rewards = call(REWARD_FUNCTIONS[name], [completion] * 4, ["8", "-5", "ERROR", "E"], FAMILIES)
    assert_bounded(name, rewards, 4)
    if name != "steps_reward":  # these may hold real (repeated) steps, scored below zero
        assert rewards in ([0.0] * 4, [0.0, 0.0, 0.0, 0.1])  # no answer here is right; aqua may see a letter


@pytest.mark.parametrize("name", sorted(REWARD_FUNCTIONS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_garbage_never_raises(name, data):
    n = data.draw(st.integers(1, 4))
    completions = data.draw(st.lists(COMPLETIONS, min_size=n, max_size=n))
    answers = data.draw(st.lists(GOLDS, min_size=n, max_size=n))
    tasks = data.draw(st.lists(st.sampled_from(FAMILIES), min_size=n, max_size=n))
    assert_bounded(name, call(REWARD_FUNCTIONS[name], completions, answers, tasks), n)


# -- the signature GRPOTrainer really uses ----------------------------------------------------------------------


def test_grpo_trainer_logs_every_reward(tiny_tokenizer, tmp_path):
    from trl import GRPOConfig, GRPOTrainer

    from conftest import make_tiny_model

    rows = [("3+4=?", "7"), ("9-2=?", "7"), ("2*5=?", "10"), ("x+1=3, x=?", "2")]
    dataset = Dataset.from_dict(
        {"prompt": [p for p, _ in rows], "answer": [a for _, a in rows], "task": ["arithmetic"] * len(rows)}
    )
    names = ["correctness_reward", "format_reward", "steps_reward"]
    funcs, weights = resolve_rewards(names, [1.0, 0.5, 0.1])
    args = GRPOConfig(
        output_dir=str(tmp_path), use_cpu=True, bf16=False, max_steps=1, per_device_train_batch_size=4,
        num_generations=4, max_completion_length=8, report_to="none", logging_steps=1, reward_weights=weights,
        activation_checkpointing=False,  # TRL defaults to gradient checkpointing, whose old name warns (an error here)
    )
    trainer = GRPOTrainer(model=make_tiny_model(tiny_tokenizer), reward_funcs=funcs, args=args,
                          train_dataset=dataset, processing_class=tiny_tokenizer)
    trainer.train()
    logs = trainer.state.log_history[0]
    for name in names:
        assert math.isfinite(logs[f"rewards/{name}/mean"])  # called with TRL's kwargs and logged under its name
    assert RANGES["steps_reward"][0] <= logs["rewards/steps_reward/mean"] <= RANGES["steps_reward"][1]


# -- bounded work on runaway completions --------------------------------------------------------------------------

M = 5_000_000
HUGE = [  # 5,000,000 characters each; reading all of one took seconds (1,000,000 characters: up to 2.1 s)
    "12 " * (M // 3),  # numbers: every one a match for the fallback extractors
    "1+1=2 " * (M // 6),  # steps
    "-1" * (M // 2),
    "#### 5 " * (M // 7),  # cues
    "1.1." * (M // 4),  # a number pattern that never stops matching
    " " * M,
]


@pytest.mark.parametrize("name", sorted(REWARD_FUNCTIONS))
def test_rewards_cost_bounded_work_on_huge_completions(name):
    for text in HUGE:
        start = time.perf_counter()
        rewards = call(REWARD_FUNCTIONS[name], [text] * 4, ["2", "5", "5", "E"], FAMILIES)
        elapsed = time.perf_counter() - start
        assert elapsed < 1.0, f"{name}: {elapsed:.2f} s for 4 completions of {len(text):,} characters ({text[:8]!r})"
        assert_bounded(name, rewards, 4)


def test_completions_are_read_up_to_max_scored_chars():
    """The documented bound: answers are read from the last MAX_SCORED_CHARS characters, steps from the first ones,
    and a longer completion has no format. Up to the bound, every score is the full read's."""
    cap = mathalign.rewards.MAX_SCORED_CHARS
    fits = "18" + " " * (cap - 2)  # exactly the bound, its last number first: read whole
    assert correctness_reward([fits, fits + " "], answer=["18", "18"], task="arithmetic") == [1.0, 0.0]  # "8"
    answer = " The answer is 18."
    fits = answer + " " * (cap - len(answer))
    assert format_reward([fits, fits + " "], task="arithmetic") == [1.0, 0.0]
    assert correctness_reward(["x" * 10 * cap + answer], answer=["18"], task="arithmetic") == [1.0]  # at the end
    late_slip = "1+1=2 " + " " * (cap - 11) + "1+1=3"  # the wrong step ends at character cap: read
    assert steps_reward([late_slip], discount=1.0) == [0.0]
    assert steps_reward([" " + late_slip], discount=1.0) == [1.0]  # one character later: not read
    assert choice_reward(["Final Answer: B" + " " * cap], answer=["B"]) == [0.0]
    assert choice_reward(["Final Answer: B" + " " * (cap - 15)], answer=["B"]) == [1.0]


def _regex_patterns(module) -> list[str]:
    """The literal patterns a module hands to `re` (re.compile, re.search, ...), read from its source."""
    import ast
    import inspect

    patterns = []
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        func = getattr(node, "func", None)
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "re" and node.args:
            patterns += [n.value for n in ast.walk(node.args[0])
                         if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    return patterns


def test_rewards_restate_no_family_cue():
    # the answer cues live in the families (Task.answer_cue / format_pattern); rewards ask them
    from mathalign.tasks import TASKS

    cues = [task.answer_cue for task in TASKS.values()] + ["evaluate"]
    patterns = " ".join(_regex_patterns(mathalign.rewards)).lower()
    assert not [cue for cue in cues if cue in patterns]
    assert not hasattr(mathalign.rewards, "FORMATS")


def test_find_steps_is_the_families_step_reader():
    # one step parser: rewards re-exports the expressions family's reader instead of keeping its own regex
    from mathalign.tasks import expressions

    assert find_steps is expressions.find_steps
    assert not _regex_patterns(mathalign.rewards)


def test_steps_reward_reads_thousands_separators():
    # a GSM8K-style trace writes 1,000: every step here is right, so none may be scored as a mistake
    completion = "2 * 500 = 1,000 dollars. Then 1,000 + 250 = 1,250. #### 1250"
    assert find_steps(completion) == [(2, "*", 500, 1000, True), (1000, "+", 250, 1250, True)]
    assert steps_reward([completion], discount=1.0) == [1.0]
