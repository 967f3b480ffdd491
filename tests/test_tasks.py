"""Problem families: generation is valid, checking is exact and never raises, specs refuse impossible requests."""

import collections
import json
import math
import random
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mathalign.tasks import TASKS, get_task
from mathalign.tasks import aqua, arithmetic, base, expressions, gsm8k
from mathalign.tasks.arithmetic import TYPES as ARITHMETIC_TYPES, ArithmeticSpec
from mathalign.tasks.expressions import ExpressionError, evaluate, parse, render, verify_steps

ARITHMETIC = get_task("arithmetic")
EXPRESSIONS = get_task("expressions")


# ---------------------------------------------------------------------------------------------------------------
# Registry


def test_registry_names_and_unknown_name():
    assert sorted(TASKS) == ["aqua", "arithmetic", "expressions", "gsm8k"]
    assert all(get_task(name).name == name for name in TASKS)
    with pytest.raises(ValueError, match="valid tasks: .*arithmetic"):
        get_task("algebra")


@pytest.mark.parametrize("name", ["gsm8k", "aqua"])
def test_dataset_families_do_not_generate(name):
    with pytest.raises(NotImplementedError, match="from_row"):
        get_task(name).generate(random.Random(0), None)


# ---------------------------------------------------------------------------------------------------------------
# Arithmetic


@pytest.mark.parametrize("style", arithmetic.ANSWER_STYLES)
def test_arithmetic_targets_check_against_their_answers(style):
    spec = ARITHMETIC.make_spec(answer_style=style, spacing_variants=0.5, max_digits=3)
    rng = random.Random(0)
    for type in arithmetic.TYPES:
        for _ in range(200):
            problem = ARITHMETIC.generate(rng, spec, type=type)
            assert problem.type == type
            assert ARITHMETIC.check(problem.target, problem.answer), problem
            assert f"The answer is {problem.answer}" in problem.target  # the sentence every style ends with
            assert all(verify_steps(problem.target))  # scratchpad steps (`47*30=1410, ...`) are right too
            assert 1 <= problem.difficulty <= 3
            # the canonical prompt is a fixed point, and it names the same problem
            canonical = ARITHMETIC.normalize_prompt(problem.prompt)
            assert ARITHMETIC.normalize_prompt(canonical) == canonical
            again = ARITHMETIC.from_prompt(problem.prompt)
            assert (again.key, again.answer) == (problem.key, problem.answer)


@pytest.mark.parametrize(
    "type, a, b, target",
    [
        ("a_times_b", 17, 19, " 17*9: 351, 17*10: 071, Reversed: 323. The answer is 323."),  # a product per digit
        ("a_times_b", 17, 9, " 17*9: 351, Reversed: 351. The answer is 153."),  # one digit: the same step
        ("a_times_b", 23, 40, " 23*0: 0, 23*40: 029, Reversed: 029. The answer is 920."),
        ("a_minus_b", 9, 82, " -(82-9), Reversed: -37. The answer is -73."),  # a negative difference
        ("a_minus_b", 82, 9, " Reversed: 37. The answer is 73."),
        ("a_plus_b", 78, 2, " Reversed: 08. The answer is 80."),  # the trailing zero comes first
        ("x_minus_b", 39, 18, " x=21+18, Reversed: 93. The answer is 39."),  # equations: the solving operation
        ("b_over_x", 2924, 86, " x=2924/34, 1462/17, Reversed: 68. The answer is 86."),  # an even divisor halves
        ("a_over_b", 2016, 48, " 1008/24, 504/12, 252/6, 126/3, Reversed: 24. The answer is 42."),  # until odd
        ("x_times_b", 33, 80, " x=2640/80, 264/8, 132/4, 66/2, 33/1, Reversed: 33. The answer is 33."),  # zero dropped
        ("b_over_x", 4615, 71, " x=4615/65, 923/13, Reversed: 17. The answer is 71."),  # 5: doubled, zero dropped
        ("x_times_b", 15, 5, " x=75/5, 15/1, Reversed: 51. The answer is 15."),
        ("a_over_b", 91, 7, " Reversed: 31. The answer is 13."),  # a divisor ending in 1, 3, 7 or 9: no rewrite
        ("a_over_b", 0, 4, " 0/2, 0/1, Reversed: 0. The answer is 0."),
    ],
)
def test_worked_style_writes_each_step(type, a, b, target):
    spec = ARITHMETIC.make_spec(answer_style="worked", spacing_variants=0.0)
    problem = ARITHMETIC.make_problem(type, a, b, spec)
    assert problem.target == target
    assert ARITHMETIC.extract_answer(problem.target) == problem.answer


def test_worked_division_rewrites_keep_the_quotient_and_end_on_a_divisor_coprime_to_10():
    spec = ARITHMETIC.make_spec(answer_style="worked", spacing_variants=0.0)
    for divisor in range(1, 100):
        for quotient in (0, 1, 7, 42, 99):
            target = ARITHMETIC.make_problem("a_over_b", divisor * quotient, divisor, spec).target
            steps = re.findall(r"(\d+)/(\d+), ", target)
            for dividend, last in ((int(n), int(d)) for n, d in steps):
                assert dividend == quotient * last  # every rewrite is the same division
            last = int(steps[-1][1]) if steps else divisor
            assert math.gcd(last, 10) == 1, target
            assert len(steps) <= 6  # 64 = 2**6 is the longest chain with 2-digit divisors


