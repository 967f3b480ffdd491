"""Publish models, tokenizers, LoRA adapters and datasets to the Hub, each with a card, and load them anywhere.

    push_model("runs/sft", "me/mathgpt-sft")                   # model + tokenizer + remote code + card
    push_model("runs/lora", "me/mathgpt-lora", base_repo_id="me/mathgpt-base")   # adapter (+ its local base)
    push_dataset("data/sft", "me/mathalign-sft")               # a DatasetDict.save_to_disk folder + its card

Anyone can then load them without mathalign installed:

    AutoModelForCausalLM.from_pretrained("me/mathgpt-sft", trust_remote_code=True)
    AutoPeftModelForCausalLM.from_pretrained("me/mathgpt-lora", trust_remote_code=True)
    load_dataset("me/mathalign-sft")

huggingface_hub does the work: `validate_repo_id`, `HfApi.upload_folder` (run clutter ignored, stale weights deleted,
unchanged files skipped), `ModelCard.from_template` with `ModelCardData` (the YAML front matter the Hub reads).
What this module adds:
- Everything is checked before the first network call: the folder is a model (config.json + safetensors weights,
  the remote-code files its `auto_map` names) or an adapter (adapter_config.json + weights), the repo id is
  `USER/NAME`, a token exists (argument, `HF_TOKEN`, or the one `hf auth login` stored), the process is not offline.
- The endpoint is `HF_ENDPOINT` (read by huggingface_hub when it is imported), so any Hub-compatible server works.
- The card (README.md) is written into the folder too, so the run documents itself. A README you wrote yourself is
  kept: only its metadata is completed.
- An adapter whose base model is a local folder cannot be loaded elsewhere; pass `base_repo_id` and the base is
  pushed there as well (a no-op when it is already up to date) and the uploaded adapter_config.json points at it.
  The local adapter_config.json is left as it is, so local loading keeps working.
- A failed upload raises `HubError` with one line that says what to do; local files are never removed or changed
  (apart from writing the card).
- Datasets have one push path, `push_dataset`: the card, then `DatasetDict.push_to_hub`, which completes its metadata.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path

from .errors import UserError

__all__ = [
    "HubError", "build_model_card", "check_can_push", "check_repo_id", "files_to_push", "push_dataset", "push_model",
    "resolve_model_dir", "resolve_token", "write_model_card",
]

# Where a training run keeps its final model, in the order looked at.
MODEL_SUBFOLDERS = ("", "model", "final")

# Run clutter never pushed: checkpoints, trainer states, logs, caches. upload_folder matches patterns against the
# path in the folder, and a pattern ending in "/" means everything under that folder; "*/" reaches nested ones.
_CLUTTER_FOLDERS = (
    "checkpoint-*", "checkpoints", "checkpoints-*", "runs", "logs", "wandb", "tensorboard", ".git", ".cache",
    "__pycache__", ".ipynb_checkpoints", "model", "final",
)
_CLUTTER_FILES = (
    "optimizer.pt", "optimizer.bin", "scheduler.pt", "scaler.pt", "rng_state*.pth", "training_args.bin",
    "trainer_state.json", "events.out.tfevents*", "*.lock", ".DS_Store", "*.pyc", "*.tmp", "*.part",
)
IGNORE_PATTERNS = tuple(
    [p for name in _CLUTTER_FOLDERS for p in (f"{name}/", f"*/{name}/")]
    + [p for name in _CLUTTER_FILES for p in (name, f"*/{name}")]
)
# Weight files a new push replaces: the old ones are deleted from the repo if the folder no longer has them.
WEIGHT_PATTERNS = ("*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin", "adapter_model.bin")

RECIPE_FILES = ("recipe.yaml", "recipe.yml")
METRICS_FILES = ("metrics.json", "eval/metrics.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
CARD_MARKER = "<!-- mathalign:card -->"  # a README carrying it (see MODEL_CARD_TEMPLATE) is regenerated
# Cards that tools write on their own (mathalign, peft's template, TRL's checkpoint card, the Trainer's): replaced.
GENERATED_CARD_SIGNS = (CARD_MARKER, "[More Information Needed]", "It has been trained using [TRL]",
                        "This model card has been generated automatically")
EXAMPLE_PROMPT = "12+7=?"
# MathGPT weights are trained from scratch on mathalign's generated data, both Apache-2.0 like mathalign itself.
# Anything built on another base model keeps that model's license, which only the user can name (--license).
MATHGPT_LICENSE = "apache-2.0"


class HubError(UserError):
    """A push that cannot happen or did not happen; the message (one line) says what to do."""


# ---------------------------------------------------------------------------------------------------------------
# Checks that run before any network call
# ---------------------------------------------------------------------------------------------------------------


def _is_repo_id(name) -> bool:
    """`USER/NAME` by huggingface_hub's rules (its validator also accepts a bare NAME: a push needs the user)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return isinstance(name, str) and name.count("/") == 1


