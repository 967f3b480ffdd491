"""How a training run starts: in this process, or in `accelerate launch` (several processes, or a config).

`mathalign train` and the pipeline both go through here, so a run is launched the same way from either.

Recipes are also launchable as they are, `accelerate launch recipes/dpo.yaml`: accelerate (and torchrun, for each
process) runs the file with Python, and a flat recipe is valid Python as well as YAML (`key: value` is an annotated
assignment, `{...}` and `[...]` are Python displays, `#` starts a comment in both). Its first line,

    launch: str = __import__("mathalign.train").train.run_recipe_file(__file__)

is, to YAML, one more key, which the recipe parser drops; to Python, a statement whose value hands the file and the
command-line overrides to `mathalign.train` and exits, before any other line runs. Python evaluates the value of
`name: type = value` on every version (3.14 made only the annotations lazy), so the line works on 3.10-3.14.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from .errors import RecipeError, UserError



def recipes_dir() -> Path:
    """The shipped recipes: `mathalign/recipes/` in an installed wheel, `recipes/` beside the package in a checkout."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "recipes", package.parent / "recipes"):
        if (candidate / "accelerate").is_dir():
            return candidate
    raise UserError(f"the shipped recipes are missing (looked in {package / 'recipes'} and {package.parent / 'recipes'}); "
                    "reinstall mathalign.")


def shipped_recipe(name: str) -> Path | None:
    """`sft` or `qwen2.5-0.5b/grpo_gsm8k` -> that shipped recipe file, when `name` is not a file here."""
    if Path(name).exists() or not name or name.startswith(("/", ".")):
        return None
    candidate = recipes_dir() / (name if name.endswith(".yaml") else f"{name}.yaml")
    return candidate if candidate.is_file() else None

LAUNCH_KEY = "launch"
LAUNCH_LINE = f'{LAUNCH_KEY}: str = __import__("mathalign.train").train.run_recipe_file(__file__)'
# What YAML reads as the value of the launch key.
LAUNCH_VALUE = LAUNCH_LINE.split(": ", 1)[1]
_COMMENT_OR_BLANK = re.compile(r"^\s*(#.*)?$")


# --- recipes launched as files ---------------------------------------------------------------------------------------

def why_not_launchable(path: str | os.PathLike, text: str | None = None) -> str | None:
    """None when `accelerate launch FILE` can run the recipe file; else one sentence saying why not and what to do."""
    path = Path(path)
    text = path.read_text() if text is None else text
    lines = text.splitlines()
    first = next((line for line in lines if not _COMMENT_OR_BLANK.match(line)), "")
    if first.strip() != LAUNCH_LINE:
        where = "has no launch line" if LAUNCH_LINE not in text else "does not start with its launch line"
        return (f"{path} {where}: make `{LAUNCH_LINE}` its first line (comments may come before it), or run it with "
                f"`mathalign train {path}`.")
    try:
        ast.parse(text, filename=str(path))
    except SyntaxError as err:
        number = err.lineno or 0
        raw = lines[number - 1] if 0 < number <= len(lines) else ""
        line, following = raw.strip(), (lines[number] if number < len(lines) else "")
        if raw[:1].isspace() or line.endswith(":") or following[:1].isspace():  # a YAML block (mapping or list)
            fix = "nested blocks are not Python: write that mapping or list on one line, `key: {a: 1, b: 2}`"
        else:
            fix = "quote values Python cannot read (`\"Qwen/Qwen2.5-0.5B\"`, `\"~\"`, `\"1e-4\"`)"
        return f"{path} line {err.lineno} (`{line}`) is not valid Python, so accelerate cannot run the file: {fix}."
    return None


def drop_launch_key(recipe: dict, path: str | os.PathLike, text: str) -> dict:
    """The recipe without its launch line; refuses a `launch` key that is not the launch line, or a launch line in
    a file Python cannot run (so a file that says it is launchable is)."""
    if LAUNCH_KEY not in recipe:
        return recipe
    if recipe[LAUNCH_KEY] != LAUNCH_VALUE:
        raise RecipeError(f"`{LAUNCH_KEY}` in {path} is reserved for the line that lets `accelerate launch` run the "
                          f"file: `{LAUNCH_LINE}`.")
    reason = why_not_launchable(path, text)
    if reason:
        raise RecipeError(f"{reason} (Or delete the launch line.)")
    return {key: value for key, value in recipe.items() if key != LAUNCH_KEY}