def test_arithmetic_mix_draws_every_type_and_respects_weights():
    rng = random.Random(1)
    counts = collections.Counter(ARITHMETIC.generate(rng, ARITHMETIC.make_spec()).type for _ in range(3000))
    assert set(counts) == set(arithmetic.TYPES)  # sampled evenly: every type appears
    weighted = ARITHMETIC.make_spec(types=["a_plus_b=3", "a_minus_b=1"])
    counts = collections.Counter(ARITHMETIC.generate(rng, weighted).type for _ in range(2000))
    assert set(counts) == {"a_plus_b", "a_minus_b"} and counts["a_plus_b"] > 2 * counts["a_minus_b"]


@pytest.mark.parametrize("allow_negative", [True, False])
def test_arithmetic_num_distinct_is_exact(allow_negative):
    # 1-digit operands: few enough problems that drawing many times finds every one of them
    spec = ARITHMETIC.make_spec(min_digits=1, max_digits=1, allow_negative=allow_negative)
    rng = random.Random(2)
    for type in arithmetic.TYPES:
        keys = {ARITHMETIC.generate(rng, spec, type=type).key for _ in range(3000)}
        assert len(keys) == ARITHMETIC.num_distinct(spec, type), type


def test_arithmetic_negative_answers_only_when_allowed():
    spec = ARITHMETIC.make_spec(allow_negative=False, types=["a_minus_b", "x_minus_b", "b_minus_x"])
    rng = random.Random(3)
    for _ in range(500):
        problem = ARITHMETIC.generate(rng, spec)
        assert "=-" not in problem.prompt and not problem.answer.startswith("-")


def test_arithmetic_ood_spec_has_longer_operands():
    spec = ARITHMETIC.make_spec(max_digits=2).ood()
    rng = random.Random(4)
    assert all(ARITHMETIC.generate(rng, spec).difficulty == 3 for _ in range(200))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("72-x=34, x=?", "72-x=34, x=?"),  # canonical stays
        ("72-x=34,x=?", "72-x=34, x=?"),  # the seed's failure case: no space after the comma
        (" 72 - x = 34 , x = ? ", "72-x=34, x=?"),  # spaces everywhere
        ("72-x=34 x=?", "72-x=34, x=?"),  # no comma at all
        ("72-x=34, x", "72-x=34, x=?"),  # unfinished question
        ("72/4", "72/4=?"),  # a bare operation
        ("72 ÷ 4 =", "72/4=?"),  # unicode operator, no question mark
        ("17 × 19 = ?", "17*19=?"),  # unicode times
    ],
)
def test_arithmetic_normalize_prompt(text, expected):
    assert ARITHMETIC.normalize_prompt(text) == expected


@pytest.mark.parametrize(
    "text, answer, extracted, correct",
    [
        (" The answer is 18.", "18", "18", True),  # plain
        (" The answer is 18 because 72/4 equals 18.", "18", "18", True),  # explain
        (" Reversed: 81. The answer is 18.", "18", "18", True),  # reversed digits come first
        (" x=21+18. The answer is 39.", "39", "39", True),  # scratchpad
        (" The answer is -3.", "-3", "-3", True),  # negative
        (" The answer is 17. The answer is 19.", "19", "19", True),  # the last statement wins
        (" The answer is 19.", "18", "19", False),  # wrong
        (" I think 4-3 gives 1", "1", "1", True),  # no sentence: last integer, a binary minus is no sign
        (" The answer is 018.", "18", "18", True),  # leading zero
        (" Sorry, I do not know!", "18", None, False),  # refusal: no number
        ("", "18", None, False),  # empty
        (" The answer is " + "9" * 5000, "18", None, False),  # absurd digit run
    ],
)
def test_arithmetic_extract_and_check(text, answer, extracted, correct):
    assert ARITHMETIC.extract_answer(text) == extracted
    assert ARITHMETIC.check(text, answer) is correct


# ---------------------------------------------------------------------------------------------------------------
# Expressions


@pytest.mark.parametrize(
    "text, value",
    [
        ("5 + (10 - 3)", 12),  # the seed's example
        ("5+(10-3)", 12),  # no spaces
        ("2 + 3 * 4", 14),  # precedence
        ("(2 + 3) * 4", 20),  # parentheses
        ("10 - 3 - 2", 5),  # left associative
        ("10 - (3 - 2)", 9),  # right grouping kept
        ("12 / 4 / 3", 1),  # exact division, left to right
        ("5 - -3", 8),  # negative literal
        ("-(2 + 3) * 4", -20),  # negated group
    ],
)
def test_parser_values(text, value):
    assert evaluate(text) == value


@pytest.mark.parametrize(
    "text, kind",
    [
        ("5 / (3 - 3)", "division_by_zero"),  # zero only after a step
        ("7 / 0", "division_by_zero"),  # literal zero
        ("7 / 2", "inexact_division"),  # integers only
        ("5 + (10 - 3", "unbalanced_parens"),  # missing )
        ("5 + 10) - 3", "unbalanced_parens"),  # stray )
        (")(", "unbalanced_parens"),  # balanced count, wrong order
        ("5 +", "dangling_operator"),  # operator at the end
        ("* 5 + 3", "dangling_operator"),  # operator at the start
        ("5 + * 3", "dangling_operator"),  # doubled operator
        ("5 + x", "syntax"),  # not an expression
        ("", "syntax"),  # nothing at all
        ("999999 * 999999", "overflow"),  # beyond max_abs_value
        ("1" * 40, "overflow"),  # absurd literal
    ],
)
def test_parser_errors(text, kind):
    with pytest.raises(ExpressionError) as err:
        evaluate(text)
    assert err.value.kind == kind


