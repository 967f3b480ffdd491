"""Position schemes: rope, learned, nope, and Abacus digit positions on top of each (issue 26).

Every scheme must survive save/load with its keys, give the same greedy tokens with and without the KV cache, the
same logits under sdpa and eager attention, and keep packed examples apart. Abacus indices are checked by hand.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoModelForCausalLM

import mathalign
from conftest import ARITHMETIC_TEXTS, make_tiny_model
from mathalign.model.configuration_mathgpt import MathGPTConfigError
from mathalign.model.modeling_mathgpt import abacus_index
from mathalign.tokenizer import digit_token_ids, token_ids_containing

SCHEMES = {
    "rope": dict(position_embedding_type="rope"),
    "learned": dict(position_embedding_type="learned"),
    "nope": dict(position_embedding_type="nope"),
    "abacus+nope": dict(position_embedding_type="nope", abacus_embeddings=True),
    "abacus+rope": dict(position_embedding_type="rope", abacus_embeddings=True),
    # the prompt's numbers counted from their units digit (up to the token holding `?`)
    "abacus-units+nope": dict(position_embedding_type="nope", abacus_embeddings=True, abacus_prompt_end_token_ids="?"),
    # position coupling: every head rotates by place value (the prompt's from the units), no table
    "coupled-units+nope": dict(position_embedding_type="nope", abacus_rope_heads=4, abacus_prompt_end_token_ids="?"),
    # two heads by place within a number, two by sequence position, and the Abacus table as well
    "coupled+rope": dict(position_embedding_type="rope", abacus_rope_heads=2, abacus_embeddings=True),
}


@pytest.fixture(scope="module")
def merged_tokenizer():
    """The tokenizer that keeps a number's leading space with its first digit (` 1`, `2`, `3`)."""
    return mathalign.train_tokenizer(ARITHMETIC_TEXTS, vocab_size=300, merge_number_spaces=True)


def make_model(tokenizer, scheme: str, seed: int = 0, **overrides):
    options = dict(SCHEMES[scheme], **overrides)
    if options.get("abacus_embeddings") or options.get("abacus_rope_heads"):
        options.setdefault("digit_token_ids", digit_token_ids(tokenizer))
    if isinstance(options.get("abacus_prompt_end_token_ids"), str):
        options["abacus_prompt_end_token_ids"] = token_ids_containing(tokenizer, options["abacus_prompt_end_token_ids"])
    model = make_tiny_model(tokenizer, seed=seed, num_hidden_layers=1, **options)
    if options.get("abacus_embeddings"):
        with torch.no_grad():  # larger than the 0.02 init, so a wrong digit index shows in the tokens
            model.model.embed_abacus.weight.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(seed))
    return model


def digits_only(tokenizer) -> list[int]:
    """Every non-digit id: `suppress_tokens` for generate, so greedy output is one long run of digits."""
    digits = set(digit_token_ids(tokenizer))
    return [i for i in range(len(tokenizer)) if i not in digits]


# --- digit ids and Abacus indices ------------------------------------------------------------------------------------

def test_digit_token_ids_are_the_digit_pieces(tiny_tokenizer, merged_tokenizer):
    assert sorted(tiny_tokenizer.decode([i]) for i in digit_token_ids(tiny_tokenizer)) == list("0123456789")
    # With merge_number_spaces a number's leading " 1" is a digit token too.
    merged = {merged_tokenizer.decode([i]) for i in digit_token_ids(merged_tokenizer)}
    assert set("0123456789") <= merged and {" 1", " 2"} <= merged
    assert merged <= set("0123456789") | {f" {d}" for d in "0123456789"}


