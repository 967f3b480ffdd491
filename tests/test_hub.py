"""Publishing: round trips through a local Hub-compatible server (tests/hub_server.py), no internet.

One subprocess pushes a training run, a LoRA adapter and a dataset with the CLI; one fresh subprocess that
cannot import mathalign loads them back (remote code, AutoPeftModelForCausalLM, load_dataset); the tests compare
what came back with what went up. Failures and bad input are checked separately.
"""

import hashlib
import json
import re

import pytest
import torch
from datasets import load_from_disk
from huggingface_hub import DatasetCard, ModelCard
from transformers import AutoModelForCausalLM

import mathalign  # noqa: F401  (registers MathGPT with the Auto classes in this process)
from conftest import make_tiny_model
from hub_fixtures import (
    HUB_TOKEN,
    HUB_USER,
    hub_env,
    hub_in_process,
    hub_server,
    hub_subprocess_env,
    run_python,
)  # noqa: F401
from mathalign.cli import main as cli_main
from mathalign.hub import (
    HubError,
    check_repo_id,
    files_to_push,
    push_dataset,
    push_model,
    resolve_model_dir,
    write_model_card,
)

MODEL_REPO = f"{HUB_USER}/tiny-mathgpt"
ADAPTER_REPO = f"{HUB_USER}/tiny-mathgpt-lora"
DATA_REPO = f"{HUB_USER}/tiny-arithmetic"
PROMPT = "12+7=? The answer is"

RECIPE = f"""\
# Model
model_name_or_path: {HUB_USER}/tiny-pretrained
stage: sft
# Data
dataset_name: {DATA_REPO}
learning_rate: 1.0e-3
"""
METRICS = {
    "dataset": DATA_REPO,
    "split": "test",
    "accuracy": 0.5,
    "parse_rate": 0.75,
    "accuracy_per_type": {"a_plus_b": 1.0, "a_minus_b": 0.0},
    "splits": {"test": {"accuracy": 0.5, "parse_rate": 0.75}, "test_ood": {"accuracy": 0.25, "parse_rate": 0.5}},
}


def file_digests(folder) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def check_subprocess(result, what: str):
    assert result.returncode == 0, f"{what} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"


# ----------------------------------------------------------------------------------------------- things to publish


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("hub")


@pytest.fixture(scope="module")
def run_dir(workdir, tiny_tokenizer):
    """A finished training run: the model at the top, its recipe and evaluation, and clutter that is never pushed."""
    run = workdir / "run"
    make_tiny_model(tiny_tokenizer, seed=3).save_pretrained(run)
    tiny_tokenizer.save_pretrained(run)
    (run / "recipe.yaml").write_text(RECIPE)
    (run / "eval").mkdir()
    (run / "eval" / "metrics.json").write_text(json.dumps(METRICS))
    (run / "checkpoint-2").mkdir()
    (run / "checkpoint-2" / "optimizer.pt").write_bytes(b"optimizer state")
    (run / "runs").mkdir()
    (run / "runs" / "events.out.tfevents.1").write_bytes(b"tensorboard")
    (run / "training_args.bin").write_bytes(b"training args")
    return run


@pytest.fixture(scope="module")
def adapter_dir(workdir, run_dir):
    """A LoRA adapter (q_proj/v_proj, non-zero B so it changes the logits) whose base is the local run folder."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(run_dir)
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM", init_lora_weights=False
    )
    path = workdir / "lora"
    get_peft_model(base, config).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def data_dir(workdir):
    """mathalign's SFT data (ClassLabel `type`; train, test, test_ood), saved with its card as `data build` does."""
    from data_builders import core, sft

    options = dict(task="arithmetic", num_train=12, num_validation=0, num_test=4, num_test_ood=4, seed=0)
    data = sft.build(progress=False, **options)
    card = core.make_card(data, "sft", options, "mathalign data build sft ...", sft.SUMMARY)
    return core.save(data, workdir / "data", card)