# --- launching through accelerate ------------------------------------------------------------------------------------

def resolve_accelerate_config(name_or_path: str) -> Path:
    """An accelerate config file: a path, or a name from recipes/accelerate/ (`fsdp`, `deepspeed_zero2`, ...)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    configs = recipes_dir() / "accelerate"
    candidate = configs / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    names = sorted(p.stem for p in configs.glob("*.yaml"))
    raise UserError(f"accelerate config {name_or_path!r} not found; give a file or one of {', '.join(names)}.")


def _distributed_type(config: Path) -> str | None:
    try:
        settings = yaml.safe_load(config.read_text())
    except yaml.YAMLError:
        return None  # accelerate reports a broken config itself
    return str(settings.get("distributed_type")) if isinstance(settings, dict) else None


def has_accelerator() -> bool:
    """A GPU (CUDA) or XPU is present: bf16, FSDP and the configs' settings apply."""
    import torch

    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())


def check_num_processes(value) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise RecipeError(f"num_processes must be a whole number >= 1, got {value!r}.")


def needs_launcher(num_processes: int | None, config: str | None) -> bool:
    """Whether a run goes through `accelerate launch` (several processes, or a config) rather than this process."""
    return (num_processes or 1) > 1 or bool(config)


def accelerate_command(recipe: str | None, extra: list[str], num_processes: int | None,
                       config: str | None) -> list[str]:
    """The `accelerate launch ... -m mathalign.train ...` command line for a training run.

    Without a config, N > 1 processes run as DDP (`--multi_gpu`: GPUs, or gloo on a CPU-only machine). With a config,
    only `--num_processes` is passed on: `--multi_gpu` would override the config's DeepSpeed or FSDP setting.
    """
    check_num_processes(num_processes)
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    if config:
        path = resolve_accelerate_config(config)
        command += ["--config_file", str(path)]
        if not has_accelerator():
            if _distributed_type(path) == "FSDP":
                raise RecipeError(
                    f"{path.name} asks for FSDP, which accelerate runs on GPUs only: on this machine it would "
                    "silently train plain DDP. Use --num_processes N without a config (DDP), or deepspeed_zero2 / "
                    "deepspeed_zero3, which run on CPU processes.")
            command += ["--mixed_precision", "no"]  # the configs ask for bf16, ~100x slower than fp32 on CPUs
        if num_processes is not None:
            if num_processes > 1 and _distributed_type(path) == "NO":
                raise RecipeError(
                    f"{path.name} runs a single process (distributed_type: NO); for --num_processes {num_processes} "
                    "train without --accelerate_config (DDP: GPUs, or gloo on a CPU) or with a multi-process config "
                    "(multi_gpu, deepspeed_zero2, deepspeed_zero3, fsdp).")
            command += ["--num_processes", str(num_processes)]
    elif num_processes is not None and num_processes > 1:
        command += ["--multi_gpu", "--num_processes", str(num_processes)]
    command += ["-m", "mathalign.train"]
    return command + ([recipe] if recipe else []) + extra


def launch(recipe: str | None, extra: list[str], num_processes: int | None, config: str | None) -> int:
    """Run a training run in `accelerate launch` and return its exit status."""
    command = accelerate_command(recipe, extra, num_processes, config)
    print("launching:", " ".join(command), flush=True)
    # PyTorch's spinning OpenMP threads slow every process down when several share the CPU cores.
    env = dict(os.environ, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    return subprocess.call(command, env=env)


__all__ = ["LAUNCH_LINE", "accelerate_command", "drop_launch_key", "has_accelerator", "launch", "needs_launcher",
           "recipes_dir", "resolve_accelerate_config", "shipped_recipe", "why_not_launchable"]