def check_repo_id(repo_id: str) -> str:
    """Return `repo_id` if it is a well-formed `USER/NAME`, else raise `HubError`."""
    if not _is_repo_id(repo_id):
        raise HubError(
            f"repo id {repo_id!r} is not of the form USER/NAME (letters, digits, '-', '_', '.'; no '--' or '..'; "
            "at most 96 characters; e.g. me/mathgpt-sft)."
        )
    return repo_id


def resolve_token(token: str | None = None) -> str:
    """The token to push with: the argument, else `HF_TOKEN`, else the one `hf auth login` stored."""
    from huggingface_hub import get_token

    token = token or get_token()  # HF_TOKEN, then the stored token (and CI's OIDC token when configured)
    if not token:
        raise HubError("no Hugging Face token: set HF_TOKEN, run `hf auth login`, or pass --token (a token with write "
                       "access).")
    return token


def check_online() -> None:
    from huggingface_hub import constants

    if constants.is_offline_mode():
        raise HubError("HF_HUB_OFFLINE is set, so nothing can be pushed: unset HF_HUB_OFFLINE (and "
                       "TRANSFORMERS_OFFLINE).")


def check_can_push(repo_id: str, token: str | None = None) -> str:
    """Validate a push target before long work (e.g. at the start of training); returns the token to use."""
    check_repo_id(repo_id)
    token = resolve_token(token)
    check_online()
    return token


def _is_model_dir(path: Path) -> bool:
    return (path / "adapter_config.json").is_file() or (path / "config.json").is_file()


def resolve_model_dir(path: str | os.PathLike) -> Path:
    """The folder to push for a model directory or a training run.

    A run keeps its final model at its top level, or in `model/` or `final/`; checkpoints (`checkpoint-N/`) are
    pushed only when named explicitly.
    """
    path = Path(path)
    if not path.is_dir():
        raise HubError(f"{path} is not a directory: pass a model directory or a training run directory.")
    for sub in MODEL_SUBFOLDERS:
        if _is_model_dir(path / sub):
            return path / sub if sub else path
    hint = ""
    checkpoints = sorted(path.glob("checkpoint-*"), key=lambda p: int(p.name[11:]) if p.name[11:].isdigit() else -1)
    if checkpoints:  # the newest by step, not by name (checkpoint-40 after checkpoint-5)
        hint = f" It has checkpoints: push one explicitly, e.g. {checkpoints[-1]}."
    raise HubError(
        f"{path} holds no model: expected config.json (a model) or adapter_config.json (a LoRA adapter) in it or in "
        f"its model/ or final/ subfolder (save with model.save_pretrained(...)).{hint}"
    )


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise HubError(f"cannot read {what} {path}: {err}") from None