@pytest.fixture(scope="module")
def failing_dirs(workdir, run_dir, adapter_dir, tiny_tokenizer):
    """Folders for the pushes that fail: a plain model copy, and an adapter whose local base folder is gone."""
    model = workdir / "failing"
    AutoModelForCausalLM.from_pretrained(run_dir).save_pretrained(model)
    tiny_tokenizer.save_pretrained(model)
    orphan = workdir / "orphan_adapter"
    orphan.mkdir()
    (orphan / "adapter_model.safetensors").write_bytes((adapter_dir / "adapter_model.safetensors").read_bytes())
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    (orphan / "adapter_config.json").write_text(
        json.dumps({**config, "base_model_name_or_path": str(workdir / "gone")})
    )
    return {"failing": model, "orphan_adapter": orphan}


# Every push, done by one subprocess with the CLI: (name, argv, exit code). The run's adapter has the run as its
# base, already on the Hub; the dataset goes private; two pushes fail (see FAILURES).
def push_commands(run_dir, adapter_dir, data_dir, folders):
    return [
        ("model", ["push", str(run_dir), "--repo-id", MODEL_REPO]),
        ("adapter", ["push", str(adapter_dir), "--repo-id", ADAPTER_REPO, "--base-repo-id", MODEL_REPO]),
        ("dataset", ["push-dataset", str(data_dir), "--repo-id", DATA_REPO, "--private"]),
        *[
            (
                case,
                ["push", str(folders[folder]), "--repo-id", repo, "--token", token]
                + (["--base-repo-id", f"{HUB_USER}/no-such-base"] if folder == "orphan_adapter" else []),
            )
            for case, folder, repo, token, _ in FAILURES
        ],
    ]


FAILURES = [
    # The server fails the commit with a 500: one line that says to retry; the repo stays as it was.
    ("commit fails", "failing", f"{HUB_USER}/will-fail", HUB_TOKEN, "HTTP 500"),
    # A token the server does not know: one line that says to fix the token.
    ("token rejected", "failing", f"{HUB_USER}/bad-token", "hf_not_a_token", "rejected the token"),
    # An adapter pointed at a base repo that does not exist: it could never load, so it is not pushed.
    ("base not on the Hub", "orphan_adapter", f"{HUB_USER}/orphan-lora", HUB_TOKEN, "push the base first"),
]


@pytest.fixture(scope="module")
def published(hub_server, workdir, run_dir, adapter_dir, data_dir, failing_dirs):
    """Run every push of `push_commands` in one subprocess; returns {name: {"code", "stderr"}} and local state."""
    before = {"adapter_config": (adapter_dir / "adapter_config.json").read_text()}
    before.update({name: file_digests(path) for name, path in failing_dirs.items()})
    script = f"""
import contextlib, io, json
from mathalign.cli import main
outcomes = {{}}
for name, argv in {push_commands(run_dir, adapter_dir, data_dir, failing_dirs)!r}:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    outcomes[name] = {{"code": code, "stderr": err.getvalue()}}
print(json.dumps(outcomes))
"""
    hub_server.fail[f"commit:{HUB_USER}/will-fail"] = 500
    try:
        result = run_python(script, hub_subprocess_env(hub_server, workdir / "hf_home_push"))
    finally:
        hub_server.fail.clear()
    check_subprocess(result, "pushing")
    outcomes = json.loads(result.stdout.strip().splitlines()[-1])
    for name in ("model", "adapter", "dataset"):
        assert outcomes[name]["code"] == 0, (name, outcomes[name]["stderr"])
    return {"outcomes": outcomes, "before": before}