@pytest.mark.parametrize(
    "text, expected",
    [
        # " 1" starts the run, "+" ends it, "45" is a new number.
        ("x 123+45=", [0, 1, 2, 3, 0, 1, 2, 0]),
        # A negative number: the minus is not a digit; one-digit numbers get 1.
        ("7- 12=-5", [1, 0, 1, 2, 0, 0, 1]),
    ],
)
def test_abacus_index_counts_digits_within_each_number(merged_tokenizer, text, expected):
    ids = torch.tensor([merged_tokenizer(text).input_ids])
    assert abacus_index(ids, digit_token_ids(merged_tokenizer)).tolist() == [expected]


def test_abacus_index_continues_a_cached_run_and_restarts_per_packed_example():
    digits = [1, 2, 3]
    # The cache ended inside a 2-digit number: the next digits are its 3rd and 4th.
    assert abacus_index(torch.tensor([[1, 2, 9, 3]]), digits, carry=torch.tensor([2])).tolist() == [[3, 4, 0, 1]]
    # Two packed examples, the first ending and the second starting with a digit: the run restarts.
    packed, positions = torch.tensor([[9, 1, 2, 3, 1]]), torch.tensor([[0, 1, 2, 0, 1]])
    assert abacus_index(packed, digits, positions).tolist() == [[0, 1, 2, 1, 2]]
    assert abacus_index(packed, digits).tolist() == [[0, 1, 2, 3, 4]]  # without positions: one long number


def test_prompt_numbers_count_from_their_units_and_generated_ones_from_their_first_digit(tiny_tokenizer):
    # `123+45=?` then a units-first answer `861`: the units of both operands and the answer's first digit are 1.
    ids = torch.tensor([tiny_tokenizer("123+45=? 861.").input_ids])
    pieces = [tiny_tokenizer.decode([i]) for i in ids[0]]
    index = abacus_index(ids, digit_token_ids(tiny_tokenizer), prompt_end_token_ids=token_ids_containing(
        tiny_tokenizer, "?"))
    digits = [(p, i) for p, i in zip(pieces, index[0].tolist()) if p.strip().isdigit()]
    assert digits == [("1", 3), ("2", 2), ("3", 1), ("4", 2), ("5", 1), ("8", 1), ("6", 2), ("1", 3)], pieces
    # Packed examples: each has its own prompt, so the second one's operands count from their units again.
    digits_, end = [1, 2, 3], [9]
    packed, positions = torch.tensor([[1, 2, 9, 1, 2, 1, 2, 9, 3]]), torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2, 3]])
    assert abacus_index(packed, digits_, positions, prompt_end_token_ids=end).tolist() == [[2, 1, 0, 1, 2, 2, 1, 0, 1]]
    # Without the option every number counts from its first digit, prompt or not.
    assert abacus_index(packed, digits_, positions).tolist() == [[1, 2, 0, 1, 2, 1, 2, 0, 1]]


def test_a_hand_driven_cache_step_needs_abacus_ids_when_the_prompt_counts_from_units(tiny_tokenizer):
    model = make_model(tiny_tokenizer, "abacus-units+nope").eval()
    ids = torch.tensor([tiny_tokenizer("5+6=? 1234").input_ids])
    out = model(ids[:, :-1], use_cache=True)
    with pytest.raises(ValueError, match="pass `abacus_ids`"):
        model(ids[:, -1:], past_key_values=out.past_key_values, use_cache=True)
    # with the ids a caller computes from the whole sequence, the step equals the full forward
    config = model.config
    index = abacus_index(ids, config.digit_token_ids, prompt_end_token_ids=config.abacus_prompt_end_token_ids)
    step = model(ids[:, -1:], past_key_values=out.past_key_values, abacus_ids=index[:, -1:], use_cache=True)
    torch.testing.assert_close(step.logits[:, -1], model(ids).logits[:, -1], rtol=1e-4, atol=1e-5)