def test_render_parse_round_trip_keeps_the_tree():
    spec = EXPRESSIONS.make_spec(operators=("+", "-", "*", "/"), num_range=(-5, 20), max_depth=4)
    rng = random.Random(5)
    for _ in range(500):
        tree = EXPRESSIONS.random_tree(rng, spec)
        assert parse(render(tree)) == tree


def test_step_by_step_target_matches_the_seed_format():
    problem = EXPRESSIONS.from_expression("5 + (10 - 3)")
    assert problem.prompt == "Evaluate: 5 + (10 - 3)"
    assert problem.target == (" <think> Step 1: 10 - 3 = 7 Expression now: 5 + 7 Step 2: 5 + 7 = 12 "
                              "Expression now: 12 </think> Final Result: 12")
    assert (problem.answer, problem.type, problem.difficulty) == ("12", "well_formed", 2)


@pytest.mark.parametrize("operators", [("+", "-"), ("+", "-", "*", "/")])
def test_expression_targets_check_and_every_type_appears(operators):
    spec = EXPRESSIONS.make_spec(operators=operators, invalid_rate=0.3)
    rng = random.Random(6)
    types = collections.Counter()
    for _ in range(1500):
        problem = EXPRESSIONS.generate(rng, spec)
        types[problem.type] += 1
        assert EXPRESSIONS.check(problem.target, problem.answer), problem
        assert all(verify_steps(problem.target)), problem  # every written step is right
        assert EXPRESSIONS.normalize_prompt(problem.prompt) == problem.prompt
        assert (problem.answer == "ERROR") == (problem.type != "well_formed")
        if problem.type == "well_formed":
            assert problem.difficulty == len(verify_steps(problem.target))  # difficulty = operations
            assert expressions.depth(problem.meta["tree"]) <= spec.max_depth
    assert set(types) == {"well_formed", *spec.kinds}


@pytest.mark.parametrize(
    "text, expected",
    [
        (" <think> Step 1: 10 - 3 = 7 Expression now: 5 + 7 Step 2: 5 + 7 = 13", [True, False]),  # one slip
        ("Step 1: 3 - -2 = 5", [True]),  # negative operand
        ("@@@@ 10 * 7 = 70 @@@@ <<48/2=24>>", [True, True]),  # other seeds' step styles
        ("2 + 3 + 4 = 9", []),  # a chain is not a binary step (`3 + 4 = 9` follows an operator): skipped
        ("Step 1: 4 / 0 = 0", [False]),  # division by zero has no value
        ("no steps here", []),  # nothing to check
    ],
)
def test_verify_steps(text, expected):
    assert verify_steps(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Step 1:   10   -\t3  =  7", [True]),  # any spacing
        ("Step 1: 10 - 3\n= 7\nStep 2:\n7 * 2 = 14", [True, True]),  # a step split over lines
        ("-7 - 1 = -8, (-7) * 2 = -14", [True, True]),  # negative operands and results, bare or in parentheses
        ("first 6*7=42 then 42-2=40.", [True, True]),  # no `Step N:` prefix
        ("998 + 7 = 1,005", [True]),  # thousands separators: the result is 1005, not 1 (read as wrong before)
        ("1,000 + 2,000 = 3,000, so 2 * 500 = 1,000", [True, True]),  # in operands too, and before a comma
        ("1,000 + 2 = 1,003", [False]),  # a wrong sum with separators is still wrong
        ("1,5 + 2 = 3", []),  # a comma not followed by three digits is not a separator: `5 + 2` is not a step
        ("7 / 2 = 3.5, 1.5 + 2 = 3.5", []),  # decimals are not integer steps: skipped (read as wrong before)
        ("x3 + 4 = 7", []),  # a number inside a word is not an operand
        ("= + 1 = 2 - = 3 * * ", []),  # garbage: nothing, no error
    ],
)
def test_verify_steps_edge_cases(text, expected):
    assert verify_steps(text) == expected


@pytest.mark.parametrize(
    "text, answer, correct",
    [
        (" <think> Step 1: 2 + 3 = 5 Expression now: 5 </think> Final Result: 5", "5", True),  # right
        (" <think> </think> Final Result: 6", "5", False),  # wrong
        (" <think> Error: dangling operator </think> Final Result: ERROR", "ERROR", True),  # error recognised
        (" Final Result: error", "ERROR", True),  # case-insensitive ERROR
        (" Final Result: 5", "ERROR", False),  # missed the error
        (" the result is 5", "5", False),  # no Final Result: no answer
        ("", "5", False),  # empty
    ],
)
def test_expressions_check(text, answer, correct):
    assert EXPRESSIONS.check(text, answer) is correct


@pytest.mark.parametrize(
    "text, expected",
    [
        ("5+(10 -3)", "Evaluate: 5 + (10 - 3)"),  # bare expression gets the prompt prefix
        ("evaluate:5--3", "Evaluate: 5 - -3"),  # prefix in any case, sign kept on the number
        ("Evaluate:  ( 2+3 )*4", "Evaluate: (2 + 3) * 4"),  # parentheses hug
        ("What is 2+2?", "What is 2+2?"),  # not an expression: only whitespace collapses
    ],
)
def test_expressions_normalize_prompt(text, expected):
    assert EXPRESSIONS.normalize_prompt(text) == expected


# ---------------------------------------------------------------------------------------------------------------
# GSM8K and AQuA adapters