@pytest.fixture(scope="module")
def downloaded(hub_server, workdir, published):
    """Load everything back in a fresh process where `import mathalign` fails."""
    out = workdir / "downloaded"
    out.mkdir()
    script = f"""
import sys
sys.modules["mathalign"] = None  # everything must come from the Hub repos, remote code included
import json, torch
from datasets import load_dataset
from peft import AutoPeftModelForCausalLM
from transformers import AutoModelForCausalLM, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained({MODEL_REPO!r}, trust_remote_code=True)
model = AutoModelForCausalLM.from_pretrained({MODEL_REPO!r}, trust_remote_code=True)
ids = tokenizer({PROMPT!r}, return_tensors="pt").input_ids
adapter = AutoPeftModelForCausalLM.from_pretrained({ADAPTER_REPO!r}, trust_remote_code=True)
with torch.no_grad():
    torch.save(
        {{
            "ids": ids,
            "logits": model(ids).logits,
            "generated": model.generate(ids, max_new_tokens=4, do_sample=False),
            "adapter_logits": adapter(input_ids=ids).logits,
        }},
        {str(out / "tensors.pt")!r},
    )
load_dataset({DATA_REPO!r}).save_to_disk({str(out / "data")!r})
print(json.dumps({{"model_class": type(model).__module__ + "." + type(model).__name__}}))
"""
    result = run_python(script, hub_subprocess_env(hub_server, workdir / "hf_home_pull"), cwd=workdir)
    check_subprocess(result, "loading from the Hub without mathalign")
    info = json.loads(result.stdout.strip().splitlines()[-1])
    return {"tensors": torch.load(out / "tensors.pt"), "data": load_from_disk(out / "data"), **info}


# ----------------------------------------------------------------------------------------------- round trips


def test_model_loads_without_mathalign_with_identical_logits(downloaded, run_dir, tiny_tokenizer):
    local = AutoModelForCausalLM.from_pretrained(run_dir).eval()
    tensors = downloaded["tensors"]
    assert downloaded["model_class"].startswith("transformers_modules.")  # the repo's code, not an installed package
    assert tensors["ids"].tolist() == tiny_tokenizer(PROMPT, return_tensors="pt").input_ids.tolist()
    with torch.no_grad():
        assert torch.equal(tensors["logits"], local(tensors["ids"]).logits)
        assert torch.equal(tensors["generated"], local.generate(tensors["ids"], max_new_tokens=4, do_sample=False))


def test_pushed_files_are_the_model_not_the_run_clutter(published, hub_server, run_dir):
    files = set(hub_server.repos[("model", MODEL_REPO)].head.files)
    expected = {
        "config.json",
        "model.safetensors",
        "generation_config.json",
        "configuration_mathgpt.py",
        "modeling_mathgpt.py",
        "tokenizer.json",
        "tokenizer_config.json",
        "README.md",
        "recipe.yaml",
        "eval/metrics.json",
    }
    assert expected <= files
    clutter = {"checkpoint-2/optimizer.pt", "runs/events.out.tfevents.1", "training_args.bin"}
    assert not clutter & files
    config = json.loads(hub_server.read_file("model", MODEL_REPO, "config.json"))
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_mathgpt.MathGPTForCausalLM"
    # The card written into the run is the one published.
    assert hub_server.read_file("model", MODEL_REPO, "README.md").decode() == (run_dir / "README.md").read_text()


def test_model_card_has_metadata_usage_recipe_and_evaluation(published, run_dir):
    card = ModelCard.load(run_dir / "README.md")  # the card published (see above), front matter parsed by the Hub's code
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "text-generation"
    assert card.data.license == "apache-2.0"  # a MathGPT trained by mathalign
    assert "mathalign" in card.data.tags and "sft" in card.data.tags
    assert card.data.base_model == f"{HUB_USER}/tiny-pretrained"  # from the recipe
    assert card.data.datasets == [DATA_REPO]
    assert card.data.model_name == "tiny-mathgpt"  # model-index needs the name
    results = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert results[("test", "accuracy")] == 0.5 and results[("test_ood", "parse_rate")] == 0.5
    assert f'AutoModelForCausalLM.from_pretrained("{MODEL_REPO}", trust_remote_code=True)' in card.text
    assert f'AutoTokenizer.from_pretrained("{MODEL_REPO}", trust_remote_code=True)' in card.text
    assert "model.generate(" in card.text
    assert "learning_rate: 1.0e-3" in card.text  # the recipe, verbatim
    assert "| a_minus_b | 0 |" in card.text  # per-type accuracy table