def _check_model_files(folder: Path) -> dict:
    """Check a full model folder; returns its config.json."""
    config = _read_json(folder / "config.json", "the model config")
    if not list(folder.glob("*.safetensors")):
        raise HubError(
            f"{folder} has no safetensors weights (model.safetensors): save the model with "
            f"model.save_pretrained({str(folder)!r})."
        )
    for target in (config.get("auto_map") or {}).values():
        target = target[0] if isinstance(target, (list, tuple)) else target
        if not target or "--" in target:  # a "repo--module.Class" reference lives in another repo
            continue
        module_file = target.rsplit(".", 1)[0] + ".py"
        if not (folder / module_file).is_file():
            raise HubError(
                f"{folder}/config.json names remote code {module_file} (auto_map) but the file is missing: re-save the "
                "model with save_pretrained after `import mathalign` so the code files are copied next to the weights."
            )
    return config


def _looks_like_repo_id(name: str, *relative_to: Path) -> bool:
    """A Hub id rather than a local folder: USER/NAME shaped and not an existing path.

    Relative paths in a recipe (`runs/pretrain`) are looked for from the working directory and from every folder
    above the run, so a push from elsewhere still recognises them as local.
    """
    if not _is_repo_id(name) or name.startswith((".", "/")):
        return False
    bases = [Path.cwd()] + [p for base in relative_to for p in (base, *base.resolve().parents)]
    return not any((base / name).exists() for base in dict.fromkeys(bases))


def _adapter_base(folder: Path, base_repo_id: str | None) -> tuple[dict, str, Path | None]:
    """Check an adapter folder; returns (adapter config, base repo id to publish, local base folder to push)."""
    adapter_config = _read_json(folder / "adapter_config.json", "the adapter config")
    if not any((folder / name).is_file() for name in ("adapter_model.safetensors", "adapter_model.bin")):
        raise HubError(
            f"{folder} has adapter_config.json but no adapter_model.safetensors: save with model.save_pretrained(...)."
        )
    base = adapter_config.get("base_model_name_or_path") or ""
    local_base = next((c for c in (Path(base), folder / base) if base and c.is_dir()), None)
    if base_repo_id is not None:
        check_repo_id(base_repo_id)
        if local_base is not None:
            _check_model_files(resolve_model_dir(local_base))
        return adapter_config, base_repo_id, local_base
    if local_base is not None or not _looks_like_repo_id(base, folder):
        raise HubError(
            f"the adapter's base model is the local path {base!r}, which nobody else can download: pass "
            "--base-repo-id USER/NAME (base_repo_id=...) and the base is pushed there too, or use a base from the Hub."
        )
    return adapter_config, base, None


# ---------------------------------------------------------------------------------------------------------------
# Cards: ModelCardData is the front matter, the template below the text
# ---------------------------------------------------------------------------------------------------------------

# Rendered by ModelCard.from_template (Jinja); `card_data` is the YAML of the ModelCardData.
MODEL_CARD_TEMPLATE = """---
{{ card_data }}
---

<!-- mathalign:card -->
# {{ title }}

{{ summary }}

## Usage

```python
{% if adapter -%}
from peft import AutoPeftModelForCausalLM
from transformers import AutoTokenizer
{%- else -%}
from transformers import AutoModelForCausalLM, AutoTokenizer
{%- endif %}

model = {{ auto_class }}.from_pretrained("{{ repo_id }}"{{ trust }})
tokenizer = AutoTokenizer.from_pretrained("{{ tokenizer_repo }}"{{ trust }})

inputs = tokenizer("{{ prompt }}", return_tensors="pt")
outputs = model.generate(**inputs, max_new_tokens=96, do_sample=False)
print(tokenizer.decode(outputs[0], skip_special_tokens=True))
```
{% if adapter %}
To get a plain model without PEFT at inference time: `model = model.merge_and_unload()`.
{% endif %}
{%- if trust %}
`trust_remote_code=True` runs the modeling code stored in \
{{ "the base model's repository" if adapter else "this repository" }} (`configuration_*.py`, `modeling_*.py`); \
pin a `revision=` to freeze it.
{% endif %}
{%- if eval_rows %}
## Evaluation
{% if eval_dataset %}
On `{{ eval_dataset }}` (greedy decoding, exact match of the final answer):
{% endif %}
| split | {{ eval_columns | join(" | ") }} |
|---{% for _ in eval_columns %}|---{% endfor %}|
{% for split, values in eval_rows -%}
| {{ split }} | {{ values | join(" | ") }} |
{% endfor %}
{%- if per_type %}
Accuracy per problem type:

| type | accuracy |
|---|---|
{% for name, value in per_type -%}
| {{ name }} | {{ value }} |
{% endfor %}
{%- endif %}
{%- endif %}
{%- if recipe %}
## Training recipe

```yaml
{{ recipe }}
```
{% endif %}"""