def test_abacus_offset_is_random_in_training_and_absent_in_eval(tiny_tokenizer):
    model = make_model(tiny_tokenizer, "abacus+nope", abacus_max_offset=20)
    ids = torch.tensor([tiny_tokenizer("12+345=?").input_ids] * 8)
    plain = abacus_index(ids, model.config.digit_token_ids)
    model.eval()
    assert torch.equal(model.model.digit_positions(ids, None, None, None), plain)
    assert torch.equal(model(ids).logits, model(ids).logits)  # eval is deterministic
    model.train()
    torch.manual_seed(0)
    shifted = model.model.digit_positions(ids, None, None, None)
    offset = shifted - plain
    assert torch.equal(shifted == 0, plain == 0)  # non-digits stay 0
    # One offset per sequence, the same for every digit of it; different sequences draw different ones.
    assert all(len(set(row[plain[i] > 0].tolist())) == 1 for i, row in enumerate(offset))
    assert len(set(offset.max(dim=1).values.tolist())) > 1 and 0 <= offset.min() and offset.max() <= 20


def test_generate_draws_no_offset_even_in_training_mode(tiny_tokenizer):
    # TRL's GRPO samples completions with the policy in training mode: a number's digits must keep one index
    # sequence across the steps of a generation, as in eval.
    model = make_model(tiny_tokenizer, "abacus+nope")
    ids = torch.tensor([tiny_tokenizer("12+7=? 3").input_ids])
    kwargs = dict(max_new_tokens=8, do_sample=False, suppress_tokens=digits_only(tiny_tokenizer))
    in_training = model.train().generate(ids, **kwargs)
    assert torch.equal(in_training, model.eval().generate(ids, **kwargs))


def test_abacus_offset_is_drawn_per_packed_example(tiny_tokenizer):
    model = make_model(tiny_tokenizer, "abacus+nope", abacus_max_offset=1000).train()
    seqs = [tiny_tokenizer(t).input_ids for t in ["12+7=?", "33+44=?"]]
    ids = torch.tensor([sum(seqs, [])])
    positions = torch.tensor([sum((list(range(len(s))) for s in seqs), [])])
    torch.manual_seed(0)
    offset = model.model.digit_positions(ids, None, positions, None) - abacus_index(ids, model.config.digit_token_ids)
    first, second = offset[0, : len(seqs[0])], offset[0, len(seqs[0]):]
    assert len(set(first[first > 0].tolist())) == 1 and len(set(second[second > 0].tolist())) == 1
    assert first.max() != second.max()  # 1 in 1001 that they agree by chance, fixed by the seed


def test_a_training_step_changes_the_abacus_table(tiny_tokenizer):
    model = make_model(tiny_tokenizer, "abacus+nope").train()
    before = model.model.embed_abacus.weight.detach().clone()
    ids = tiny_tokenizer(["12+7=? The answer is 19."], return_tensors="pt").input_ids
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    changed = (model.model.embed_abacus.weight != before).any(dim=1)
    assert changed[0] and changed[1:].any()  # the non-digit row and some digit rows learned
    assert not changed.all()  # rows no index reached are untouched


def test_digits_beyond_the_abacus_table_raise_a_clear_error(tiny_tokenizer):
    model = make_model(tiny_tokenizer, "abacus+nope", max_position_embeddings=8, abacus_max_offset=0).eval()
    ids = torch.tensor([tiny_tokenizer("123456789").input_ids])  # a 9-digit run, the table has rows 0..8
    with pytest.raises(ValueError, match="beyond the table"):
        model(ids)