GSM8K_ROW = {
    "question": "Natalia sold clips to 48 of her friends in April, and then half as many in May. How many in total?",
    "answer": "In May she sold 48/2 = <<48/2=24>>24 clips.\nIn total 48+24 = <<48+24=72>>72 clips.\n#### 72",
}
AQUA_ROW = {
    "question": "A car covers 50 km in one hour. How far does it go in one hour?",
    "options": ["A)53 km", "B)55 km", "C)52 km", "D)60 km", "E)50 km"],
    "rationale": "Distance = speed x time = 50 km.",
    "correct": "E",
}


def test_gsm8k_from_row():
    problem = get_task("gsm8k").from_row(GSM8K_ROW)
    assert problem.answer == "72" and problem.difficulty == 2
    assert "<<" not in problem.target and problem.target.endswith("#### 72")  # calculator notes removed
    assert problem.prompt.startswith("Question: Natalia") and "####" in problem.prompt
    assert get_task("gsm8k").check(problem.target, problem.answer)
    with pytest.raises(ValueError, match="####"):
        get_task("gsm8k").from_row({"question": "q", "answer": "no final answer"})


@pytest.mark.parametrize(
    "text, expected",
    [
        ("so 72 clips.\n#### 72", "72"),  # the GSM8K way
        ("#### 1,072", "1072"),  # thousands separator
        ("#### $18.00", "18"),  # dollars and cents
        ("#### -5", "-5"),  # negative
        ("I get 3 then 4", "4"),  # fallback: last number
        ("#### 12\n#### 13", "13"),  # the last marker wins
        ("no numbers", None),  # nothing
        ("", None),  # empty
    ],
)
def test_gsm8k_extract_answer(text, expected):
    assert get_task("gsm8k").extract_answer(text) == expected


def test_aqua_from_row():
    problem = get_task("aqua").from_row(AQUA_ROW)
    assert problem.answer == "E" and "A) 53 km" in problem.prompt and "Final Answer" in problem.prompt
    assert get_task("aqua").check(problem.target, "E")
    with pytest.raises(ValueError, match="not one of its options"):
        get_task("aqua").from_row({**AQUA_ROW, "correct": "F"})


@pytest.mark.parametrize(
    "text, expected",
    [
        ("... so 50 km.\nFinal Answer: E", "E"),  # the requested format
        ("Final Answer: (c)", "C"),  # parentheses, lower case
        ("Final answer: B then Final Answer: D", "D"),  # the last one wins
        ("The answer is A", "A"),  # fallback phrase
        ("Final Answer: F", None),  # not an option letter
        ("", None),  # empty
    ],
)
def test_aqua_extract_answer(text, expected):
    assert get_task("aqua").extract_answer(text) == expected


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet"])
def test_load_rows_from_local_files(tmp_path, suffix):
    rows = [GSM8K_ROW, {**GSM8K_ROW, "question": "Another one?"}]
    path = tmp_path / f"test{suffix}"
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif suffix == ".json":
        path.write_text(json.dumps(rows))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    assert gsm8k.load_rows(path, "test") == rows  # a file is read whatever the split
    assert gsm8k.load_rows(tmp_path, "test") == rows  # a folder is searched for <split>.*


def test_load_rows_errors_name_the_file_and_what_is_missing(tmp_path):
    bad = tmp_path / "train.jsonl"
    bad.write_text(json.dumps({"question": "q"}) + "\n")
    with pytest.raises(ValueError, match=r"train.jsonl.*row 0 has no \['answer'\]"):
        gsm8k.load_rows(bad, "train")
    bad.write_text("{not json\n")
    with pytest.raises(ValueError, match="train.jsonl: line 1 is not JSON"):
        gsm8k.load_rows(bad, "train")
    with pytest.raises(ValueError, match="no file for split 'test'"):
        aqua.load_rows(tmp_path, "test")
    with pytest.raises(FileNotFoundError):
        aqua.load_rows(tmp_path / "missing.jsonl", "test")


# ---------------------------------------------------------------------------------------------------------------
# Never raising, whatever the text


@settings(max_examples=150, deadline=None)
@given(text=st.text(alphabet=st.characters(codec="utf-8"), max_size=120)
       | st.text(alphabet="0123456789+-*/()=?, x.The answrisFnlRu:#<>", max_size=120))
def test_verifiers_never_raise(text):
    for task in TASKS.values():
        found = task.extract_answer(text)
        assert found is None or isinstance(found, str)
        assert task.check(text, "18") in (True, False)
        assert isinstance(task.normalize_prompt(text), str)
    assert all(isinstance(ok, bool) for ok in verify_steps(text))


# ---------------------------------------------------------------------------------------------------------------
# Specs: impossible requests fail with the parameter's name