def test_adapter_loads_with_auto_peft_model(downloaded, published, hub_server, adapter_dir):
    from peft import AutoPeftModelForCausalLM

    local = AutoPeftModelForCausalLM.from_pretrained(adapter_dir).eval()
    tensors = downloaded["tensors"]
    with torch.no_grad():
        expected = local(input_ids=tensors["ids"]).logits
    assert torch.equal(tensors["adapter_logits"], expected)
    assert not torch.equal(tensors["adapter_logits"], tensors["logits"])  # the adapter really does something
    # The published config points at the Hub base; the local one still at the local folder.
    remote = json.loads(hub_server.read_file("model", ADAPTER_REPO, "adapter_config.json"))
    assert remote["base_model_name_or_path"] == MODEL_REPO
    assert (adapter_dir / "adapter_config.json").read_text() == published["before"]["adapter_config"]
    card = ModelCard(hub_server.read_file("model", ADAPTER_REPO, "README.md").decode())
    assert card.data.library_name == "peft" and card.data.base_model == MODEL_REPO
    assert card.data.pipeline_tag == "text-generation" and card.data.license == "apache-2.0"  # a MathGPT base
    assert {"mathalign", "peft", "lora"} <= set(card.data.tags)
    assert f'AutoPeftModelForCausalLM.from_pretrained("{ADAPTER_REPO}", trust_remote_code=True)' in card.text
    # Pushing the (unchanged) base again made no new commit: initial commit + the run's push.
    assert len(hub_server.repos[("model", MODEL_REPO)].commits) == 2
    # The adapter went up in one commit, its rewritten config included.
    assert len(hub_server.repos[("model", ADAPTER_REPO)].commits) == 2


def test_dataset_round_trip_keeps_rows_features_and_card(downloaded, hub_server, data_dir):
    original, back = load_from_disk(data_dir), downloaded["data"]
    assert set(back) == set(original)
    for split in original:
        assert back[split].features == original[split].features  # ClassLabel `type` included
        assert back[split].to_list() == original[split].to_list()
    readme = hub_server.read_file("dataset", DATA_REPO, "README.md").decode()
    assert (data_dir / "README.md").read_text().split("---\n", 2)[2] in readme  # the builder's card text, verbatim
    card = DatasetCard(readme)
    assert card.data.license == "apache-2.0" and "mathalign" in card.data.tags  # the builder's metadata too
    assert "type_counts" in card.data.mathalign
    features = {f["name"]: f for f in card.data.dataset_info["features"]}  # as push_to_hub wrote them
    assert "b_over_x" in features["type"]["dtype"]["class_label"]["names"].values()
    assert {s["name"] for s in card.data.dataset_info["splits"]} == set(original)
    assert len(hub_server.repos[("dataset", DATA_REPO)].commits) == 3  # initial, the card, then data + metadata
    assert hub_server.repos[("dataset", DATA_REPO)].private


# ----------------------------------------------------------------------------------------------- failures
@pytest.mark.parametrize("case, folder, repo_id, token, expected", FAILURES)
def test_failed_push_is_one_clear_line_and_keeps_local_files(
    published, hub_server, failing_dirs, case, folder, repo_id, token, expected
):
    outcome = published["outcomes"][case]
    message = outcome["stderr"].strip()
    assert outcome["code"] == 2
    assert message.startswith("mathalign push: error:") and "\n" not in message, message
    assert expected in message
    after = file_digests(failing_dirs[folder])
    assert {k: v for k, v in after.items() if k != "README.md"} == published["before"][folder]  # nothing lost
    repo = hub_server.repos.get(("model", repo_id))
    assert repo is None or len(repo.commits) == 1  # nothing half-pushed: at most the empty initial commit