# --- config ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"position_embedding_type": "alibi"}, "expected one of \\('rope', 'learned', 'nope'\\)"),  # unknown scheme
        ({"abacus_embeddings": True}, "needs `digit_token_ids`.*digit_token_ids\\(tokenizer\\)"),  # says how to fill
        ({"abacus_embeddings": True, "digit_token_ids": []}, "needs `digit_token_ids`"),  # no digits at all
        ({"digit_token_ids": [3, 600]}, "below vocab_size=512, got \\[600\\]"),  # ids the vocab lacks
        ({"abacus_max_offset": -1}, "`abacus_max_offset` must be >= 0"),  # an offset range
        ({"digit_token_ids": "0123456789"}, "'digit_token_ids'"),  # ids, not the digits themselves
        ({"abacus_prompt_end_token_ids": [5]}, "needs `abacus_embeddings=True`"),  # changes nothing without Abacus
        ({"abacus_rope_heads": 2}, "`abacus_rope_heads` needs `digit_token_ids`"),  # place values need the digits
        ({"abacus_rope_heads": 5, "hidden_size": 64}, "must be in \\[0, num_attention_heads=4\\]"),  # 4 heads
    ],
)
def test_bad_position_configs_are_refused(overrides, message):
    with pytest.raises(MathGPTConfigError, match=message):
        mathalign.MathGPTConfig(**overrides)


def test_abacus_keys_are_written_only_when_abacus_is_on(tiny_tokenizer):
    # Checkpoints without Abacus keep the config.json older releases read (tests/fixtures/legacy-mathgpt-*).
    plain = mathalign.MathGPTConfig().to_diff_dict()
    assert not {"abacus_embeddings", "abacus_max_offset", "digit_token_ids"} & plain.keys()
    abacus = make_model(tiny_tokenizer, "abacus+nope").config.to_diff_dict()
    assert abacus["abacus_embeddings"] is True and abacus["abacus_max_offset"] == 32
    assert abacus["digit_token_ids"] == digit_token_ids(tiny_tokenizer)


# --- every scheme behaves like a transformers model ------------------------------------------------------------------

@pytest.mark.parametrize("scheme", SCHEMES)
def test_round_trip_keeps_the_keys_and_the_logits(tiny_tokenizer, scheme, tmp_path):
    model = make_model(tiny_tokenizer, scheme, abacus_max_offset=7).eval()
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["position_embedding_type"] == SCHEMES[scheme]["position_embedding_type"]
    if model.config.abacus_embeddings:
        assert (saved["abacus_embeddings"], saved["abacus_max_offset"]) == (True, 7)
    if model.config.uses_abacus_index:
        assert saved["digit_token_ids"] == digit_token_ids(tiny_tokenizer)
        assert saved.get("abacus_rope_heads", 0) == SCHEMES[scheme].get("abacus_rope_heads", 0)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert reloaded.config.to_diff_dict() == model.config.to_diff_dict()
    ids = tiny_tokenizer(["x=12345+678, 9"], return_tensors="pt").input_ids
    torch.testing.assert_close(reloaded(ids).logits, model(ids).logits, rtol=0, atol=0)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_greedy_generation_with_cache_equals_without(tiny_tokenizer, scheme):
    model = make_model(tiny_tokenizer, scheme).eval()
    # Left padding, prompts ending inside a number, and only digits allowed: every new token continues the prompt's
    # digit run, so a cache that lost the run's length would change the Abacus index and the tokens.
    tiny_tokenizer.padding_side = "left"
    batch = tiny_tokenizer(["12+7=? 3", "3*4=? The answer is 12"], return_tensors="pt", padding=True)
    tiny_tokenizer.padding_side = "right"
    kwargs = dict(max_new_tokens=10, do_sample=False, pad_token_id=tiny_tokenizer.pad_token_id,
                  suppress_tokens=digits_only(tiny_tokenizer))
    with_cache = model.generate(**batch, use_cache=True, **kwargs)
    without_cache = model.generate(**batch, use_cache=False, **kwargs)
    assert torch.equal(with_cache, without_cache)
    # Beam search reorders the cache between steps; the indices come from the ids, so it agrees too.
    beams = dict(kwargs, num_beams=3, max_new_tokens=6)
    assert torch.equal(model.generate(**batch, use_cache=True, **beams),
                       model.generate(**batch, use_cache=False, **beams))