@pytest.mark.parametrize(
    "family, options, message",
    [
        ("arithmetic", {"min_digits": 0}, "min_digits"),  # no 0-digit numbers
        ("arithmetic", {"min_digits": 3, "max_digits": 2}, "operand range is empty"),  # empty range
        ("arithmetic", {"types": ["a_plus_b", "a_mod_b"]}, "unknown arithmetic types"),  # unknown type
        ("arithmetic", {"types": {"a_plus_b": 0}}, "positive weight"),  # nothing to draw
        ("arithmetic", {"answer_style": "verbose"}, "answer_style"),  # unknown style
        ("arithmetic", {"spacing_variants": 1.5}, "spacing_variants"),  # not a probability
        ("arithmetic", {"max_depth": 3}, "unknown arithmetic option"),  # another family's option
        ("expressions", {"max_depth": 0}, "max_depth"),  # no operation at all
        ("expressions", {"num_range": (20, 1)}, "num_range"),  # empty range
        ("expressions", {"num_operands": (0, 3)}, "num_operands"),  # no number at all is no problem
        ("expressions", {"surface_variants": 1.5}, "surface_variants"),  # not a probability
        ("arithmetic", {"surface_variants": -0.1}, "surface_variants"),
        ("arithmetic", {"leading_zeros": -1}, r"leading_zeros must be an integer in \[0, 18\]"),
        ("expressions", {"num_operands": (9, 10), "max_depth": 3}, "cannot fit in max_depth"),  # too deep to fit
        ("expressions", {"operators": ("+", "%")}, "operators"),  # unknown operator
        ("expressions", {"operators": ("/",)}, "besides /"),  # division alone cannot always be exact
        ("expressions", {"invalid_rate": -0.1}, "invalid_rate"),  # not a probability
        ("expressions", {"invalid_kinds": ("typo",)}, "invalid_kinds"),  # unknown kind
        ("arithmetic", {"types": {"a_plus_b": math.inf}}, "finite weights"),
        ("arithmetic", {"types": ["a_plus_b"], "train_types": {"a_times_b": 2}}, "does not draw"),
        ("arithmetic", {"types": ["a_plus_b"], "train_types": {"a_plus_b": 0}}, "at least one type"),
        ("arithmetic", {"train_types": {"a_plus_b": -1}}, "finite weights >= 0"),
        ("arithmetic", {"train_types": ["a_plus_b"]}, "a weight per type"),
        ("arithmetic", {"max_digits": 19}, r"max_digits must be an integer in \[1, 18\]"),
        ("expressions", {"max_depth": 65}, r"max_depth must be an integer in \[1, 64\]"),  # 2**10**9 hung
        ("expressions", {"num_operands": (2, 65)}, "at most 64 numbers"),  # quadratic completions, slow counts
        ("expressions", {"max_abs_value": 10**19}, r"at most 10\*\*18"),  # answers longer than a verifier reads
    ],
)
def test_spec_validation(family, options, message):
    with pytest.raises(ValueError, match=message):
        get_task(family).make_spec(**options)


def test_ood_specs_stop_at_the_largest_spec():
    assert ArithmeticSpec(max_digits=17).ood().max_digits == 18
    with pytest.raises(ValueError, match=r"max_digits \+ 1 = 19 digits, more than the 18 allowed: with "
                                         r"max_digits=18 pass num_test_ood=0 \(--num-test-ood 0\)"):
        ArithmeticSpec(max_digits=18).ood()
    assert EXPRESSIONS.make_spec(max_depth=63, num_operands=(2, 62)).ood().num_operands == (63, 64)
    for options in ({"max_depth": 64}, {"max_depth": 63, "num_operands": (2, 63)}):
        with pytest.raises(ValueError, match="pass num_test_ood=0"):
            EXPRESSIONS.make_spec(**options).ood()


@pytest.mark.parametrize("allow_negative", [False, True])
@pytest.mark.parametrize("type", ARITHMETIC_TYPES)
def test_arithmetic_counts_its_problems_per_operand_shape(type, allow_negative):
    """The per-shape counts held-out splits are capped by. 100,000 digit-balanced draws find every problem of the
    two smaller shapes (1x1, 1x2 digits); the 2x2 shape holds the rest of the exact total."""
    task, spec = get_task("arithmetic"), ArithmeticSpec(max_digits=2, allow_negative=allow_negative)
    rng, found = random.Random(0), collections.defaultdict(set)
    for _ in range(100_000):
        key, _make = task.draw(rng, spec, type)
        found[task.stratum_of_key(key)].add(key)
    counts = task.num_distinct_per_stratum(spec, type)
    assert set(counts) == set(found) == {(1, 1), (1, 2), (2, 2)}
    assert counts[(1, 1)] == len(found[(1, 1)]) and counts[(1, 2)] == len(found[(1, 2)])
    assert counts[(2, 2)] >= len(found[(2, 2)]) and sum(counts.values()) == task.num_distinct(spec, type)
    assert task.stratum_of_key("a_times_b:7,12") == (1, 2) and task.stratum_of_key("a_over_b:72,4") == (1, 2)
    assert task.stratum_of_key("not a key") is None


# ---------------------------------------------------------------------------------------------------------------
# Cost: huge or hostile texts are read in (close to) linear time, with the same results


def _reference_last(pattern, text, accept=lambda m: True):
    """What the extractors returned when they listed every match: the last accepted one."""
    matches = [m for m in pattern.finditer(text) if accept(m)]
    return matches[-1] if matches else None


def _reference_extract(family: str, text: str):
    canonical = base.canonical_number
    readable = lambda m: canonical(m.group()) is not None  # noqa: E731

    def last_of(pattern):
        match = _reference_last(pattern, text, readable)
        return canonical(match.group()) if match else None

    if family == "arithmetic":
        match = _reference_last(arithmetic._ANSWER, text)
        if match:
            inner = _reference_last(base._INT, match.group(1), readable)
            return canonical(inner.group()) if inner else None
        return last_of(base._INT)
    if family == "gsm8k":
        match = _reference_last(gsm8k._FINAL, text, lambda m: canonical(m.group(1).replace(" ", "")) is not None)
        return canonical(match.group(1).replace(" ", "")) if match else last_of(base._NUMBER)
    if family == "aqua":
        match = _reference_last(aqua._FINAL, text) or _reference_last(aqua._FALLBACK, text)
        return match.group(1).upper() if match else None
    match = _reference_last(expressions._FINAL, text)
    if match is None:
        return None
    return "ERROR" if match.group(1).upper() == "ERROR" else canonical(match.group(1))


