"""MathGPT behaves like a transformers causal LM: save/load, generate, attention backends, packing, checkpointing."""

import dataclasses
import importlib.util
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from huggingface_hub.errors import StrictDataclassError
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

import mathalign
from conftest import ARITHMETIC_TEXTS, make_tiny_model
from mathalign.model.configuration_mathgpt import MathGPTConfigError
from mathalign.tasks import get_task

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_auto_classes_load_a_saved_checkpoint(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert isinstance(model, mathalign.MathGPTForCausalLM)
    assert isinstance(AutoConfig.from_pretrained(tiny_model_dir), mathalign.MathGPTConfig)
    # Tied embeddings survive the round trip (transformers 5 unties silently if the config forgets them).
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()


def test_saved_checkpoint_carries_remote_code(tiny_model_dir):
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_mathgpt.MathGPTForCausalLM"
    assert (tiny_model_dir / "modeling_mathgpt.py").exists()
    assert (tiny_model_dir / "configuration_mathgpt.py").exists()


def test_round_trip_in_process_gives_identical_logits(tiny_model, tiny_tokenizer, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    ids = tiny_tokenizer(["12+7=?"], return_tensors="pt").input_ids
    torch.testing.assert_close(tiny_model(ids).logits, reloaded(ids).logits, rtol=0, atol=0)


def test_remote_code_loads_without_mathalign_and_generates_the_same_tokens(tiny_model_dir, tiny_tokenizer):
    prompt = "12+7=?"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ids = tiny_tokenizer(prompt, return_tensors="pt").input_ids
    expected = model.generate(ids, max_new_tokens=8, do_sample=False).tolist()
    script = textwrap.dedent(f"""
        import sys
        sys.modules["mathalign"] = None  # importing mathalign now fails: only the shipped code can be used
        import json, torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        tok = AutoTokenizer.from_pretrained({str(tiny_model_dir)!r}, trust_remote_code=True)
        model = AutoModelForCausalLM.from_pretrained({str(tiny_model_dir)!r}, trust_remote_code=True)
        ids = tok({prompt!r}, return_tensors="pt").input_ids
        print(json.dumps(model.generate(ids, max_new_tokens=8, do_sample=False).tolist()))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd="/")
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == expected


@pytest.mark.parametrize("position_embedding_type", ["rope", "learned"])
def test_greedy_generation_with_cache_equals_without(tiny_tokenizer, position_embedding_type):
    model = make_tiny_model(tiny_tokenizer, position_embedding_type=position_embedding_type).eval()
    # Left padding: the second prompt is shorter, so the cache must respect the attention mask and positions.
    tiny_tokenizer.padding_side = "left"
    batch = tiny_tokenizer(["12+7=?", "3*4=?"], return_tensors="pt", padding=True)
    tiny_tokenizer.padding_side = "right"
    kwargs = dict(max_new_tokens=10, do_sample=False, pad_token_id=tiny_tokenizer.pad_token_id)
    with_cache = model.generate(**batch, use_cache=True, **kwargs)
    without_cache = model.generate(**batch, use_cache=False, **kwargs)
    assert torch.equal(with_cache, without_cache)


def test_left_padded_batch_matches_single_prompts(tiny_tokenizer):
    model = make_tiny_model(tiny_tokenizer).eval()
    prompts = ["12+7=?", "3*4=?", "x-18=21, x=?"]
    tiny_tokenizer.padding_side = "left"
    batch = tiny_tokenizer(prompts, return_tensors="pt", padding=True)
    tiny_tokenizer.padding_side = "right"
    kwargs = dict(max_new_tokens=6, do_sample=False, pad_token_id=tiny_tokenizer.pad_token_id)
    batched = model.generate(**batch, **kwargs)[:, batch.input_ids.shape[1]:]
    for row, prompt in zip(batched, prompts):
        ids = tiny_tokenizer(prompt, return_tensors="pt").input_ids
        single = model.generate(ids, **kwargs)[0, ids.shape[1]:]
        assert row[: len(single)].tolist() == single.tolist()


@pytest.mark.parametrize("position_embedding_type", ["rope", "learned"])
def test_eager_and_sdpa_give_the_same_logits(tiny_tokenizer, position_embedding_type):
    model = make_tiny_model(tiny_tokenizer, position_embedding_type=position_embedding_type).eval()
    batch = tiny_tokenizer(["12+7=? The answer", "3*4=?"], return_tensors="pt", padding=True)
    sdpa = model(**batch).logits
    model.set_attn_implementation("eager")
    out = model(**batch, output_attentions=True)
    mask = batch.attention_mask.bool()
    torch.testing.assert_close(out.logits[mask], sdpa[mask], rtol=1e-4, atol=1e-5)
    # One attention map per layer, (batch, heads, T, T), rows summing to one.
    assert len(out.attentions) == 2
    assert out.attentions[0].shape == (2, 4, batch.input_ids.shape[1], batch.input_ids.shape[1])
    torch.testing.assert_close(out.attentions[0].sum(-1), torch.ones(2, 4, batch.input_ids.shape[1]))


def test_packed_row_attends_per_example_in_length_groups(tiny_tokenizer):
    # Lengths from 2 to 40 tokens in a shuffled order: the sdpa path sorts them into several groups of similar
    # length. Its logits and gradients must match eager attention under the block-diagonal mask of the whole row.
    texts = ["1+1=?", "12+7=? The answer is 19.", "3*4=?", "99*99=? The answer is 9801. " * 3, "9-2=?", "7", "5/5=?"]
    seqs = [tiny_tokenizer(t).input_ids for t in texts]
    packed = torch.tensor([sum(seqs, [])])
    position_ids = torch.tensor([sum((list(range(len(s))) for s in seqs), [])])
    layout = mathalign.model.modeling_mathgpt.PackedLayout.of(position_ids)
    assert layout.num_examples == len(seqs) and len(layout.groups) >= 3
    results = {}
    for implementation in ("sdpa", "eager"):
        model = make_tiny_model(tiny_tokenizer, attn_implementation=implementation)
        out = model(input_ids=packed, position_ids=position_ids, labels=packed)
        out.loss.backward()
        results[implementation] = (out.logits, model.model.layers[0].self_attn.q_proj.weight.grad)
    torch.testing.assert_close(results["sdpa"][0], results["eager"][0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(results["sdpa"][1], results["eager"][1], rtol=1e-3, atol=1e-6)
    # A row that holds one example, or a padded batch of rows, takes the ordinary masked path.
    assert mathalign.model.modeling_mathgpt.PackedLayout.of(torch.arange(5)[None]) is None
    assert mathalign.model.modeling_mathgpt.PackedLayout.of(torch.arange(5).repeat(2, 1)) is None


def test_gradient_checkpointing_gives_the_same_gradients(tiny_tokenizer):
    ids = tiny_tokenizer(["12+7=? The answer is 19."], return_tensors="pt").input_ids

    def grads(checkpointing: bool):
        model = make_tiny_model(tiny_tokenizer).train()
        if checkpointing:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model(input_ids=ids, labels=ids).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain, checkpointed = grads(False), grads(True)
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        torch.testing.assert_close(plain[name], checkpointed[name], rtol=1e-5, atol=1e-6, msg=name)


def test_loss_matches_manual_cross_entropy(tiny_model, tiny_tokenizer):
    ids = tiny_tokenizer(["12+7=? The answer is 19."], return_tensors="pt").input_ids
    out = tiny_model(input_ids=ids, labels=ids)
    manual = torch.nn.functional.cross_entropy(out.logits[0, :-1], ids[0, 1:])
    torch.testing.assert_close(out.loss, manual)


@pytest.mark.parametrize(
    "target_modules, expected",
    [
        # Explicit attention projections: only q/v get adapters.
        (["q_proj", "v_proj"], {"q_proj", "v_proj"}),
        # "all-linear": every Linear in the blocks, never the (tied) lm_head.
        ("all-linear", {"q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"}),
    ],
)
def test_lora_wraps_the_named_layers(tiny_model, target_modules, expected):
    peft_model = get_peft_model(tiny_model, LoraConfig(r=4, lora_alpha=8, target_modules=target_modules))
    wrapped = {name.split(".")[-1] for name, module in peft_model.named_modules() if hasattr(module, "lora_A")}
    assert wrapped == expected
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"hidden_size": 30, "num_attention_heads": 4}, "`hidden_size` \\(30\\) must be divisible by"),  # 30 % 4 != 0
        ({"hidden_size": 36, "num_attention_heads": 4}, "even head_dim"),  # rotary rotates pairs of dimensions: 9
        ({"num_attention_heads": 0}, "`num_attention_heads` must be a positive integer"),  # checked before dividing
        ({"num_hidden_layers": -2}, "`num_hidden_layers` must be a positive integer, got -2"),  # negative depth
        ({"num_hidden_layers": 0}, "`num_hidden_layers` must be a positive integer"),  # no blocks at all
        ({"vocab_size": 0}, "`vocab_size` must be a positive integer"),  # no tokens
        ({"intermediate_size": -1}, "`intermediate_size` must be a positive integer"),  # explicit MLP width
        ({"max_position_embeddings": 0}, "`max_position_embeddings` must be a positive integer"),  # no positions
        ({"position_embedding_type": "alibi"}, "'position_embedding_type' expected one of"),  # unknown positions
        ({"norm_type": "batchnorm"}, "'norm_type' expected one of \\('layernorm', 'rmsnorm'\\)"),  # unknown norm
        ({"hidden_act": "swishy"}, "`hidden_act` must be one of"),  # not an activation transformers knows
        ({"resid_dropout": 1.5}, "`resid_dropout` must be in \\[0, 1\\)"),  # dropout is a probability...
        ({"embd_dropout": 1.0}, "`embd_dropout` must be in \\[0, 1\\)"),  # ...that drops less than everything
        ({"attention_dropout": -0.1}, "`attention_dropout` must be in \\[0, 1\\)"),  # and is not negative
        ({"layer_norm_eps": 0.0}, "`layer_norm_eps` must be > 0"),  # the norm would divide by zero
        ({"rope_theta": -1.0}, "`rope_theta` must be > 0"),  # rotary base frequency
        ({"initializer_range": -0.02}, "`initializer_range` must be >= 0"),  # a standard deviation
        ({"hidden_size": "128"}, "'hidden_size' expected int, got str"),  # types are checked: a quoted number
        ({"num_hidden_layers": True}, "'num_hidden_layers' expected int, got bool"),  # a bool is no count
        ({"bias": "yes"}, "'bias' expected bool"),  # nor a string a flag
        ({"layer_norm_eps": "1e-5"}, "'layer_norm_eps'"),  # how PyYAML reads 1e-5 (no dot) in a recipe
        ({"tie_word_embeddings": None}, "'tie_word_embeddings' expected bool"),  # must be said, not left unset
        ({"auto_map": ["AutoConfig"]}, "'auto_map'"),  # a mapping of auto class -> module.Class
    ],
)
def test_bad_configs_raise_clear_errors_naming_the_key(overrides, message):
    with pytest.raises(ValueError, match=message) as raised:
        mathalign.MathGPTConfig(**overrides)
    # One error type: a ValueError (the CLI prints it as one line), a strict-dataclass error (as transformers 5).
    assert isinstance(raised.value, MathGPTConfigError) and isinstance(raised.value, StrictDataclassError)
    assert str(raised.value).startswith("MathGPTConfig: ") and "\n" not in str(raised.value)


def test_config_accepts_what_the_old_one_did(legacy_code):
    # Every keyword of the old __init__ is a typed field with the same default.
    parameters = inspect.signature(legacy_code.MathGPTConfig.__init__).parameters
    old_defaults = {name: p.default for name, p in parameters.items() if name not in ("self", "kwargs")}
    new_defaults = {f.name: f.default for f in dataclasses.fields(mathalign.MathGPTConfig) if f.name in old_defaults}
    assert new_defaults == old_defaults
    for overrides in (
        {},  # the defaults
        {"rope_theta": 500000, "embd_dropout": 0, "layer_norm_eps": 1},  # integers where floats are declared
        {"hidden_size": 36, "num_attention_heads": 4, "position_embedding_type": "learned"},  # odd head_dim, no rope
        {"eos_token_id": [2, 3], "pad_token_id": 0, "intermediate_size": 100, "hidden_act": "relu"},
    ):
        new, old = mathalign.MathGPTConfig(**overrides), legacy_code.MathGPTConfig(**overrides)
        assert mathgpt_keys(new.to_diff_dict()) == mathgpt_keys(old.to_diff_dict()), overrides
    # intermediate_size None means 4 * hidden_size, resolved when the config is made (and saved so).
    assert mathalign.MathGPTConfig(hidden_size=64).intermediate_size == 256
    # auto_map is each instance's own dict (TRL reads config.auto_map; register_for_auto_class writes into it).
    first, second = mathalign.MathGPTConfig(), mathalign.MathGPTConfig()
    assert vars(first)["auto_map"] == {} and first.auto_map is not second.auto_map


def test_changed_configs_are_validated_again(tmp_path):
    config = mathalign.MathGPTConfig()
    with pytest.raises(StrictDataclassError, match="'hidden_size' expected int"):
        config.hidden_size = "256"  # types are checked on every assignment
    config.num_attention_heads = 3  # values that only clash with another key are checked by validate()...
    with pytest.raises(StrictDataclassError, match="`num_attention_heads` \\(3\\)"):
        config.validate()
    with pytest.raises(StrictDataclassError, match="`num_attention_heads` \\(3\\)"):
        config.save_pretrained(tmp_path)  # ...which save_pretrained runs before writing
    assert not (tmp_path / "config.json").exists()


# --- checkpoints written by the config before it was a dataclass (tests/fixtures/make_legacy_mathgpt.py) -------------

LEGACY = {name: FIXTURES / name for name in ("legacy-mathgpt-rope", "legacy-mathgpt-learned")}
CODE_FILES = ("configuration_mathgpt.py", "modeling_mathgpt.py")


def mathgpt_keys(config_dict: dict) -> dict:
    """A config's keys as config.json holds them, but the transformers version that wrote it."""
    return {k: v for k, v in config_dict.items() if k != "transformers_version"}


def logits_of(model, expected) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(input_ids=expected["input_ids"], attention_mask=expected["attention_mask"]).logits


@pytest.fixture(scope="session")
def legacy_code(tmp_path_factory):
    """The MathGPT code that wrote the legacy checkpoints (shipped in them), imported as a package of its own."""
    package = tmp_path_factory.mktemp("legacy") / "mathgpt_legacy_code"
    package.mkdir()
    for name in CODE_FILES:
        shutil.copy(LEGACY["legacy-mathgpt-rope"] / name, package / name)
    (package / "__init__.py").write_text("")
    source = (package / "configuration_mathgpt.py").read_text()
    assert "def __init__(" in source and "@strict" not in source, "the fixture should hold the old config code"
    spec = importlib.util.spec_from_file_location(package.name, package / "__init__.py",
                                                  submodule_search_locations=[str(package)])
    sys.modules[package.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sys.modules[package.name])
    config = importlib.import_module(f"{package.name}.configuration_mathgpt")
    modeling = importlib.import_module(f"{package.name}.modeling_mathgpt")
    yield SimpleNamespace(MathGPTConfig=config.MathGPTConfig, MathGPTForCausalLM=modeling.MathGPTForCausalLM)
    for name in [n for n in sys.modules if n.split(".")[0] == package.name]:
        del sys.modules[name]


@pytest.mark.parametrize("name", LEGACY)
def test_legacy_checkpoint_loads_with_the_same_config_and_logits(name, tmp_path):
    path = LEGACY[name]
    expected = load_file(path / "expected.safetensors")  # what the old code computed when it saved the checkpoint
    model = AutoModelForCausalLM.from_pretrained(path)
    assert isinstance(model, mathalign.MathGPTForCausalLM) and isinstance(model.config, mathalign.MathGPTConfig)
    saved = json.loads((path / "config.json").read_text())
    assert mathgpt_keys(model.config.to_diff_dict()) == mathgpt_keys(saved)  # every key read back as it was
    tied = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert tied is saved["tie_word_embeddings"]  # True in one fixture, False in the other
    torch.testing.assert_close(logits_of(model, expected), expected["logits"], rtol=1e-4, atol=1e-5)
    generated = model.generate(input_ids=expected["input_ids"], attention_mask=expected["attention_mask"],
                               max_new_tokens=6, do_sample=False, pad_token_id=saved["pad_token_id"])
    assert torch.equal(generated, expected["generated"])
    # Saved again by today's code, config.json says the same thing.
    model.save_pretrained(tmp_path)
    assert mathgpt_keys(json.loads((tmp_path / "config.json").read_text())) == mathgpt_keys(saved)


@pytest.mark.parametrize("name", LEGACY)
def test_old_and_new_code_read_each_others_checkpoints_exactly(name, legacy_code, tmp_path):
    path = LEGACY[name]
    expected = load_file(path / "expected.safetensors")
    old = legacy_code.MathGPTForCausalLM.from_pretrained(path)
    new = mathalign.MathGPTForCausalLM.from_pretrained(path)
    torch.testing.assert_close(logits_of(new, expected), logits_of(old, expected), rtol=0, atol=0)
    # A checkpoint written by today's code, read by the old code: the same keys, the same logits.
    new.save_pretrained(tmp_path)
    assert mathgpt_keys(legacy_code.MathGPTConfig.from_pretrained(tmp_path).to_diff_dict()) == mathgpt_keys(
        new.config.to_diff_dict())
    reread = legacy_code.MathGPTForCausalLM.from_pretrained(tmp_path)
    torch.testing.assert_close(logits_of(reread, expected), logits_of(old, expected), rtol=0, atol=0)


def test_remote_code_reads_legacy_and_new_checkpoints_without_mathalign(tmp_path):
    # As a user without mathalign would: today's shipped code on an old config.json, and the old shipped code
    # (what earlier checkpoints carry) on a config.json written today. Each must give the old code's logits.
    dirs = {}
    for name, path in LEGACY.items():
        dirs[f"{name}, new code"] = shutil.copytree(path, tmp_path / f"{name}-new-code")
        for code in CODE_FILES:
            shutil.copy(Path(mathalign.model.__file__).parent / code, dirs[f"{name}, new code"] / code)
        dirs[f"{name}, old code"] = tmp_path / f"{name}-old-code"
        AutoModelForCausalLM.from_pretrained(path).save_pretrained(dirs[f"{name}, old code"])
        for file in (*CODE_FILES, "expected.safetensors"):
            shutil.copy(path / file, dirs[f"{name}, old code"] / file)
    script = textwrap.dedent(f"""
        import sys
        sys.modules["mathalign"] = None  # importing mathalign now fails: only the shipped code can be used
        import json, torch
        from safetensors.torch import load_file, save_file
        from transformers import AutoModelForCausalLM
        logits, dataclass_config = {{}}, {{}}
        for name, path in {json.dumps({k: str(v) for k, v in dirs.items()})}.items():
            expected = load_file(path + "/expected.safetensors")
            model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True).eval()
            dataclass_config[name] = hasattr(type(model.config), "validate_scales")  # today's config class
            with torch.no_grad():
                logits[name] = model(input_ids=expected["input_ids"], attention_mask=expected["attention_mask"]).logits
        save_file(logits, {str(tmp_path / "logits.safetensors")!r})
        print(json.dumps(dataclass_config))
    """)
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180, cwd="/", env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {name: name.endswith("new code") for name in dirs}
    logits = load_file(tmp_path / "logits.safetensors")
    for name, path in dirs.items():
        expected = load_file(path / "expected.safetensors")
        torch.testing.assert_close(logits[name], expected["logits"], rtol=1e-4, atol=1e-5, msg=name)


def test_learned_positions_beyond_the_table_raise_a_clear_error(tiny_tokenizer):
    model = make_tiny_model(tiny_tokenizer, position_embedding_type="learned", max_position_embeddings=8)
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model(input_ids=torch.zeros(1, 9, dtype=torch.long))


# --- tokenizer ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text",
    [
        "72/4=? The answer is 18.",  # the seed's plain format
        "x-18=21, x=? The answer is 39.",  # equation with a comma and space
        "Evaluate: 5 + (10 - 3) <think> Step 1: 10 - 3 = 7 </think> Final Result: 12",  # reasoning markers
        "  leading spaces,\ttabs\nand newlines  ",  # whitespace is kept byte for byte
        "-1234567890 #### 42 Final Answer: C",  # every digit, negatives, GSM8K/AQuA cues
        "unseen ünïcödé ✓",  # characters the tokenizer never saw in training
    ],
)
def test_tokenizer_round_trips_exactly(tiny_tokenizer, text):
    assert tiny_tokenizer.decode(tiny_tokenizer(text).input_ids) == text


def test_every_digit_is_its_own_token(tiny_tokenizer):
    tokens = tiny_tokenizer.convert_ids_to_tokens(tiny_tokenizer("x=1234567890, 99+100=199").input_ids)
    digit_tokens = [t for t in tokens if any(c.isdigit() for c in t)]
    assert all(len(t) == 1 for t in digit_tokens), digit_tokens
    assert "".join(digit_tokens) == "1234567890" + "99100199"


def test_special_tokens_are_unique_and_pad_is_not_eos(tiny_tokenizer):
    ids = [tiny_tokenizer.convert_tokens_to_ids(t) for t in mathalign.SPECIAL_TOKENS]
    assert len(set(ids)) == len(ids)
    assert tiny_tokenizer.pad_token_id != tiny_tokenizer.eos_token_id
    # <think> is one token, not spelled out, and survives decoding with skip_special_tokens (TRL decodes so).
    ids = tiny_tokenizer(" <think> Step 1: 1 + 2 = 3 </think> Final Result: 3").input_ids
    assert tiny_tokenizer.convert_tokens_to_ids("<think>") in ids
    assert "<think>" in tiny_tokenizer.decode(ids, skip_special_tokens=True)
    assert "</think>" in tiny_tokenizer.decode(ids, skip_special_tokens=True)


def test_words_merge_while_digits_do_not(tiny_tokenizer):
    assert len(tiny_tokenizer(" answer").input_ids) == 1


def test_chat_template_marks_the_assistant_turn(tiny_tokenizer):
    messages = [{"role": "user", "content": "12+7=?"}, {"role": "assistant", "content": " The answer is 19."}]
    out = tiny_tokenizer.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
    text = tiny_tokenizer.apply_chat_template(messages, tokenize=False)
    assert text == "12+7=? The answer is 19.<eos>"
    masked = [i for i, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    assert tiny_tokenizer.decode(masked) == " The answer is 19.<eos>"


def test_tokenizer_saves_and_loads_with_auto_tokenizer(tiny_tokenizer, tmp_path):
    tiny_tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "x-18=21, x=? The answer is 39."
    assert loaded(text).input_ids == tiny_tokenizer(text).input_ids
    assert (loaded.pad_token, loaded.eos_token) == ("<pad>", "<eos>")
    assert loaded.chat_template == tiny_tokenizer.chat_template


def test_merge_number_spaces_keeps_the_space_with_the_first_digit(tmp_path):
    texts = ["Evaluate: 9 - (10 - 16) <think> Step 1: 10 - 16 = -6 Expression now: 9 - -6 </think>"] * 50
    plain = mathalign.train_tokenizer(texts, vocab_size=400)
    merged = mathalign.train_tokenizer(texts, vocab_size=400, merge_number_spaces=True)
    text = " Step 1: 9 - -6 = 15"
    assert plain.tokenize(text) == ["ĠStep", "Ġ", "1", ":", "Ġ", "9", "Ġ-", "Ġ-", "6", "Ġ=", "Ġ", "1", "5"]
    # No digit ever merges with another; a negative sign stays apart from the minus operator.
    assert merged.tokenize(text) == ["ĠStep", "Ġ1", ":", "Ġ9", "Ġ-", "Ġ-", "6", "Ġ=", "Ġ1", "5"]
    assert merged.tokenize(" - 7") != merged.tokenize(" -7")
    for sample in texts + ["12  34", "a\n5", "-0.5 x"]:
        assert merged.decode(merged(sample).input_ids) == sample
    merged.save_pretrained(tmp_path)  # the pre-tokenizer travels in tokenizer.json
    assert AutoTokenizer.from_pretrained(tmp_path).tokenize(text) == merged.tokenize(text)


def test_too_small_vocab_is_refused():
    with pytest.raises(ValueError, match="vocab_size"):
        mathalign.train_tokenizer(["1+1=2"], vocab_size=100)


def test_public_api_is_explicit():
    assert mathalign.__all__ == sorted(mathalign.__all__)
    for name in mathalign.__all__:
        assert hasattr(mathalign, name), name


# --- a family's prompt rewrites as the tokenizer's normalizer (tokenizer_prompt_normalizer) ----------------------

@pytest.fixture(scope="module")
def rewriting_tokenizer():
    rewrites = get_task("arithmetic").tokenizer_rewrites
    return mathalign.train_tokenizer(ARITHMETIC_TEXTS, vocab_size=300, rewrites=rewrites)


def test_every_spacing_of_a_prompt_encodes_as_the_compact_prompt(rewriting_tokenizer):
    import random

    task = get_task("arithmetic")
    spec = task.make_spec(surface_variants=1.0)
    rng = random.Random(0)
    spaced = 0
    for problem in (task.generate(rng, spec) for _ in range(300)):
        compact = re.sub(r"\s", "", problem.prompt)
        spaced += compact != problem.prompt
        # A prompt written with any spacing is the same tokens as the compact one, its answer keeps its spaces.
        assert rewriting_tokenizer(problem.prompt).input_ids == rewriting_tokenizer(compact).input_ids
        text = problem.prompt + problem.target
        assert rewriting_tokenizer.decode(rewriting_tokenizer(text).input_ids) == compact + problem.target
    assert spaced > 100  # the variants did write spaces


@pytest.mark.parametrize("typed, reads", [
    ("72 ÷ 4 = ？", "72/4=?"),  # a phone's operators
    ("x − 18 = 21 ,  x = ?", "x-18=21,x=?"),
    ("3 + 4 = ? The answer is 7.", "3+4=? The answer is 7."),  # the answer is not a prompt: spaces kept
    ("Final Answer: C", "Final Answer: C"),  # text without a `?` is untouched
])
def test_the_normalizer_rewrites_prompts_only(rewriting_tokenizer, typed, reads):
    assert rewriting_tokenizer.decode(rewriting_tokenizer(typed).input_ids) == reads


def test_the_normalizer_is_saved_in_tokenizer_json(rewriting_tokenizer, tmp_path):
    rewriting_tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded("4 * x = 72 , x = ?").input_ids == rewriting_tokenizer("4*x=72,x=?").input_ids
    assert json.loads((tmp_path / "tokenizer.json").read_text())["normalizer"]["type"] == "Sequence"


def test_bad_rewrites_are_refused():
    with pytest.raises(ValueError, match="`rewrites` must be \\(regex, replacement\\) pairs"):
        mathalign.train_tokenizer(ARITHMETIC_TEXTS, vocab_size=300, rewrites=[("(unclosed", "")])
