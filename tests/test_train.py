"""Every stage trains through the real CLI and TRL trainers, and changes what it should (and only that)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from mathalign.cli import main as cli_main
from mathalign.recipe import parse_recipe

REPO = Path(__file__).resolve().parent.parent
RECIPES = sorted(p for p in (REPO / "recipes").rglob("*.yaml") if "accelerate" not in p.parts
                 and "stages" not in yaml.safe_load(p.read_text()))  # pipeline files are checked in test_pipeline
TINY_DATA = {"num_train": 32, "num_validation": 0, "num_test": 0, "num_test_ood": 0, "seed": 0}
BUILDER = {"pretrain": "pretrain", "sft": "sft", "dpo": "preferences", "grpo": "rl"}


def write_recipe(tmp_path, stage, **keys) -> Path:
    recipe = {
        "stage": stage,
        "dataset_name": BUILDER[stage],
        "data_options": TINY_DATA,
        "output_dir": str(tmp_path / f"run-{stage}"),
        "max_steps": 3,
        "per_device_train_batch_size": 8,
        "learning_rate": 1.0e-3,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "max_length": 64,
        **keys,
    }
    if stage == "grpo":
        recipe.setdefault("num_generations", 4)
        recipe.setdefault("max_completion_length", 8)
        recipe.pop("max_length")
    path = tmp_path / f"{stage}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def train(tmp_path, stage, *overrides, **keys) -> Path:
    recipe = write_recipe(tmp_path, stage, **keys)
    assert cli_main(["train", str(recipe), *overrides]) == 0
    return Path(yaml.safe_load(recipe.read_text())["output_dir"])


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


def losses(run_dir: Path) -> list[float]:
    state = json.loads((run_dir / "trainer_state.json").read_text())
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


def changed(before: dict, after: dict) -> set[str]:
    return {name for name in before if not torch.equal(before[name], after[name])}


@pytest.fixture
def base_model(tiny_model_dir, tmp_path) -> Path:
    """A writable copy of the tiny checkpoint to start SFT/DPO/GRPO from."""
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "base"))


@pytest.fixture(scope="module")
def sft_model(tmp_path_factory, tiny_model_dir) -> Path:
    """The tiny model after a short SFT: it writes `The answer is N.` often enough that GRPO rewards vary."""
    tmp_path = tmp_path_factory.mktemp("sft_model")
    run = train(tmp_path, "sft", model_name_or_path=str(tiny_model_dir), max_steps=60, learning_rate=1.0e-2,
                data_options={**TINY_DATA, "num_train": 256})
    return run


def start_model(stage, base_model, sft_model) -> Path:
    return sft_model if stage == "grpo" else base_model


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_recipe_parses(recipe):
    script_args, model_args, training_args, _ = parse_recipe([str(recipe)])
    assert script_args.stage in ("pretrain", "sft", "dpo", "grpo")
    # No GPU here: the CPU settings are chosen automatically whatever the recipe says.
    assert training_args.use_cpu and not training_args.bf16


def test_pretrain_from_scratch_trains_a_tokenizer_and_the_loss_falls(tmp_path):
    run = train(tmp_path, "pretrain", max_steps=12, learning_rate=1.0e-2, tokenizer_vocab_size=300,
                tokenizer_merge_number_spaces=True, tokenizer_prompt_normalizer="arithmetic",
                mathgpt_config={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4})
    assert (run / "tokenizer.json").exists() and (run / "modeling_mathgpt.py").exists()
    history = losses(run)
    assert history[-1] < history[0] - 0.5, history
    model = AutoModelForCausalLM.from_pretrained(run)
    tokenizer = __import__("transformers").AutoTokenizer.from_pretrained(run)
    assert model.config.vocab_size == len(tokenizer) <= 300  # BPE stops early when the text has no more merges
    assert tokenizer.tokenize(" 17") == ["Ġ1", "7"]  # the recipe's tokenizer_merge_number_spaces
    assert tokenizer("17 + 2 = ?").input_ids == tokenizer("17+2=?").input_ids  # ...and tokenizer_prompt_normalizer
    assert model.config.use_cache  # training turns the cache off; the saved model generates with it
    assert yaml.safe_load((run / "recipe.yaml").read_text())["stage"] == "pretrain"


def test_sft_full_fine_tuning_changes_every_block(tmp_path, base_model):
    run = train(tmp_path, "sft", model_name_or_path=str(base_model))
    before, after = weights(base_model), weights(run)
    assert {n for n in before if ".layers." in n} <= changed(before, after)


def test_sft_with_packing_trains(tmp_path, base_model):
    run = train(tmp_path, "sft", "--packing", "true", model_name_or_path=str(base_model))
    assert changed(weights(base_model), weights(run))


@pytest.mark.parametrize("stage", ["dpo", "grpo"])
def test_lora_trains_adapters_and_leaves_base_weights_alone(tmp_path, base_model, sft_model, stage):
    base_model = start_model(stage, base_model, sft_model)
    extra = {"beta": 0.1} if stage == "grpo" else {}  # GRPO with KL: the reference is the adapter-disabled model
    run = train(tmp_path, stage, model_name_or_path=str(base_model), use_peft=True, lora_r=4, lora_alpha=8,
                lora_target_modules=["q_proj", "v_proj"], learning_rate=1.0e-2, **extra)
    adapter = load_file(str(run / "adapter_model.safetensors"))
    lora_b = [t for n, t in adapter.items() if "lora_B" in n]
    assert lora_b and any(t.abs().sum() > 0 for t in lora_b)  # lora_B starts at zero: nonzero means it learned
    assert not (run / "model.safetensors").exists()  # only the adapter is saved
    from peft import PeftModel

    base = AutoModelForCausalLM.from_pretrained(base_model)
    original = {n: p.clone() for n, p in base.state_dict().items()}
    peft_model = PeftModel.from_pretrained(base, run)
    with peft_model.disable_adapter():
        for name, tensor in peft_model.base_model.model.state_dict().items():
            key = name.replace(".base_layer", "")
            if key in original:
                assert torch.equal(tensor, original[key]), name


@pytest.mark.parametrize("stage", ["dpo", "grpo"])
def test_full_model_alignment_with_an_explicit_reference(tmp_path, base_model, sft_model, stage):
    base_model = start_model(stage, base_model, sft_model)
    extra = {"beta": 0.1} if stage == "grpo" else {}
    run = train(tmp_path, stage, model_name_or_path=str(base_model), learning_rate=1.0e-2, **extra)
    assert changed(weights(base_model), weights(run))
    state = json.loads((run / "trainer_state.json").read_text())
    logged = set().union(*(entry.keys() for entry in state["log_history"]))
    if stage == "dpo":
        assert {"rewards/margins", "rewards/accuracies"} <= logged
    else:
        assert {"kl", "rewards/correctness_reward/mean", "rewards/format_reward/mean"} <= logged


def test_qlora_4bit_trains_on_cpu(tmp_path, base_model):
    run = train(tmp_path, "sft", model_name_or_path=str(base_model), use_peft=True, load_in_4bit=True,
                lora_r=4, lora_alpha=8, lora_target_modules="all-linear", learning_rate=1.0e-2)
    adapter = load_file(str(run / "adapter_model.safetensors"))
    assert any(t.abs().sum() > 0 for n, t in adapter.items() if "lora_B" in n)


def test_merge_gives_the_adapter_model_logits(tmp_path, base_model, tiny_tokenizer):
    run = train(tmp_path, "sft", model_name_or_path=str(base_model), use_peft=True, lora_r=4, lora_alpha=8,
                lora_target_modules="all-linear", learning_rate=1.0e-2)
    assert cli_main(["merge", str(run), str(tmp_path / "merged")]) == 0
    from peft import AutoPeftModelForCausalLM

    ids = tiny_tokenizer(["12+7=? The answer is"], return_tensors="pt").input_ids
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    adapted = AutoPeftModelForCausalLM.from_pretrained(run)
    torch.testing.assert_close(merged(ids).logits, adapted(ids).logits, rtol=1e-4, atol=1e-5)
    # the run's recipe travels with the merged weights (`mathalign chat` reads which family they know from it)
    assert (tmp_path / "merged" / "recipe.yaml").read_text() == (run / "recipe.yaml").read_text()


def test_any_causal_lm_trains_a_tiny_qwen2_built_locally(tmp_path, tiny_tokenizer):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=len(tiny_tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         pad_token_id=tiny_tokenizer.pad_token_id, eos_token_id=tiny_tokenizer.eos_token_id)
    Qwen2ForCausalLM(config).save_pretrained(tmp_path / "qwen")
    tiny_tokenizer.save_pretrained(tmp_path / "qwen")
    run = train(tmp_path, "sft", model_name_or_path=str(tmp_path / "qwen"))
    assert changed(weights(tmp_path / "qwen"), weights(run))


# --- bad input: one line, exit code 2, nothing written -------------------------------------------------------------

@pytest.mark.parametrize(
    "keys, overrides, message",
    [
        ({"max_step": 3}, [], "Did you mean 'max_steps'"),  # misspelled key: closest names suggested
        ({}, ["--learning_rat", "0.1"], "Did you mean 'learning_rate'"),  # misspelled command-line flag
        ({"max_steps": [1, 2]}, [], "'max_steps' .* must be int"),  # wrong type in YAML
        ({"dataset_name": "no/such/dir.jsonl"}, [], "dataset file not found"),  # missing data file
        ({"model_name_or_path": "./missing-model"}, [], "'./missing-model' does not exist"),  # missing checkpoint
        ({"dataset_name": "sft", "stage": "dpo"}, [], "needs the columns"),  # dataset of the wrong shape
        ({"reward_funcs": ["corectness_reward"]}, [], "correctness_reward"),  # unknown reward, closest named
        ({"num_generations": 3}, [], "divisible by num_generations \\(3\\)"),  # batch 8 not divisible by 3
        ({"stage": "ppo"}, [], "unknown stage"),  # not a stage
        ({"stop_at_accuracy": 1.5}, [], "between 0 and 1"),  # a share of problems, not a percentage
        ({"stop_at_accuracy": 0.5}, [], "evaluation split .* missing or empty"),  # nothing held out to check
        ({"stage": "pretrain", "stop_at_accuracy": 0.5, "data_options": {**TINY_DATA, "num_validation": 8}}, [],
         "lacks column"),  # plain text: no problems to answer
    ],
)
def test_bad_recipes_fail_with_one_clear_line(tmp_path, capsys, keys, overrides, message):
    stage = keys.pop("stage", "grpo" if "reward_funcs" in keys or "num_generations" in keys else "sft")
    recipe = write_recipe(tmp_path, "sft" if stage == "ppo" else stage, **keys)
    if stage == "ppo":
        data = yaml.safe_load(recipe.read_text())
        recipe.write_text(yaml.safe_dump({**data, "stage": "ppo"}))
    assert cli_main(["train", str(recipe), *overrides]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and __import__("re").search(message, err[0]), err
    assert not (tmp_path / f"run-{stage}").exists()


@pytest.mark.parametrize("threshold, steps, checks", [(0.0, 2, [2]), (1.0, 6, [2, 4, 6])])
def test_stop_at_accuracy_ends_training_at_the_first_check_that_reaches_it(tmp_path, base_model, caplog,
                                                                          threshold, steps, checks):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with caplog.at_level("WARNING", logger="mathalign.accuracy_stop"):
        run = train(tmp_path, "sft", model_name_or_path=str(base_model), max_steps=6, stop_at_accuracy=threshold,
                    stop_at_accuracy_steps=2, logging_steps=2, report_to="tensorboard",
                    data_options={**TINY_DATA, "num_validation": 16})
    state = json.loads((run / "trainer_state.json").read_text())
    logged = [e for e in state["log_history"] if "eval_greedy_accuracy" in e]
    assert state["global_step"] == steps and [e["step"] for e in logged] == checks
    assert all(0 <= e["eval_greedy_accuracy"] <= 1 for e in logged)
    # The checks reach the reporters as well, and the training logs of the same steps are not lost to them.
    events = EventAccumulator(str(next(run.rglob("events.out.tfevents.*")).parent), size_guidance={"scalars": 0})
    events.Reload()
    written = {s.step: s.value for s in events.Scalars("eval/greedy_accuracy")}
    assert written == pytest.approx({e["step"]: e["eval_greedy_accuracy"] for e in logged})
    assert [s.step for s in events.Scalars("train/loss")] == checks
    assert ("training stops here" if threshold == 0 else "without reaching stop_at_accuracy") in caplog.text
    assert changed(weights(base_model), weights(run))  # what was trained up to the stop is saved


def test_a_failed_run_keeps_what_the_run_directory_held(tmp_path, base_model, capsys):
    run_dir = tmp_path / "run-sft"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("keep me")
    recipe = write_recipe(tmp_path, "sft", model_name_or_path=str(base_model), max_steps=[3])
    assert cli_main(["train", str(recipe)]) == 2
    assert (run_dir / "notes.txt").read_text() == "keep me"


@pytest.mark.slow
def test_ddp_skips_the_unused_parameter_search_for_mathgpt_only(tiny_tokenizer):
    from types import SimpleNamespace

    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from conftest import make_tiny_model
    from mathalign.train import apply_ddp_defaults

    def decided(model, asked=None):
        args = SimpleNamespace(ddp_find_unused_parameters=asked)
        apply_ddp_defaults(args, model)
        return args.ddp_find_unused_parameters

    mathgpt = make_tiny_model(tiny_tokenizer)
    assert decided(mathgpt) is False
    assert decided(get_peft_model(make_tiny_model(tiny_tokenizer), LoraConfig(target_modules="all-linear"))) is False
    assert decided(mathgpt, asked=True) is True  # the recipe's own choice stands
    qwen = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tiny_tokenizer), hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2))
    assert decided(qwen) is None  # transformers decides for other models


def test_two_process_ddp_ends_with_identical_parameters(tmp_path, base_model):
    recipe = write_recipe(tmp_path, "sft", model_name_or_path=str(base_model), max_steps=3)
    script = tmp_path / "ddp_probe.py"
    # Each rank trains, then writes a digest of its own parameters: DDP must keep them identical.
    script.write_text(
        "import hashlib, os, sys, torch\n"
        "from mathalign.train import parse_recipe, main\n"
        "from transformers import Trainer\n"
        "digests = []\n"
        "orig = Trainer.train\n"
        "def train(self, *a, **k):\n"
        "    out = orig(self, *a, **k)\n"
        "    blob = b''.join(p.detach().cpu().numpy().tobytes() for p in self.model.parameters())\n"
        "    rank = int(os.environ.get('RANK', 0)); ws = int(os.environ.get('WORLD_SIZE', 1))\n"
        "    open(f'{sys.argv[2]}/rank{rank}-of-{ws}.txt', 'w').write(hashlib.sha256(blob).hexdigest())\n"
        "    return out\n"
        "Trainer.train = train\n"
        "main(*parse_recipe([sys.argv[1]]))\n"
    )
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               str(script), str(recipe), str(tmp_path)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "OMP_WAIT_POLICY": "PASSIVE"})
    assert out.returncode == 0, out.stderr[-3000:]
    digests = {p.name: p.read_text() for p in tmp_path.glob("rank*-of-2.txt")}
    assert len(digests) == 2 and len(set(digests.values())) == 1, digests


def test_stop_at_accuracy_stops_every_ddp_rank_at_the_same_step(tmp_path, base_model):
    # Each rank checks the same weights on the same problems: a rank that stopped alone would leave the other
    # waiting in an all-reduce, so a hang (the timeout) or a wrong step count is the failure.
    recipe = write_recipe(tmp_path, "sft", model_name_or_path=str(base_model), max_steps=6, stop_at_accuracy=0.0,
                          stop_at_accuracy_steps=2, data_options={**TINY_DATA, "num_validation": 16})
    command = [sys.executable, "-m", "mathalign.cli", "train", str(recipe), "--num_processes", "2"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "OMP_WAIT_POLICY": "PASSIVE"})
    assert out.returncode == 0, out.stderr[-3000:]
    state = json.loads((tmp_path / "run-sft" / "trainer_state.json").read_text())
    assert state["global_step"] == 2


# --- recipe.yaml, launch commands, --help-keys, logging defaults ------------------------------------------------------

def test_recipe_yaml_records_enum_overrides_as_plain_values_that_parse_back(tmp_path, base_model):
    # Enum-valued keys given on the command line (TrainingArguments turns them into enums) and a list key.
    overrides = ["--lr_scheduler_type", "constant", "--save_strategy", "no", "--logging_strategy", "steps",
                 "--optim", "adamw_torch", "--report_to", "none", "--max_steps", "2"]
    run = train(tmp_path, "sft", *overrides, model_name_or_path=str(base_model))
    text = (run / "recipe.yaml").read_text()
    assert "!!python" not in text, text  # plain YAML: readable by any YAML reader, not only PyYAML's unsafe loader
    written = yaml.safe_load(text)
    assert written["lr_scheduler_type"] == "constant" and written["save_strategy"] == "no", written
    assert written["max_steps"] == 2 and written["optim"] == "adamw_torch"
    # The record is itself a recipe: it parses back to the run's settings.
    _, _, original, _ = parse_recipe([str(tmp_path / "sft.yaml"), *overrides])
    _, _, again, _ = parse_recipe([str(run / "recipe.yaml")])
    for key in ("lr_scheduler_type", "save_strategy", "logging_strategy", "optim", "report_to", "max_steps",
                "learning_rate", "output_dir"):
        assert getattr(again, key) == getattr(original, key), key
    # The run was named for the logging integrations: mathalign's project, the output directory's name.
    ran_with = torch.load(run / "training_args.bin", weights_only=False)
    assert (ran_with.project, ran_with.run_name) == ("mathalign", "run-sft")


@pytest.mark.parametrize(
    "value, plain",
    [
        (__import__("transformers").trainer_utils.SchedulerType.CONSTANT, "constant"),  # a str enum
        ([__import__("transformers").trainer_utils.IntervalStrategy.NO], ["no"]),  # enums inside a list
        ((1, 2.5), [1, 2.5]),  # a tuple becomes a YAML list
        ({"a": Path("runs/x")}, {"a": "runs/x"}),  # a path inside a mapping
        (None, None),  # plain values stay as they are
    ],
)
def test_plain_recipe_values_are_safe_yaml(value, plain):
    from mathalign.recipe import plain_recipe

    converted = plain_recipe({"key": value})
    assert converted == {"key": plain}
    assert yaml.safe_load(yaml.safe_dump(converted)) == converted


def test_recipe_yaml_never_records_a_hub_token(tmp_path):
    from mathalign.recipe import plain_recipe

    recipe = write_recipe(tmp_path, "sft")
    *_, resolved = parse_recipe([str(recipe), "--hub_token", "hf_secret"])
    assert "hf_secret" not in yaml.safe_dump(plain_recipe(resolved))


@pytest.mark.parametrize(
    "argv, shows, hides",
    [
        (["--help-keys", "dpo"], ["beta", "use_peft", "dataset_name"], ["num_generations", "packing"]),  # a stage
        (["RECIPE", "--help-keys"], ["num_generations", "reward_funcs"], ["packing"]),  # the recipe's stage (grpo)
        (["--help-keys", "RECIPE"], ["num_generations"], ["packing"]),  # the recipe after the flag
        (["--help-keys"], ["learning_rate", "use_peft", "dataset_name", "--help-keys dpo"],
         ["num_generations", "packing"]),  # no stage: keys every stage has, and how to see the rest
    ],
)
def test_help_keys_with_a_stage_a_recipe_or_neither(tmp_path, capsys, argv, shows, hides):
    recipe = write_recipe(tmp_path, "grpo")
    argv = [str(recipe) if a == "RECIPE" else a for a in argv]
    assert cli_main(["train", *argv]) == 0
    out = capsys.readouterr().out
    listed = {line.split()[0] for line in out.splitlines() if line.startswith("  ")}
    for key in shows:
        assert key in listed or key in out, key
    for key in hides:
        assert key not in listed, key


def test_the_unknown_key_hint_is_a_command_that_works(tmp_path, capsys):
    recipe = write_recipe(tmp_path, "dpo", max_step=3)
    assert cli_main(["train", str(recipe)]) == 2
    err = capsys.readouterr().err
    hint = __import__("re").search(r"`mathalign (train [^`]*)`", err).group(1).split()
    assert cli_main(hint) == 0
    assert "beta = 0.1" in capsys.readouterr().out  # the hint lists the keys of the recipe's stage


@pytest.mark.parametrize(
    "keys, project, run_name",
    [
        ({}, "mathalign", "run-sft"),  # nothing set: mathalign's project, the output directory's name
        ({"project": "mine"}, "mine", "run-sft"),  # the recipe's project wins
        ({"run_name": "lr-1e-3"}, "mathalign", "lr-1e-3"),  # the recipe's run name wins
        ({"project": "huggingface"}, "huggingface", "run-sft"),  # even when it equals TrainingArguments' default
    ],
)
def test_logging_defaults_name_the_project_and_the_run(tmp_path, keys, project, run_name):
    from mathalign.train import apply_logging_defaults

    *_, training_args, recipe = parse_recipe([str(write_recipe(tmp_path, "sft", **keys))])
    apply_logging_defaults(training_args, recipe)
    assert (training_args.project, training_args.run_name) == (project, run_name)


def test_logging_defaults_follow_a_command_line_override(tmp_path):
    from mathalign.train import apply_logging_defaults

    *_, training_args, recipe = parse_recipe([str(write_recipe(tmp_path, "dpo")), "--run_name", "try-2",
                                              "--output_dir", str(tmp_path / "dpo")])
    apply_logging_defaults(training_args, recipe)
    assert (training_args.project, training_args.run_name) == ("mathalign", "try-2")


ACCELERATE_CONFIGS = sorted((REPO / "recipes" / "accelerate").glob("*.yaml"))


@pytest.mark.parametrize("config", ACCELERATE_CONFIGS, ids=lambda p: p.stem)
def test_a_launch_with_a_config_keeps_its_distributed_type(config, monkeypatch):
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    from mathalign import launch
    from mathalign.launch import accelerate_command

    monkeypatch.setattr(launch, "has_accelerator", lambda: True)  # the command as a machine with GPUs builds it

    distributed = yaml.safe_load(config.read_text())["distributed_type"]
    if distributed == "NO":  # one process by design: asking for more is an error, not a silent single process
        with pytest.raises(ValueError, match="--num_processes 2.* without --accelerate_config"):
            accelerate_command("r.yaml", [], 2, config.stem)
        return
    command = accelerate_command("r.yaml", ["--max_steps", "5"], 2, config.stem)
    assert "--multi_gpu" not in command  # it would make accelerate ignore DeepSpeed/FSDP
    launch_args = command[command.index("accelerate.commands.launch") + 1:]
    assert launch_args[launch_args.index("--num_processes") + 1] == "2"
    assert command[-4:] == ["mathalign.train", "r.yaml", "--max_steps", "5"]
    # accelerate's own reading of the command: the config's distributed type, our number of processes.
    args, *_ = _validate_launch_command(launch_command_parser().parse_args(launch_args))
    assert (args.use_deepspeed, args.use_fsdp, args.multi_gpu) == (
        distributed == "DEEPSPEED", distributed == "FSDP", distributed == "MULTI_GPU")
    assert args.num_processes == 2


@pytest.mark.parametrize(
    "num_processes, config, expected",
    [
        (2, None, ["--multi_gpu", "--num_processes", "2"]),  # no config: DDP on GPUs, or gloo on a CPU
        (None, "deepspeed_zero2", []),  # config without --num_processes: the config's own number
        (1, "fsdp", ["--num_processes", "1"]),  # an explicit 1 is passed on as well
    ],
)
def test_launch_flags(num_processes, config, expected, monkeypatch):
    from mathalign import launch
    from mathalign.launch import accelerate_command

    monkeypatch.setattr(launch, "has_accelerator", lambda: True)
    command = accelerate_command("r.yaml", [], num_processes, config)
    launch_args = command[command.index("accelerate.commands.launch") + 1: command.index("-m", 3)]
    if config:
        assert launch_args[:2] == ["--config_file", str(REPO / "recipes" / "accelerate" / f"{config}.yaml")]
        launch_args = launch_args[2:]
    assert launch_args == expected



def test_on_a_cpu_a_config_launch_turns_bf16_off_and_fsdp_is_refused(monkeypatch):
    from mathalign import launch
    from mathalign.errors import RecipeError

    monkeypatch.setattr(launch, "has_accelerator", lambda: False)
    command = launch.accelerate_command("r.yaml", [], 2, "deepspeed_zero2")  # DeepSpeed runs on CPU processes
    assert command[command.index("--mixed_precision") + 1] == "no"
    with pytest.raises(RecipeError, match="FSDP, which accelerate runs on GPUs only"):
        launch.accelerate_command("r.yaml", [], 2, "fsdp")  # would silently train plain DDP