# ----------------------------------------------------------------------------------------------- bad input


@pytest.fixture
def bad_inputs(tmp_path, run_dir, adapter_dir, data_dir):
    (tmp_path / "empty").mkdir()
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((run_dir / "config.json").read_text())
    return {
        "model": run_dir,
        "empty": tmp_path / "empty",
        "missing": tmp_path / "missing",
        "no_weights": no_weights,
        "adapter": adapter_dir,
        "data": data_dir,
    }


BAD_INPUT = [
    # No token anywhere (argument, HF_TOKEN, stored login): say how to get one.
    (push_model, "model", MODEL_REPO, "no token", "no Hugging Face token"),
    # Offline mode (HF_HUB_OFFLINE=1): nothing can be pushed, say which variable to unset.
    (push_model, "model", MODEL_REPO, "offline", "unset HF_HUB_OFFLINE"),
    # A repo id without its USER/ part.
    (push_model, "model", "tiny-mathgpt", "", "USER/NAME"),
    # A repo id with one part too many.
    (push_model, "model", f"{HUB_USER}/a/b", "", "USER/NAME"),
    # A folder with no model in it.
    (push_model, "empty", MODEL_REPO, "", "holds no model"),
    # A path that does not exist.
    (push_model, "missing", MODEL_REPO, "", "is not a directory"),
    # A config without weights.
    (push_model, "no_weights", MODEL_REPO, "", "no safetensors weights"),
    # An adapter whose base is a local folder nobody else can download.
    (push_model, "adapter", ADAPTER_REPO, "", "--base-repo-id"),
    # A folder that is not a saved dataset.
    (push_dataset, "empty", DATA_REPO, "", "not a saved dataset"),
    # A dataset pushed to a malformed repo id.
    (push_dataset, "data", "a b/c", "", "USER/NAME"),
]


@pytest.mark.parametrize("push, folder, repo_id, setup, message", BAD_INPUT)
def test_bad_input_fails_before_any_network_call(
    push, folder, repo_id, setup, message, bad_inputs, hub_in_process, monkeypatch
):
    from huggingface_hub import constants

    if setup == "no token":
        for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
            monkeypatch.delenv(name, raising=False)
    if setup == "offline":
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    path = bad_inputs[folder]
    before = file_digests(path) if path.exists() else None
    seen = len(hub_in_process.requests)
    with pytest.raises(HubError, match=re.escape(message)):
        push(path, repo_id)
    assert len(hub_in_process.requests) == seen  # the server heard nothing
    assert (file_digests(path) if path.exists() else None) == before  # not even the card was written


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys, hub_in_process):
    code = cli_main(["push", str(tmp_path), "--repo-id", MODEL_REPO])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "holds no model" in err


# ----------------------------------------------------------------------------------------------- run folders and cards

RUN_LAYOUTS = [
    # The model saved at the top of the run.
    ("", ""),
    # The final model in model/ next to checkpoints.
    ("model", "model"),
    # The final model in final/.
    ("final", "final"),
]


@pytest.mark.parametrize("subfolder, expected", RUN_LAYOUTS)
def test_resolve_model_dir_finds_the_final_model(tmp_path, subfolder, expected):
    (tmp_path / "checkpoint-10").mkdir()
    (tmp_path / "checkpoint-10" / "config.json").write_text("{}")
    (tmp_path / subfolder).mkdir(exist_ok=True)
    (tmp_path / subfolder / "config.json").write_text("{}")
    assert resolve_model_dir(tmp_path) == (tmp_path / expected if expected else tmp_path)


def test_resolve_model_dir_names_the_checkpoint_to_push(tmp_path):
    for step in (5, 40):  # numeric order: checkpoint-40 is the newest
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "config.json").write_text("{}")
    with pytest.raises(HubError, match="checkpoint-40"):
        resolve_model_dir(tmp_path)