def _find(folder: Path, run_dir: Path, names: tuple[str, ...]) -> Path | None:
    """The first of `names` in the model folder, the run directory, or the run a model/ or final/ folder is in."""
    bases = [folder, run_dir] + ([folder.parent] if folder.name in MODEL_SUBFOLDERS else [])
    for base in dict.fromkeys(bases):
        for name in names:
            if (base / name).is_file():
                return base / name
    return None


def _recipe(folder: Path, run_dir: Path) -> tuple[str | None, dict]:
    path = _find(folder, run_dir, RECIPE_FILES)
    if path is None:
        return None, {}
    import yaml

    text = path.read_text()
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        parsed = None
    return text, parsed if isinstance(parsed, dict) else {}


def _hub_ids(values, *relative_to: Path) -> list[str]:
    values = [values] if isinstance(values, str) else list(values or [])
    return [v for v in values if isinstance(v, str) and _looks_like_repo_id(v, *relative_to)]


def _metric_rows(metrics: dict) -> list[tuple[str, dict]]:
    """(split, scalar metrics) rows from an evaluation's metrics.json (one split or many under `splits`)."""
    splits = metrics.get("splits")
    splits = splits if isinstance(splits, dict) else {metrics.get("split", "test"): metrics}
    rows = [(str(split), {k: v for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
            for split, values in splits.items() if isinstance(values, dict)]
    return [(split, scalars) for split, scalars in rows if scalars]


def _format_number(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _evaluation(metrics: dict) -> dict:
    """The template's evaluation tables, numbers already formatted."""
    rows = _metric_rows(metrics)
    columns = list(dict.fromkeys(k for _, values in rows for k in values))
    per_type = metrics.get("accuracy_per_type")
    return {
        "eval_dataset": metrics.get("dataset"),
        "eval_columns": columns,
        "eval_rows": [(split, [_format_number(values.get(c, "")) for c in columns]) for split, values in rows],
        "per_type": [(k, _format_number(v)) for k, v in per_type.items()] if isinstance(per_type, dict) else [],
    }


def _eval_results(metrics: dict, dataset_ids: list[str]):
    """model-index entries for the card metadata; only when the evaluation dataset is a Hub dataset."""
    from huggingface_hub import EvalResult

    dataset = metrics.get("dataset")
    if not (isinstance(dataset, str) and _looks_like_repo_id(dataset)):  # a local path: use the recipe's dataset
        dataset = dataset_ids[0] if dataset_ids else None
    if dataset is None:
        return None
    results = [
        EvalResult(task_type="text-generation", dataset_type=dataset, dataset_name=dataset, dataset_split=split,
                   metric_type=name, metric_name=name, metric_value=values[name])
        for split, values in _metric_rows(metrics) for name in ("accuracy", "parse_rate") if name in values
    ]
    return results or None


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in TOKENIZER_FILES)


def build_model_card(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    run_dir: str | os.PathLike | None = None,
    base_model: str | None = None,
    datasets: list[str] | None = None,
    license: str | None = None,
):
    """The `huggingface_hub.ModelCard` for a model or adapter folder (metadata + usage, evaluation, recipe).

    Base model, datasets and license come from the arguments, else from the adapter config and the run's
    `recipe.yaml` (only values that name Hub repos, never local paths); a MathGPT's license is mathalign's
    (Apache-2.0). Evaluation results come from `metrics.json` or `eval/metrics.json` in the folder or its run.
    """
    from huggingface_hub import ModelCard, ModelCardData

    folder = Path(folder)
    run_dir = Path(run_dir) if run_dir is not None else folder
    adapter = (folder / "adapter_config.json").is_file()
    config = _read_json(folder / ("adapter_config.json" if adapter else "config.json"), "the config")
    model_config, remote_code = config, bool(config.get("auto_map"))
    if adapter:  # the base model's config says what the weights are
        base_config = Path(config.get("base_model_name_or_path") or "") / "config.json"
        # A base we cannot see (on the Hub) is assumed to need remote code: harmless in the snippet if it does not.
        model_config = _read_json(base_config, "the base config") if base_config.is_file() else {}
        remote_code = bool(model_config.get("auto_map")) or not base_config.is_file()
    recipe_text, recipe = _recipe(folder, run_dir)
    if base_model is None:
        candidates = [config.get("base_model_name_or_path")] if adapter else []
        candidates += [recipe.get(k) for k in ("base_model", "model_name_or_path", "init_from")]
        base_model = next(iter(_hub_ids([c for c in candidates if isinstance(c, str)], folder, run_dir)), None)
    if datasets is None:
        keys = ("hub_dataset_id", "dataset_name", "dataset_id", "datasets", "dataset")
        datasets = list(dict.fromkeys(d for key in keys for d in _hub_ids(recipe.get(key), folder, run_dir)))
    metrics_path = _find(folder, run_dir, METRICS_FILES)
    metrics = _read_json(metrics_path, "the evaluation metrics") if metrics_path else {}
    mathgpt = model_config.get("model_type") == "mathgpt"
    model_name = repo_id.split("/")[-1]

    tags = ["mathalign", "arithmetic"] + (["peft", "lora"] if adapter else [])
    stage = recipe.get("stage") or recipe.get("trainer")
    if isinstance(stage, str) and stage:
        tags += ["trl", stage.lower()]
    data = ModelCardData(
        library_name="peft" if adapter else "transformers", pipeline_tag="text-generation",
        license=license or recipe.get("license") or (MATHGPT_LICENSE if mathgpt else None),
        tags=list(dict.fromkeys(tags)), base_model=base_model, datasets=datasets or None,
    )
    eval_results = _eval_results(metrics, datasets) if metrics else None
    if eval_results:  # model-index needs a model name; without results the key would only clutter the metadata
        data.model_name, data.eval_results = model_name, eval_results

    if adapter:
        what = f"A LoRA adapter for [`{base_model}`](/{base_model})" if base_model else "A LoRA adapter"
    elif mathgpt:
        what = f"MathGPT ({config.get('num_hidden_layers')} layers, width {config.get('hidden_size')}), a small GPT"
    else:
        what = "A small GPT"
    data_note = f" (data: {', '.join(f'`{d}`' for d in datasets)})" if datasets else ""
    return ModelCard.from_template(
        data,
        template_str=MODEL_CARD_TEMPLATE,
        title=model_name,
        summary=f"{what} trained with mathalign on verifiable arithmetic problems{data_note}.",
        adapter=adapter,
        auto_class="AutoPeftModelForCausalLM" if adapter else "AutoModelForCausalLM",
        repo_id=repo_id,
        # An adapter folder without tokenizer files: its users load the base model's tokenizer.
        tokenizer_repo=repo_id if not adapter or _has_tokenizer(folder) else (base_model or repo_id),
        trust=", trust_remote_code=True" if remote_code else "",
        prompt=EXAMPLE_PROMPT,
        recipe=(recipe_text or "").rstrip(),
        **_evaluation(metrics),
    )


def _merge_into_user_card(existing: str, generated) -> str:
    """Keep a hand-written README: complete its metadata from the generated card, never change its text."""
    from huggingface_hub import ModelCard

    if not existing.startswith("---"):  # no metadata block yet: start an empty one (quietly)
        existing = "---\n{}\n---\n" + existing
    card = ModelCard(existing)
    for key, value in generated.data.to_dict().items():
        if key == "tags":
            card.data.tags = list(dict.fromkeys([*(card.data.tags or []), *value]))
        elif getattr(card.data, key, None) in (None, [], "") and value not in (None, [], ""):
            setattr(card.data, key, value)
    return str(card)


def write_model_card(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    run_dir: str | os.PathLike | None = None,
    base_model: str | None = None,
    datasets: list[str] | None = None,
    license: str | None = None,
) -> str:
    """Write the card a push publishes into `folder/README.md` and return its text.

    Cards tools wrote on their own (mathalign's, peft's empty template, the card TRL writes with every checkpoint,
    the Trainer's) are regenerated; a README a person wrote keeps its text and only gets its metadata completed
    (library, tags, base model, datasets, license).
    """
    folder = Path(folder)
    generated = build_model_card(folder, repo_id, run_dir=run_dir, base_model=base_model, datasets=datasets,
                                 license=license)
    text = str(generated)
    readme = folder / "README.md"
    if readme.is_file():
        existing = readme.read_text()
        if existing.strip() and not any(sign in existing for sign in GENERATED_CARD_SIGNS):
            text = _merge_into_user_card(existing, generated)
    with contextlib.suppress(OSError):  # a read-only folder still gets its card on the Hub (see _as_uploaded)
        readme.write_text(text)
    return text


# ---------------------------------------------------------------------------------------------------------------
# Uploading
# ---------------------------------------------------------------------------------------------------------------


def files_to_push(folder: str | os.PathLike) -> list[str]:
    """The paths (relative, POSIX) a push uploads from `folder`: everything but run clutter.

    The same filter `HfApi.upload_folder` applies with IGNORE_PATTERNS, so this is what a push sends.
    """
    from huggingface_hub.utils import filter_repo_objects

    folder = Path(folder)
    paths = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return list(filter_repo_objects(paths, ignore_patterns=list(IGNORE_PATTERNS)))


@contextlib.contextmanager
def _as_uploaded(folder: Path, replaced: dict[str, bytes]):
    """`folder` as the Hub should get it: itself, or, when some files must differ from the local ones (an adapter
    config that points at the Hub copy of its base, a card the read-only folder could not take), a temporary mirror
    of links to its files with those replaced. So a push stays one upload_folder commit and the local files stay
    as they are."""
    replaced = {p: data for p, data in replaced.items() 
                if not (folder / p).is_file() or (folder / p).read_bytes() != data}
    if not replaced:
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="mathalign-push-") as stage:
        for path in [p for p in files_to_push(folder) if p not in replaced]:
            (Path(stage) / path).parent.mkdir(parents=True, exist_ok=True)
            try:
                os.symlink((folder / path).resolve(), Path(stage) / path)
            except OSError:  # no symlinks here (Windows without developer mode): a copy
                shutil.copy2(folder / path, Path(stage) / path)
        for path, data in replaced.items():
            (Path(stage) / path).write_bytes(data)
        yield Path(stage)


def _describe_failure(err: Exception, repo_id: str, retry: str) -> HubError:
    """One line for an exception raised by huggingface_hub/httpx while talking to the Hub."""
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError

    chain, cause = [], err
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    http = next((e for e in chain if isinstance(e, HfHubHTTPError) and e.response is not None), None)
    endpoint = constants.ENDPOINT
    if http is not None:
        status = http.response.status_code
        said = (http.server_message or "").strip().splitlines()
        said = f" ({said[0]})" if said else ""
        if status >= 500:
            return HubError(
                f"{endpoint} failed while pushing to {repo_id} (HTTP {status}){said}; your local files are kept: "
                f"retry later with `{retry}` (files already uploaded are skipped)."
            )
        return HubError({
            401: f"{endpoint} rejected the token (401){said}: set HF_TOKEN to a valid token with write access or run "
                 "`hf auth login`.",
            403: f"no write access to {repo_id} (403){said}: use a token with write access to its namespace, or your "
                 "own USER/NAME.",
            404: f"{repo_id} was not found on {endpoint} (404){said}: check the repo id and that the token can see it.",
        }.get(status, f"pushing to {repo_id} failed (HTTP {status}){said}: fix the cause, then retry `{retry}`."))
    if any(isinstance(e, (ConnectionError, TimeoutError)) or re.search("Connect|Timeout", type(e).__name__)
           for e in chain):
        return HubError(f"cannot reach {endpoint} ({type(err).__name__}): check your connection or HF_ENDPOINT, "
                        f"then retry `{retry}`.")
    first_line = str(err).splitlines()[0] if str(err) else ""
    return HubError(f"pushing to {repo_id} failed: {type(err).__name__}: {first_line}")


def _check_base_on_hub(api, base: str, repo_id: str) -> None:
    """An adapter is only loadable if its base model is: make sure the base repo has a config.json."""
    from huggingface_hub.errors import GatedRepoError

    try:
        found = api.file_exists(base, "config.json")
    except GatedRepoError:
        return  # gated means it exists; users request access to it as they would for the base alone
    except Exception as err:
        raise _describe_failure(err, base, f"mathalign push ... --repo-id {repo_id}") from err
    if not found:
        raise HubError(
            f"the adapter's base model {base} is not on {api.endpoint} (no config.json there): push the base first "
            f"(mathalign push BASE_DIR --repo-id {base}) or pass --base-repo-id with the repo that holds it."
        )


def push_model(
    model_dir: str | os.PathLike,
    repo_id: str,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
    *,
    base_repo_id: str | None = None,
    base_model: str | None = None,
    datasets: list[str] | None = None,
    license: str | None = None,
) -> str:
    """Push a model (or LoRA adapter) folder or training run to the Hub with a model card; returns the repo URL.

    Args:
        model_dir: a `save_pretrained` folder, or a run directory whose model is at the top or in `model/`/`final/`.
        repo_id: `USER/NAME` (created if missing, `private` on creation).
        token: defaults to `HF_TOKEN`, then the token `hf auth login` stored.
        commit_message: defaults to "Upload <folder name> with mathalign".
        base_repo_id: for an adapter whose base model is a local folder: where the base lives (or is pushed to).
        base_model, datasets, license: card metadata; by default read from the adapter config and the run's
            recipe.yaml (a MathGPT's license is Apache-2.0).

    Raises:
        HubError: bad input (before any network call) or a failed upload (local files kept).

    >>> push_model("runs/sft", "me/mathgpt-sft")  # doctest: +SKIP
    'https://huggingface.co/me/mathgpt-sft'
    """
    run_dir = Path(model_dir)
    folder = resolve_model_dir(run_dir)
    check_repo_id(repo_id)
    token = resolve_token(token)
    adapter = (folder / "adapter_config.json").is_file()
    replaced: dict[str, bytes] = {}  # files the Hub gets with other content than the local ones
    base_id = local_base = None
    if adapter:
        adapter_config, base_id, local_base = _adapter_base(folder, base_repo_id)
        if base_id != adapter_config.get("base_model_name_or_path"):
            # Point the *uploaded* config at the Hub copy of the base; the local file keeps its local path.
            replaced["adapter_config.json"] = (
                json.dumps({**adapter_config, "base_model_name_or_path": base_id}, indent=2) + "\n"
            ).encode()
        base_model = base_model or base_id
    else:
        _check_model_files(folder)
        if not _has_tokenizer(folder):
            warnings.warn(f"{folder} has no tokenizer files: the card's usage snippet needs one "
                          f"(tokenizer.save_pretrained({str(folder)!r})).", stacklevel=2)
    check_online()

    card = write_model_card(folder, repo_id, run_dir=run_dir, base_model=base_model, datasets=datasets, license=license)
    replaced["README.md"] = card.encode()  # differs from the folder's only where the folder could not be written

    from huggingface_hub import HfApi

    api = HfApi(token=token)
    if local_base is not None:
        push_model(local_base, base_repo_id, private=private, token=token)
    elif adapter:
        _check_base_on_hub(api, base_id, repo_id)
    name = folder.name if folder.name not in MODEL_SUBFOLDERS else run_dir.name
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True)
        with _as_uploaded(folder, replaced) as upload:
            api.upload_folder(
                repo_id=repo_id,
                folder_path=upload,
                commit_message=commit_message or f"Upload {name} with mathalign",
                ignore_patterns=list(IGNORE_PATTERNS),  # a new list: upload_folder appends its defaults to it
                delete_patterns=list(WEIGHT_PATTERNS),
            )
    except Exception as err:  # network/server failures become one actionable line
        raise _describe_failure(err, repo_id, f"mathalign push {run_dir} --repo-id {repo_id}") from err
    return str(url)