PIECES = ["1", "7", "0", "12", "-", "$", ",", ".", " ", "\n", "x", ")", "(", ":", "#", "####", "=", "+", "*",
          "The answer is ", "the answer is", "Final Result:", "final result: ", "ERROR", "Final Answer: ",
          "answer is ", "A", "b", "E", "٣", "ſ", "1" * 45, " " * 300, "9" * 300, "-1" * 150, "x" * 300]


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(st.sampled_from(PIECES), max_size=60))
def test_answers_found_from_the_end_are_the_last_ones(pieces):
    """The extractors search from the end in windows (256 characters first): same answer as listing every match,
    including when the answer sits before a window boundary or an unreadable (> 40-digit) number."""
    text = "".join(pieces)
    for family in ("arithmetic", "gsm8k", "aqua", "expressions"):
        assert get_task(family).extract_answer(text) == _reference_extract(family, text), family
    assert base.last_integer(text) == (lambda m: m and base.canonical_number(m.group()))(
        _reference_last(base._INT, text, lambda m: base.canonical_number(m.group()) is not None))


N = 1_000_000
HUGE = [  # (family, text, answer): a runaway completion, its answer at the very end
    ("arithmetic", "12 " * (N // 3), "12"),  # no cue: the last integer (listing them took 1.1 s)
    ("arithmetic", "-1" * (N // 2), "1"),  # 1.8 s
    ("arithmetic", "1+1=2 " * (N // 6) + " The answer is 18.", "18"),
    ("gsm8k", "12 " * (N // 3) + "so 18", "18"),  # no cue: the last number (1.2 s)
    ("gsm8k", "$1 " * (N // 3) + "#### 1,018", "1018"),
    ("gsm8k", "1+1=2 " * (N // 6), "2"),  # 2.1 s
    ("expressions", " Final Result: 3" * (N // 16) + " Final Result: 18", "18"),
    ("aqua", "answer is A " * (N // 12) + "Final Answer: B", "B"),
]


@pytest.mark.parametrize("family, text, answer", HUGE, ids=range(len(HUGE)))
def test_an_answer_at_the_end_of_a_huge_text_is_found_fast(family, text, answer):
    start = time.perf_counter()
    found = get_task(family).extract_answer(text)
    elapsed = time.perf_counter() - start
    assert found == answer
    assert elapsed < 0.2, f"{elapsed:.2f} s"  # listing every match took 1-2 s on a 1,000,000-character text


HOSTILE_STEPS = [
    "1" * 50_000,  # a wall of digits: 46 s when a match could start inside it
    "1+" + "2" * 50_000,  # a long right operand
    ("1 + 1 = 2" + " " * 5) * 3_500,  # many steps, with the text before each one looked at
    "1+1=" * 12_500,  # chains
    "-" * 25_000 + "1" * 25_000,
]


@pytest.mark.parametrize("text", HOSTILE_STEPS, ids=range(len(HOSTILE_STEPS)))
def test_verify_steps_is_fast_on_hostile_input(text):
    start = time.perf_counter()
    results = verify_steps(text)
    elapsed = time.perf_counter() - start
    assert elapsed < 0.2, f"{elapsed:.2f} s on {len(text)} characters"
    assert results == ([True] * 3_500 if text.startswith("1 + 1") else [False] * 6_250 if text.startswith("1+1=")
                       else [])


# ---------------------------------------------------------------------------------------------------------------
# The family's surface, which rewards and chat ask instead of restating it.

ANSWER_FORMATS = [
    ("arithmetic", " The answer is 18.", True),  # the plain target
    ("arithmetic", " The answer is 18 because 72/4 equals 18.", True),  # the sentence may go on
    ("arithmetic", " The answer is 18. The answer is 19.", False),  # two answers are no answer
    ("arithmetic", " The answer is 18x.", False),  # the number may not go on
    ("arithmetic", " 18", False),  # no cue
    ("expressions", " <think> Step 1: 2 + 3 = 5 </think> Final Result: 5", True),  # think block, then the result
    ("expressions", " <think> </think> Final Result: ERROR", True),  # ERROR is an answer
    ("expressions", " Final Result: 5", False),  # no think block
    ("expressions", " <think> </think> Final Result: 5 and more", False),  # the result must come last
    ("gsm8k", "she sold 72 clips.\n#### 1,072", True),  # `#### N` last, commas grouped
    ("gsm8k", "#### 72\nso 72", False),  # not the last thing written
    ("gsm8k", "#### 7 #### 7", False),  # the cue twice
    ("aqua", "so 55 km.\nFinal Answer: (E).", True),  # parentheses and a full stop allowed
    ("aqua", "Final Answer: F", False),  # not one of the five letters
]


@pytest.mark.parametrize("family, text, expected", ANSWER_FORMATS, ids=range(len(ANSWER_FORMATS)))
def test_has_answer_format(family, text, expected):
    assert get_task(family).has_answer_format(text) is expected


@pytest.mark.parametrize("family", sorted(TASKS))
def test_every_family_states_its_answer_cue_and_never_raises_on_junk(family):
    task = get_task(family)
    assert task.answer_cue and task.answer_cue == task.answer_cue.lower()  # counted in lower-cased text
    assert task.format_pattern.search("") is None
    assert task.has_answer_format(None) is False  # junk is no format, not an exception


READ_PROMPTS = [
    ("arithmetic", "x - 18 = 21, x = ?", "x-18=21, x=?"),  # an equation, any spacing
    ("arithmetic", "72 ÷ 4 =", "72/4=?"),  # unicode operators, a missing `?`
    ("arithmetic", "99*64", "99*64=?"),  # a bare expression that is one of the nine types
    ("arithmetic", "1+2+3", None),  # a bare expression that is none of them
    ("arithmetic", "Evaluate: 72/4", None),  # the expressions family's prompt
    ("arithmetic", "hello = ?", None),  # words
    ("arithmetic", "=?", None),  # no number
    ("expressions", "5+(10 -3)", "Evaluate: 5 + (10 - 3)"),  # a bare expression
    ("expressions", "evaluate:5 − 3", "Evaluate: 5 - 3"),  # the prefix in any case, a unicode minus
    ("expressions", "Evaluate: (5 +", "Evaluate: (5 +"),  # malformed but readable: its answer is ERROR
    ("expressions", "x-18=21, x=?", None),  # an arithmetic question
    ("expressions", "Evaluate: ", None),  # nothing to evaluate
    ("expressions", "( + )", None),  # no number
    ("gsm8k", "72/4", None),  # dataset families do not read typed problems
    ("aqua", "72/4", None),  # likewise
]


@pytest.mark.parametrize("family, text, expected", READ_PROMPTS, ids=range(len(READ_PROMPTS)))
def test_read_prompt(family, text, expected):
    assert get_task(family).read_prompt(text) == expected


AS_PROMPTS = [
    ("expressions", "5+3", "Evaluate: 5 + 3"),  # the prefix is added
    ("expressions", "Evaluate: 5+3", "Evaluate: 5 + 3"),  # and not doubled
    ("arithmetic", "72 / 4", "72/4=?"),  # the family's normalisation
    ("gsm8k", "How  many?", "How many?"),  # the default: whitespace collapsed
]


@pytest.mark.parametrize("family, text, expected", AS_PROMPTS, ids=range(len(AS_PROMPTS)))
def test_as_prompt(family, text, expected):
    assert get_task(family).as_prompt(text) == expected


PROBLEMS_OF = [
    ("arithmetic", "x-18=21, x=?", "39"),  # one of the nine types
    ("arithmetic", "1+2+3=?", None),  # none of them
    ("expressions", "Evaluate: 5 + (10 - 3)", "12"),  # solved by the family
    ("expressions", "evaluate: 5 / (3 - 3)", "ERROR"),  # malformed problems have an answer too
    ("gsm8k", "Question: how many?", None),  # a dataset family cannot solve its prompts
]


@pytest.mark.parametrize("family, prompt, answer", PROBLEMS_OF, ids=range(len(PROBLEMS_OF)))
def test_problem_of(family, prompt, answer):
    problem = get_task(family).problem_of(prompt)
    assert (problem and problem.answer) == answer


STEP_LINES = [
    (" <think> Step 1: 10 - 3 = 7 Expression now: 5 + 7\n Step 2: 5 + 7 = 12 </think> Final Result: 12",
     ["Step 1: 10 - 3 = 7 Expression now: 5 + 7", "Step 2: 5 + 7 = 12"]),  # one line per step, spacing collapsed
    (" <think> Step 1: 1 + 1 = 2", ["Step 1: 1 + 1 = 2"]),  # an unfinished think block still has its steps
    (" Step 1: 1 + 1 = 2 </think>", []),  # steps outside a think block are not reasoning
    (" The answer is 18.", []),  # no reasoning
]


@pytest.mark.parametrize("text, expected", STEP_LINES, ids=range(len(STEP_LINES)))
def test_expressions_steps(text, expected):
    assert get_task("expressions").steps(text) == expected
    assert get_task("arithmetic").steps(text) == []  # a family without step lines has none


# ---------------------------------------------------------------------------------------------------------------
# One step parser: `verify_steps`, `find_steps` (the steps reward) and the expressions family's `steps` (chat) all
# read through mathalign.tasks.steps.

SHARED_STEPS = [
    # a trace of the expressions family
    (" <think> Step 1: 10 - 3 = 7 Expression now: 5 + 7 Step 2: 5 + 7 = 13", [(10, "-", 3, 7), (5, "+", 7, 13)]),
    ("5-(-3)=8", [(5, "-", -3, 8)]),  # a parenthesised negative operand
    ("6 × 7 = 42, 8 ÷ 2 = 4", [(6, "*", 7, 42), (8, "/", 2, 4)]),  # unicode operators read as * and /
    ("x3+4=7", []),  # a number inside a word is not a step
    ("1.5 + 2 = 3.5", []),  # decimals are not integer arithmetic
    ("2 + 3 + 4 = 9", []),  # a chain is not a binary step
    ("9" * 31 + " + 1 = 2", []),  # numbers past MAX_STEP_DIGITS digits are skipped
    (None, []),  # junk: no steps, no exception
]


@pytest.mark.parametrize("text, expected", SHARED_STEPS, ids=range(len(SHARED_STEPS)))
def test_every_step_reader_reads_the_same_steps(text, expected):
    from mathalign.tasks.expressions import find_steps
    from mathalign.tasks.steps import parse_steps

    assert parse_steps(text) == expected
    assert [step[:4] for step in find_steps(text)] == expected  # the steps reward's reading
    assert verify_steps(text) == [correct for *_, correct in find_steps(text)]  # and the family's verdicts


def test_verify_steps_bounds_results_and_find_steps_does_not():
    from mathalign.tasks.expressions import find_steps

    text = "1000 * 1000 = 1000000, 2000 * 1000 = 2000000"
    assert verify_steps(text) == [True, False]  # the family's MAX_ABS_VALUE: 2,000,000 is out of bounds
    assert verify_steps(text, max_abs_value=10**7) == [True, True]
    assert [correct for *_, correct in find_steps(text)] == [True, True]  # the reward checks any integer step


# -- surface variants: every other way of writing a problem is the same problem ---------------------------------


@pytest.mark.parametrize("type", ARITHMETIC.types)
def test_arithmetic_surface_variants_parse_back_to_the_same_problem(type):
    rng, spec = random.Random(type), ARITHMETIC.make_spec(answer_style="worked", spacing_variants=0.0)
    forms = set()
    for _ in range(200):
        problem = ARITHMETIC.generate(rng, spec, type=type)
        variant = ARITHMETIC.surface_variant(problem, rng, spec)
        assert variant.prompt != problem.prompt
        parsed = ARITHMETIC.from_prompt(variant.prompt, spec)
        assert (parsed.key, parsed.answer, parsed.type) == (problem.key, problem.answer, problem.type)
        assert variant.key == problem.key and variant.answer == problem.answer
        assert parsed.target == variant.target  # the worked steps of the prompt as written
        forms.add(variant.meta["form"])
    assert "spacing" in forms
    if type in ("a_plus_b", "a_times_b", "x_plus_b", "x_times_b"):
        assert any("operand_order" in form for form in forms)


def test_arithmetic_surface_variants_cover_spaces_around_every_piece():
    rng = random.Random(0)
    problem = ARITHMETIC.make_problem("x_minus_b", 3, 18)  # x-18=-15, x=?: a negative right-hand side
    prompts = {ARITHMETIC.surface_variant(problem, rng).prompt for _ in range(3000)}
    assert "x - 18 = -15 , x = ?" in prompts and "x-18=-15,x=?" in prompts
    assert all(ARITHMETIC.from_prompt(p).answer == "3" for p in prompts)


def test_expressions_surface_variants_parse_back_to_the_same_problem():
    rng = random.Random(0)
    spec = EXPRESSIONS.make_spec(num_operands=(1, 5), invalid_rate=0.3)
    forms, types = set(), set()
    for _ in range(1000):
        problem = EXPRESSIONS.generate(rng, spec)
        variant = EXPRESSIONS.surface_variant(problem, rng)
        assert variant.prompt != problem.prompt and variant.prompt.startswith("Evaluate: ")
        parsed = EXPRESSIONS.problem_of(variant.prompt)
        assert (parsed.key, parsed.answer, parsed.target) == (problem.key, problem.answer, problem.target)
        forms.add(variant.meta["form"])
        types.add(problem.type)
    assert {"spacing", "parentheses", "parentheses+spacing"} <= forms
    assert {"well_formed", "unbalanced_parens", "dangling_operator"} <= types  # malformed ones stay ERROR


def test_expressions_variants_of_a_lone_number_and_redundant_parentheses():
    lone = EXPRESSIONS.from_expression("7")
    assert lone.answer == "7" and lone.difficulty == 0
    variant = EXPRESSIONS.surface_variant(lone, random.Random(0))
    assert "(" in variant.prompt and variant.key == "7" and variant.answer == "7"
    nested = EXPRESSIONS.from_expression("(12 - 4) - (3 + 1)")
    assert nested.key == "12 - 4 - (3 + 1)" and nested.answer == "4"
    assert nested.prompt == "Evaluate: (12 - 4) - (3 + 1)"  # the prompt keeps what the person wrote


@pytest.mark.parametrize("task", [ARITHMETIC, EXPRESSIONS])
def test_surface_variants_option_rewrites_that_share_of_prompts(task):
    no_spacing = {"spacing_variants": 0.0} if task is ARITHMETIC else {}
    for share in (0.0, 0.5, 1.0):
        spec, rng = task.make_spec(surface_variants=share, **no_spacing), random.Random(1)
        problems = [task.generate(rng, spec) for _ in range(400)]
        rewritten = sum(bool(p.meta.get("form")) for p in problems) / len(problems)
        assert abs(rewritten - share) < 0.1
        assert all(task.problem_of(p.prompt).key == p.key for p in problems)


def test_leading_zeros_lengthen_the_prompts_numbers_and_keep_the_problem():
    spec, rng = ARITHMETIC.make_spec(leading_zeros=3, spacing_variants=0.0, answer_style="worked"), random.Random(0)
    plain = ARITHMETIC.make_spec(spacing_variants=0.0, answer_style="worked")
    problems = [ARITHMETIC.generate(rng, spec) for _ in range(300)]
    numbers = [n for p in problems for n in re.findall(r"\d+", p.prompt)]
    assert sum(n.startswith("0") and len(n) > 1 for n in numbers) > len(numbers) / 2  # 1..3 zeros: 3 times in 4
    assert max(len(n) - len(str(int(n))) for n in numbers) == 3
    for p in problems:  # the same problem, answer and worked target as without the zeros
        same = ARITHMETIC.problem_of(p.prompt)
        assert same.key == p.key and same.answer == p.answer
        assert p.target == ARITHMETIC.make_problem(p.type, p.meta["a"], p.meta["b"], plain, p.meta["swapped"]).target
    negative = ARITHMETIC.make_problem("b_minus_x", 5, 9, spec, rng=random.Random(3))
    assert re.fullmatch(r"0*5-x=-0*4, x=\?", negative.prompt), negative.prompt