README_CASES = [
    # No README yet: the generated card.
    (None, ["<!-- mathalign:card -->", "trust_remote_code=True"], []),
    # peft's empty template: replaced by the generated card.
    (
        "# Model Card for Model ID\n\n[More Information Needed]\n",
        ["<!-- mathalign:card -->"],
        ["[More Information Needed]"],
    ),
    # The card TRL writes into output_dir at every checkpoint: replaced.
    (
        "# Model Card for run\n\nIt has been trained using [TRL](https://github.com/huggingface/trl).\n",
        ["<!-- mathalign:card -->"],
        ["[TRL]"],
    ),
    # A README someone wrote: text kept word for word, metadata completed.
    (
        "# My model\n\nHand-written notes.\n",
        ["Hand-written notes.", "library_name: transformers", "- mathalign"],
        ["mathalign:card"],
    ),
]


@pytest.mark.parametrize("existing, present, absent", README_CASES)
def test_write_model_card_keeps_a_hand_written_readme(tmp_path, tiny_model_dir, existing, present, absent):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    if existing is not None:
        (folder / "README.md").write_text(existing)
    text = write_model_card(folder, MODEL_REPO)
    assert (folder / "README.md").read_text() == text
    assert all(p in text for p in present) and not any(a in text for a in absent)
    data = ModelCard.load(folder / "README.md").data  # front matter the Hub can read, hand-written card included
    assert data.library_name == "transformers" and data.pipeline_tag == "text-generation"
    assert "mathalign" in data.tags and data.license == "apache-2.0"


LICENSE_CASES = [
    # A MathGPT trained by mathalign: mathalign's license.
    ("mathgpt", None, "", "apache-2.0"),
    # The license a user passes wins.
    ("mathgpt", "mit", "", "mit"),
    # Another architecture (a Hub base such as Qwen): its license is unknown, so none is claimed...
    ("qwen2", None, "", None),
    # ...unless the recipe names it.
    ("qwen2", None, "license: other\n", "other"),
]


@pytest.mark.parametrize("model_type, license, recipe, expected", LICENSE_CASES)
def test_model_card_license(tmp_path, model_type, license, recipe, expected):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": model_type}))
    (tmp_path / "recipe.yaml").write_text(recipe)
    write_model_card(tmp_path, MODEL_REPO, license=license)
    assert ModelCard.load(tmp_path / "README.md").data.license == expected


REPO_IDS = [
    # USER/NAME with the characters the Hub allows.
    ("me/mathgpt-sft_v1.2", True),
    # No USER/ part: a push needs the namespace.
    ("mathgpt", False),
    # One part too many.
    ("me/a/b", False),
    # "--" and ".." are reserved by the Hub.
    ("me/a--b", False),
    ("me/a..b", False),
    # Spaces, a leading "-", ".git" at the end, more than 96 characters.
    ("me/a b", False),
    ("me/-ab", False),
    ("me/model.git", False),
    ("me/" + "a" * 97, False),
]


@pytest.mark.parametrize("repo_id, valid", REPO_IDS)
def test_check_repo_id(repo_id, valid):
    if valid:
        assert check_repo_id(repo_id) == repo_id
    else:
        with pytest.raises(HubError, match="USER/NAME"):
            check_repo_id(repo_id)


def test_files_to_push_leaves_run_clutter_out(tmp_path):
    pushed = ["README.md", "config.json", "eval/metrics.json", "model.safetensors", "modelling_notes/a.txt"]
    clutter = ["checkpoint-2/model.safetensors", "runs/events.out.tfevents.1", "training_args.bin", "x/optimizer.pt",
               "eval/checkpoint-3/config.json", "model/config.json", ".git/HEAD", "logs/train.log"]
    for path in pushed + clutter:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x")
    assert files_to_push(tmp_path) == pushed


def test_public_names_are_explicit_and_sorted():
    import mathalign.hub as hub

    assert hub.__all__ == sorted(hub.__all__) and all(callable(getattr(hub, name)) for name in hub.__all__)