# ---------------------------------------------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------------------------------------------


def _check_saved_dataset(path: Path) -> None:
    if not path.is_dir():
        raise HubError(f"{path} is not a directory: pass a folder written by DatasetDict.save_to_disk.")
    if not ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
        raise HubError(
            f"{path} is not a saved dataset (no dataset_dict.json or state.json): build it with "
            "`mathalign data build ...` or save it with DatasetDict.save_to_disk."
        )


def push_dataset(
    dataset,
    repo_id: str,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
    *,
    card=None,
) -> str:
    """Push a `DatasetDict` (or a `save_to_disk` folder of one) to a Hub dataset repo; returns the repo URL.

    The dataset card is `card` (a `DatasetCard` or its text), else the folder's README.md. It is committed first;
    `DatasetDict.push_to_hub` then completes its metadata with the features and splits it uploaded, so
    `datasets.load_dataset(repo_id)` gives back the same rows and features (ClassLabels included).

    >>> push_dataset("data/sft", "me/mathalign-sft")  # doctest: +SKIP
    'https://huggingface.co/datasets/me/mathalign-sft'
    """
    from datasets import Dataset, DatasetDict, load_from_disk
    from huggingface_hub import DatasetCard, HfApi

    source = Path(dataset) if isinstance(dataset, (str, os.PathLike)) else None
    if source is not None:
        _check_saved_dataset(source)
    elif not isinstance(dataset, (Dataset, DatasetDict)):
        raise HubError(f"push_dataset takes a DatasetDict, a Dataset or a save_to_disk folder, not "
                       f"{type(dataset).__name__}.")
    check_repo_id(repo_id)
    token = resolve_token(token)
    check_online()
    if source is not None:
        dataset = load_from_disk(str(source))
        if card is None and (source / "README.md").is_file():
            card = (source / "README.md").read_text()
    if card is not None and not isinstance(card, DatasetCard):
        card = DatasetCard(str(card))

    api = HfApi(token=token)
    message = commit_message or f"Upload {source.name if source else repo_id.split('/')[-1]} with mathalign"
    retry = f"mathalign push-dataset {source or '<dir>'} --repo-id {repo_id}"
    try:
        url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if card is not None:  # first, so that push_to_hub merges its features/splits metadata into it
            card.push_to_hub(repo_id, token=token, repo_type="dataset", commit_message=f"{message} (dataset card)")
        dataset.push_to_hub(repo_id, private=private, token=token, commit_message=message)
    except Exception as err:
        raise _describe_failure(err, repo_id, retry) from err
    return str(url)