@pytest.mark.parametrize("scheme", ["abacus+nope", "abacus+rope", "coupled+rope"])
def test_a_hand_driven_cache_continues_the_digit_run(tiny_tokenizer, scheme):
    # Without generate: feed a number in pieces with the cache, as a user's own decoding loop would.
    model = make_model(tiny_tokenizer, scheme).eval()
    ids = torch.tensor([tiny_tokenizer("5+6=? 1234567").input_ids])
    full = model(ids).logits
    out = model(ids[:, :-4], use_cache=True)
    logits = [out.logits]
    for t in range(ids.shape[1] - 4, ids.shape[1]):
        out = model(ids[:, t : t + 1], past_key_values=out.past_key_values, use_cache=True)
        logits.append(out.logits)
    torch.testing.assert_close(torch.cat(logits, dim=1), full, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_eager_and_sdpa_give_the_same_logits(tiny_tokenizer, scheme):
    model = make_model(tiny_tokenizer, scheme).eval()
    batch = tiny_tokenizer(["12+7=? The answer is 19", "3*4=?"], return_tensors="pt", padding=True)
    sdpa = model(**batch).logits
    model.set_attn_implementation("eager")
    eager = model(**batch).logits
    mask = batch.attention_mask.bool()
    torch.testing.assert_close(eager[mask], sdpa[mask], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_packed_examples_equal_the_examples_alone(tiny_tokenizer, scheme, implementation):
    model = make_model(tiny_tokenizer, scheme, attn_implementation=implementation).eval()
    # The first example ends with a digit and the next starts with one: the digit run must not cross over.
    seqs = [tiny_tokenizer(t).input_ids for t in ["12+7=? The answer is 19", "345-2=?", "9-2=? The answer is 7."]]
    packed = torch.tensor([sum(seqs, [])])
    position_ids = torch.tensor([sum((list(range(len(s))) for s in seqs), [])])
    packed_logits = model(input_ids=packed, position_ids=position_ids).logits[0]
    start = 0
    for s in seqs:
        alone = model(input_ids=torch.tensor([s])).logits[0]
        torch.testing.assert_close(packed_logits[start : start + len(s)], alone, rtol=1e-4, atol=1e-5)
        start += len(s)


def test_nope_ignores_positions_entirely(tiny_tokenizer):
    model = make_model(tiny_tokenizer, "nope").eval()
    assert not any("rotary" in n or "embed_positions" in n for n, _ in model.named_modules())
    ids = torch.tensor([tiny_tokenizer("12+7=?").input_ids])
    torch.testing.assert_close(model(ids, position_ids=torch.arange(ids.shape[1])[None] + 50).logits,
                               model(ids).logits, rtol=0, atol=0)


def test_coupled_heads_see_place_values_relative_to_each_other(tiny_tokenizer):
    # Rotary by Abacus index: shifting every token's index by the same amount changes nothing (relative), while
    # moving the digits' places relative to the rest does (the heads read them).
    model = make_model(tiny_tokenizer, "coupled-units+nope").eval()
    assert not hasattr(model.model, "embed_abacus")  # no table: place values reach the model as rotations only
    ids = torch.tensor([tiny_tokenizer("382+49=? 1").input_ids])
    config = model.config
    index = abacus_index(ids, config.digit_token_ids, prompt_end_token_ids=config.abacus_prompt_end_token_ids)
    assert index.max() == 3
    logits = model(ids, abacus_ids=index).logits
    torch.testing.assert_close(model(ids, abacus_ids=index + 9).logits, logits, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(model(ids, abacus_ids=index * 2).logits, logits, rtol=1e-5, atol=1e-6)


def test_remote_code_runs_an_abacus_checkpoint_without_mathalign(tiny_tokenizer, tmp_path):
    model = make_model(tiny_tokenizer, "abacus+nope").eval()
    model.save_pretrained(tmp_path)
    ids = tiny_tokenizer(["12+7=? 3"], return_tensors="pt").input_ids
    kwargs = dict(max_new_tokens=6, do_sample=False, suppress_tokens=digits_only(tiny_tokenizer))
    expected = model.generate(ids, **kwargs).tolist()
    script = textwrap.dedent(f"""
        import sys
        sys.modules["mathalign"] = None  # only the shipped code can be used
        import json, torch
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained({str(tmp_path)!r}, trust_remote_code=True)
        out = model.generate(torch.tensor({ids.tolist()}), **{kwargs!r})
        print(json.dumps(out.tolist()))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd="/",
                         env={**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules")})
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == expected


# --- a recipe builds and trains an Abacus model ----------------------------------------------------------------------

@pytest.mark.parametrize("given", [None, [5, 6]])
def test_build_model_fills_digit_token_ids_unless_given(merged_tokenizer, given):
    from types import SimpleNamespace

    from mathalign.train import build_model

    options = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4, "abacus_embeddings": True}
    if given is not None:
        options["digit_token_ids"] = given  # what the recipe says wins
    model = build_model(SimpleNamespace(mathgpt_config=options),
                        SimpleNamespace(model_name_or_path=None, load_in_4bit=False, load_in_8bit=False),
                        None, merged_tokenizer)
    assert model.config.digit_token_ids == (given or digit_token_ids(merged_tokenizer))
    units = build_model(SimpleNamespace(mathgpt_config={**options, "abacus_prompt_end_token_ids": "?"}),
                        SimpleNamespace(model_name_or_path=None, load_in_4bit=False, load_in_8bit=False),
                        None, merged_tokenizer)  # `"?"`: every token holding it
    assert units.config.abacus_prompt_end_token_ids == token_ids_containing(merged_tokenizer, "?")
    assert {merged_tokenizer.decode([i]) for i in units.config.abacus_prompt_end_token_ids} >= {"=?"}
    coupled_options = {**options, "abacus_embeddings": False, "abacus_rope_heads": 2}
    coupled = build_model(SimpleNamespace(mathgpt_config=coupled_options),
                          SimpleNamespace(model_name_or_path=None, load_in_4bit=False, load_in_8bit=False),
                          None, merged_tokenizer)  # rotary by place needs the digits as well
    assert coupled.config.digit_token_ids == (given or digit_token_ids(merged_tokenizer))
    # Without Abacus nothing is added: the config.json stays as before.
    options.pop("abacus_embeddings")
    plain = build_model(SimpleNamespace(mathgpt_config=options),
                        SimpleNamespace(model_name_or_path=None, load_in_4bit=False, load_in_8bit=False),
                        None, merged_tokenizer)
    assert plain.config.digit_token_ids == given and "abacus_embeddings" not in plain.config.to_diff_dict()


def test_a_recipe_fills_digit_token_ids_and_trains_with_packing(tmp_path):
    from transformers import AutoTokenizer

    from mathalign.cli import main as cli_main

    recipe = tmp_path / "pretrain.yaml"
    recipe.write_text(json.dumps({  # JSON is YAML
        "stage": "pretrain", "dataset_name": "pretrain", "output_dir": str(tmp_path / "run"), "report_to": "none",
        "data_options": {"num_train": 32, "num_validation": 0, "num_test": 0, "num_test_ood": 0, "seed": 0},
        "max_steps": 3, "per_device_train_batch_size": 4, "max_length": 64, "save_strategy": "no", "packing": True,
        "tokenizer_vocab_size": 300, "tokenizer_merge_number_spaces": True,
        # No digit_token_ids: the run computes them from the tokenizer it trains.
        "mathgpt_config": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4,
                           "position_embedding_type": "nope", "abacus_embeddings": True},
    }))
    assert cli_main(["train", str(recipe)]) == 0
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "run")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "run")
    assert model.config.abacus_embeddings and model.config.position_embedding_type == "nope"
    assert model.config.digit_token_ids == digit_token_ids(tokenizer)
    assert {tokenizer.decode([i]) for i in model.config.digit_token_ids} > set("0123456789")  # " 1"... pieces too
