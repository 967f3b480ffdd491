"""Does the TRL path cost training speed? Tokens/s of `SFTTrainer` vs a plain PyTorch loop doing the same work.

    python benchmarks/train_throughput.py                     # the default pipeline's pretrain stage (~1 minute)
    python benchmarks/train_throughput.py --breakdown         # also: where a step's CPU time goes, part by part
    python benchmarks/train_throughput.py --stage sft         # completion-only loss, as in the pipeline's SFT stage
    python benchmarks/train_throughput.py --packing           # padding-free packed batches (TRL `packing: true`)
    python benchmarks/train_throughput.py --set logging_steps=1   # try a recipe setting
    python benchmarks/train_throughput.py --steps 20 --json   # one JSON object on stdout

The TRL side is the real path: the stage's keys come from recipes/pipeline.yaml through `parse_recipe`, and data,
tokenizer, model and trainer are made by the functions `mathalign train` calls (`load_data`,
`load_or_train_tokenizer`, `build_model`, `make_trainer`), so the collator, logging and TRL's per-step loss and
metrics all run as in a pipeline run (fp32 on the CPU). The plain loop trains a copy of the same initial model on
the same batches (the Trainer's own shuffled order, padded by the same collator, loaded by a DataLoader) with the
same AdamW (lr, betas, eps, weight-decay groups, fused kernel), gradient clipping (`max_grad_norm`) and
learning-rate schedule.

Each side runs --warmup_steps untimed steps, then --steps timed ones. The sides take turns, one step each, so that
other processes on the machine slow both alike (--sequential runs one side after the other instead). Tokens/s
counts only the tokens that carry a loss (labels != -100 after the causal shift: no padding, no prompt under
completion-only loss), identical on both sides. To show that both sides did the same work, the script compares
their logged losses, their final parameters and the loss both final models give on one batch, and stops with an
error when they disagree. Target: trl/plain >= 0.9; on a shared CPU the per-CPU-second ratio is the steadier one.

With --packing TRL flattens each batch into one padding-free row; MathGPT attends per example within it (examples of
similar length share one attention call, see `PackedLayout`), so a step costs what its real tokens cost. Compare
the tokens/s of a run with and without --packing (with --batch_size giving the same problems per step) to see what
the padding costs.
"""

import argparse
import contextlib
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads distort timings on a shared CPU
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing (data_builders lives at the top level)

import torch  # noqa: E402
import yaml  # noqa: E402

PIPELINE = REPO / "recipes" / "pipeline.yaml"
# Dataset columns TRL's collator reads; the Trainer drops the others (`text`, `prompt`, `answer`, ...) too.
COLLATOR_COLUMNS = ("input_ids", "labels", "completion_mask", "assistant_masks", "seq_lengths")
# How far apart the two sides may end up: float rounding differs between TRL's loss kernel and the model's own.
LOSS_TOLERANCE = 0.02  # relative difference of logged losses and of the final models' loss on one batch
PARAM_TOLERANCE = 0.02  # max |p_trl - p_plain| as a fraction of max |p_plain - p_initial| (how far training moved)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", default="pretrain", choices=("pretrain", "sft"),
                        help="the pipeline stage whose settings are used (default: pretrain)")
    parser.add_argument("--task", default=None, help="problem family of the data (default: the stage's, arithmetic)")
    parser.add_argument("--num_rows", type=int, default=None,
                        help="training rows to build (default: just enough for the steps)")
    parser.add_argument("--hidden_size", type=int, default=None, help="model width (default: the stage's, 128)")
    parser.add_argument("--layers", type=int, default=None, help="transformer blocks (default: the stage's, 2)")
    parser.add_argument("--heads", type=int, default=None, help="attention heads (default: the stage's, 4)")
    parser.add_argument("--batch_size", type=int, default=None,
                        help="rows per step (default: the stage's, 16 packed rows)")
    parser.add_argument("--steps", type=int, default=300, help="timed steps on each side (default: 300)")
    parser.add_argument("--warmup_steps", type=int, default=10,
                        help="untimed steps first, on each side (default: 10; not the learning-rate warmup, which "
                             "comes from the recipe)")
    parser.add_argument("--packing", action="store_true",
                        help="pack rows into max_length sequences without padding (TRL `packing: true`)")
    parser.add_argument("--sequential", action="store_true",
                        help="run the plain loop to the end, then the Trainer (default: one step of each in turn, "
                             "so both meet the same load from other processes)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time the parts of a step: data, forward+backward of each loss, optimizer")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change a recipe key, e.g. --set logging_steps=1 --set dataloader_num_workers=1 "
                             "(VALUE is YAML; repeatable); the plain loop follows the keys it mirrors (optimizer, "
                             "schedule, clipping, batch, dataloader workers)")
    parser.add_argument("--pipeline", default=str(PIPELINE), help="pipeline file to read the stage from")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object instead of a table")
    return parser


# --- the recipe and everything `mathalign train` builds from it ---------------------------------------------------

def stage_recipe(args: argparse.Namespace, output_dir: str) -> dict:
    """The stage's recipe keys from the pipeline file, with the benchmark's size, data and step count on top."""
    pipeline = yaml.safe_load(Path(args.pipeline).read_text())
    if args.stage not in (pipeline.get("stages") or {}):
        raise SystemExit(f"train_throughput: {args.pipeline} has no stage {args.stage!r}; pick another --stage.")
    recipe = {"stage": args.stage, **pipeline["stages"][args.stage], "output_dir": output_dir}
    from mathalign.pipeline import STAGE_KEYS

    # One process here, so a stage launched as N processes gets their global batch; the pipeline's own keys go.
    processes = recipe.get("num_processes") or 1
    for key in STAGE_KEYS:
        recipe.pop(key, None)
    recipe["per_device_train_batch_size"] = recipe.get("per_device_train_batch_size", 8) * processes
    total_steps = args.warmup_steps + args.steps
    recipe["max_steps"] = total_steps
    recipe.pop("model_name_or_path", None)  # SFT from a fresh model of the same shape: speed ignores the weights
    if args.batch_size:
        recipe["per_device_train_batch_size"] = args.batch_size
    if args.packing:
        recipe["packing"] = True

    shape = dict(recipe.get("mathgpt_config") or {})
    for key, value in (("hidden_size", args.hidden_size), ("num_hidden_layers", args.layers),
                       ("num_attention_heads", args.heads)):
        if value:
            shape[key] = value
    recipe["mathgpt_config"] = shape

    recipe.setdefault("seed", 0)
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"train_throughput: --set takes KEY=VALUE (e.g. logging_steps=1), got {item!r}.")
        recipe[key] = yaml.safe_load(value)

    data_options = dict(recipe.get("data_options") or {})
    if args.task:
        data_options["task"] = [args.task]
    # Enough rows for every step; a packed row of max_length tokens holds several ~20-token problems.
    rows_per_step = recipe.get("per_device_train_batch_size", 8)
    if recipe.get("packing"):  # --packing, the stage's own recipe, or --set packing=...
        rows_per_step *= max(1, recipe.get("max_length", 128) // 16)
    data_options.update(num_train=args.num_rows or total_steps * rows_per_step + 64,
                        num_validation=0, num_test=0, num_test_ood=0)
    recipe["data_options"] = data_options
    return recipe


def build_run(recipe: dict):
    """Parse the recipe and build data, tokenizer, model and trainer as `mathalign train` does.

    Returns `(trainer, initial_model)`: `initial_model` is an untouched copy of the model the trainer starts from.
    """
    from mathalign.recipe import parse_recipe
    from mathalign.train import build_model, load_data, load_or_train_tokenizer, make_trainer, train_and_eval_splits

    script_args, model_args, training_args, _ = parse_recipe([], recipe=recipe, where="the benchmark recipe")
    data = load_data(script_args)
    train, _ = train_and_eval_splits(data, script_args)
    tokenizer = load_or_train_tokenizer(script_args, model_args, training_args, train)
    torch.manual_seed(training_args.seed)
    model = build_model(script_args, model_args, training_args, tokenizer)
    initial_model = copy.deepcopy(model)  # before the trainer patches in its fused LM head
    trainer = make_trainer(script_args.stage, model, None, tokenizer, train, None, training_args, None, None)
    return trainer, initial_model


def trainer_batch_order(trainer) -> list[list[int]]:
    """Row indices of every batch, in the order `trainer.train()` will draw them (its seeded shuffle)."""
    from transformers import set_seed

    set_seed(trainer.args.seed)  # train() seeds before it builds its sampler, which takes torch's seed
    loader = trainer.get_train_dataloader()
    base = getattr(loader, "base_dataloader", loader)  # accelerate wraps the torch DataLoader
    return [list(batch) for batch in base.batch_sampler]


def plain_dataloader(trainer, batch_order: list[list[int]]):
    """A plain DataLoader over the trainer's tokenised rows: the same batches and collator, collated on the fly."""
    dataset = trainer.train_dataset
    dataset = dataset.select_columns([c for c in COLLATOR_COLUMNS if c in dataset.column_names])
    return torch.utils.data.DataLoader(dataset, batch_sampler=batch_order, collate_fn=trainer.data_collator,
                                       num_workers=trainer.args.dataloader_num_workers)


def loss_tokens(batch: dict) -> int:
    """Tokens that carry a loss: labels != -100 after the causal shift (the Trainer's `num_items_in_batch`)."""
    labels = batch["shift_labels"] if "shift_labels" in batch else batch["labels"][..., 1:]
    return int((labels != -100).sum())


# --- the two sides --------------------------------------------------------------------------------------------------

class Stopwatch:
    """Wall-clock and CPU seconds summed over the stretches between `start()` and `stop()`."""

    def __init__(self):
        self.seconds = self.cpu_seconds = 0.0
        self._started = None

    @staticmethod
    def now() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    def start(self) -> None:
        self._started = self.now()

    def stop(self) -> None:
        (wall, cpu), (wall0, cpu0) = self.now(), self._started
        self.seconds += wall - wall0
        self.cpu_seconds += cpu - cpu0


def plain_optimizer(model, args):
    """AdamW and schedule as the Trainer makes them from `args`; nanoGPT's decay rule gives the Trainer's groups."""
    from transformers import get_scheduler

    optim = getattr(args.optim, "value", args.optim)
    if optim not in ("adamw_torch", "adamw_torch_fused"):
        raise SystemExit(f"train_throughput: the plain loop mirrors torch's AdamW only; the recipe asks for {optim}.")
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": args.weight_decay},  # matrices
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]  # norm weights, biases
    optimizer = torch.optim.AdamW(groups, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                                  eps=args.adam_epsilon, fused=optim == "adamw_torch_fused")
    scheduler = get_scheduler(args.lr_scheduler_type, optimizer, num_warmup_steps=args.get_warmup_steps(args.max_steps),
                              num_training_steps=args.max_steps, scheduler_specific_kwargs=args.lr_scheduler_kwargs)
    return optimizer, scheduler


class PlainLoop:
    """The same optimisation written out by hand: forward, loss, backward, clip, AdamW step, schedule step."""

    def __init__(self, model, loader, args):
        self.model, self.args, self.batches, self.losses = model, args, iter(loader), []
        self.optimizer, self.scheduler = plain_optimizer(model, args)
        model.train()

    def step(self) -> None:
        batch = next(self.batches)
        loss = self.model(**batch, use_cache=False).loss  # mean over the batch's loss tokens
        loss.backward()
        if self.args.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.args.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.losses.append(loss.detach())


def step_timer(warmup_steps: int, trl: Stopwatch, plain_loop: PlainLoop | None, plain: Stopwatch):
    """A TrainerCallback timing the Trainer's steps after the warm-up (the logging between steps counts).

    With `plain_loop`, it also runs one plain step after each Trainer step, timed apart, so that both sides take
    turns and meet the same machine load.
    """
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step > warmup_steps:
                trl.stop()
            if plain_loop is not None:
                timed = state.global_step > warmup_steps
                if timed:
                    plain.start()
                plain_loop.step()
                if timed:
                    plain.stop()
            if state.global_step >= warmup_steps:
                trl.start()

    return StepTimer()


def run_both(trainer, plain_model, loader, warmup_steps: int, steps: int, interleave: bool) -> tuple[dict, dict]:
    """Train both sides, in turns or one after the other; returns (trl, plain) timings and losses."""
    trl_clock, plain_clock = Stopwatch(), Stopwatch()
    plain_loop = PlainLoop(plain_model, loader, trainer.args)
    if not interleave:
        for step in range(1, warmup_steps + steps + 1):
            plain_loop.step()
            if step == warmup_steps:
                plain_clock.start()
        plain_clock.stop()
    trainer.add_callback(step_timer(warmup_steps, trl_clock, plain_loop if interleave else None, plain_clock))
    with contextlib.redirect_stdout(sys.stderr):  # the Trainer's log lines; stdout stays for the result
        output = trainer.train()
    if len(plain_loop.losses) != warmup_steps + steps:
        raise RuntimeError(f"the plain loop ran {len(plain_loop.losses)} steps, not {warmup_steps + steps}")
    logged = {entry["step"]: entry["loss"] for entry in trainer.state.log_history if "loss" in entry}
    losses = torch.stack(plain_loop.losses).tolist()
    trl = {"seconds": trl_clock.seconds, "cpu_seconds": trl_clock.cpu_seconds, "logged": logged,
           "mean_loss": output.training_loss}
    plain = {"seconds": plain_clock.seconds, "cpu_seconds": plain_clock.cpu_seconds, "losses": losses,
             "mean_loss": sum(losses) / len(losses), "optimizer": plain_loop.optimizer}
    return trl, plain


# --- checks that both sides did the same work -----------------------------------------------------------------------

def check_same_optimizer(trainer, plain_model, optimizer) -> None:
    """The Trainer's AdamW must match the plain loop's: hyperparameters and which tensors decay."""
    def groups(opt, model):
        names = {id(p): n for n, p in model.named_parameters()}
        return sorted((g["weight_decay"], sorted(names[id(p)] for p in g["params"]), g["initial_lr"], g["betas"],
                       g["eps"], bool(g.get("fused"))) for g in opt.param_groups)

    if groups(trainer.optimizer, trainer.model) != groups(optimizer, plain_model):
        raise SystemExit(f"train_throughput: the plain loop's AdamW differs from the Trainer's:\n"
                         f"  trainer: {groups(trainer.optimizer, trainer.model)}\n"
                         f"  plain:   {groups(optimizer, plain_model)}")


def compare_sides(trainer, plain_model, initial_model, plain: dict, trl: dict, check_batch: dict) -> dict:
    """Logged losses, final parameters and the final models' loss on one batch, side by side."""
    windows, start = [], 0
    for step in sorted(trl["logged"]):  # the Trainer logs the mean loss since its previous log
        windows.append((step, trl["logged"][step], sum(plain["losses"][start:step]) / (step - start)))
        start = step
    windows.append(("all", trl["mean_loss"], plain["mean_loss"]))
    worst_logged = max(abs(t - p) / p for _, t, p in windows)

    trained = dict(trainer.model.named_parameters())
    initial = dict(initial_model.named_parameters())
    moved = max((p - initial[n]).abs().max().item() for n, p in plain_model.named_parameters())
    drift = max((p - trained[n]).abs().max().item() for n, p in plain_model.named_parameters())

    with torch.no_grad():
        losses = {}
        for name, model in (("trl", trainer.model), ("plain", plain_model), ("initial", initial_model)):
            model.eval()
            losses[name] = model(**check_batch, use_cache=False).loss.item()  # the model's own forward and loss
    return {"loss_windows": windows, "worst_logged_rel": worst_logged, "param_drift_rel": drift / max(moved, 1e-12),
            "final_loss_trl": losses["trl"], "final_loss_plain": losses["plain"], "initial_loss": losses["initial"],
            "mean_loss_trl": trl["mean_loss"], "mean_loss_plain": plain["mean_loss"]}


# --- where a step's time goes ---------------------------------------------------------------------------------------

def step_breakdown(trainer, plain_model, optimizer, loader, num_batches: int) -> dict:
    """CPU milliseconds per step of each part, the parts taken in turns on the same batches."""
    parts = {"data": 0.0, "model_loss": 0.0, "trl_loss": 0.0, "optimizer": 0.0}
    order = loader.batch_sampler[-num_batches:]
    sub_loader = torch.utils.data.DataLoader(loader.dataset, batch_sampler=order, collate_fn=loader.collate_fn)

    def timed(part, fn):
        start = time.process_time()
        out = fn()
        parts[part] += time.process_time() - start
        return out

    plain_model.train()
    trainer.model.train()
    batches = iter(sub_loader)
    for _ in range(num_batches):
        batch = timed("data", lambda: next(batches))
        timed("model_loss", lambda: plain_model(**batch, use_cache=False).loss.backward())

        def optimizer_step():
            torch.nn.utils.clip_grad_norm_(plain_model.parameters(), trainer.args.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        timed("optimizer", optimizer_step)
        count = torch.tensor(loss_tokens(batch))
        timed("trl_loss", lambda: trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=count).backward())
        trainer.model.zero_grad(set_to_none=True)
    return {part: seconds * 1000 / num_batches for part, seconds in parts.items()}


# --- the benchmark --------------------------------------------------------------------------------------------------

def main(args: argparse.Namespace) -> dict:
    """Train both sides; print and return tokens/s, their ratio and the same-work checks."""
    if args.warmup_steps < 1 or args.steps < 1:
        raise SystemExit("train_throughput: --steps and --warmup_steps must be at least 1.")
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as output_dir:
        recipe = stage_recipe(args, output_dir)
        try:
            with contextlib.redirect_stdout(sys.stderr):
                trainer, initial_model = build_run(recipe)
        except ValueError as err:  # a bad recipe key or value, or more rows than distinct problems exist
            raise SystemExit(f"train_throughput: {err} (see --help: --steps, --num_rows, --set)") from None
        total_steps = args.warmup_steps + args.steps
        batch_order = trainer_batch_order(trainer)
        if len(batch_order) < total_steps:
            raise SystemExit(f"train_throughput: the data makes only {len(batch_order)} batches for {total_steps} "
                             "steps; raise --num_rows or lower --steps.")
        loader = plain_dataloader(trainer, batch_order[:total_steps])
        batches = list(loader)  # to count tokens and pick the check batch; training collates again, on the fly
        timed = batches[args.warmup_steps:]
        tokens = sum(loss_tokens(b) for b in timed)
        positions = sum(b["input_ids"].numel() for b in timed)

        plain_model = copy.deepcopy(initial_model)
        trl, plain = run_both(trainer, plain_model, loader, args.warmup_steps, args.steps,
                              interleave=not args.sequential)
        check_same_optimizer(trainer, plain_model, plain["optimizer"])
        comparison = compare_sides(trainer, plain_model, initial_model, plain, trl, batches[0])
        breakdown = None
        if args.breakdown:
            breakdown = step_breakdown(trainer, plain_model, plain["optimizer"], loader,
                                       min(len(timed), 20))

    config = initial_model.config
    result = {
        "stage": args.stage, "task": recipe["data_options"].get("task"), "packing": bool(recipe.get("packing")),
        "parameters": initial_model.num_parameters(), "hidden_size": config.hidden_size,
        "layers": config.num_hidden_layers, "heads": config.num_attention_heads,
        "batch_size": trainer.args.per_device_train_batch_size, "positions_per_step": positions / len(timed),
        "loss_tokens_per_step": tokens / len(timed), "steps": args.steps, "warmup_steps": args.warmup_steps,
        "threads": torch.get_num_threads(), "logging_steps": trainer.args.logging_steps,
        "interleaved": not args.sequential,
        "trl_seconds": trl["seconds"], "plain_seconds": plain["seconds"],
        "trl_tokens_per_s": tokens / trl["seconds"], "plain_tokens_per_s": tokens / plain["seconds"],
        "ratio": plain["seconds"] / trl["seconds"],
        "trl_cpu_seconds": trl["cpu_seconds"], "plain_cpu_seconds": plain["cpu_seconds"],
        "cpu_ratio": plain["cpu_seconds"] / trl["cpu_seconds"],
        **comparison,
        "breakdown_ms": breakdown,
    }
    result["same_work"] = (
        result["worst_logged_rel"] <= LOSS_TOLERANCE and result["param_drift_rel"] <= PARAM_TOLERANCE
        and abs(result["final_loss_trl"] - result["final_loss_plain"]) <= LOSS_TOLERANCE * result["final_loss_plain"]
    )
    print(json.dumps(result) if args.json else format_report(result))
    if not result["same_work"]:
        raise SystemExit("train_throughput: the two sides trained differently (see the checks); their speeds "
                         "measure different work.")
    return result


def format_report(r: dict) -> str:
    """The result as a short table with the run's settings and the same-work checks."""
    rows = r["positions_per_step"] / (1 if r["packing"] else r["batch_size"])
    shape = (f"one padding-free row of {rows:,.0f} tokens per step (TRL packing)" if r["packing"]
             else f"batch {r['batch_size']} x {rows:.1f} positions on average (padded to the longest row)")
    lines = [
        f"{r['stage']} stage on {','.join(r['task'] or [])}: MathGPT {r['parameters'] / 1e6:.2f}M parameters "
        f"(hidden_size={r['hidden_size']}, layers={r['layers']}, heads={r['heads']}), fp32, "
        f"{r['threads']} torch threads",
        f"{shape}; {r['loss_tokens_per_step']:,.0f} loss tokens per step; {r['warmup_steps']} untimed + "
        f"{r['steps']} timed steps ({'one of each side in turn' if r['interleaved'] else 'one side, then the other'}"
        f"); the Trainer logs every {r['logging_steps']} steps",
        "",
        f"{'path':<26}{'wall s':>8}{'tokens/s':>10}{'steps/s':>9}{'CPU s':>8}{'tokens/CPU s':>14}{'final loss':>12}",
    ]
    for name, key in (("TRL SFTTrainer (recipe)", "trl"), ("plain PyTorch loop", "plain")):
        lines.append(f"{name:<26}{r[f'{key}_seconds']:8.2f}{r[f'{key}_tokens_per_s']:10,.0f}"
                     f"{r['steps'] / r[f'{key}_seconds']:9.2f}{r[f'{key}_cpu_seconds']:8.2f}"
                     f"{r['steps'] * r['loss_tokens_per_step'] / r[f'{key}_cpu_seconds']:14,.0f}"
                     f"{r[f'final_loss_{key}']:12.4f}")
    lines += [
        "",
        f"same work: mean training loss {r['mean_loss_trl']:.4f} (TRL) vs {r['mean_loss_plain']:.4f} (plain); "
        f"logged losses within {r['worst_logged_rel']:.1e} (relative); final parameters within "
        f"{r['param_drift_rel']:.1e} of how far training moved them; loss on the first batch {r['initial_loss']:.4f} "
        f"-> {r['final_loss_trl']:.4f} (TRL) vs {r['final_loss_plain']:.4f} (plain)",
    ]
    if r["breakdown_ms"]:
        b = r["breakdown_ms"]
        parts = (("load and collate a batch (both sides)", b["data"], ""),
                 ("forward + backward, the model's own loss (plain)", b["model_loss"], ""),
                 ("forward + backward, trainer.compute_loss (TRL)", b["trl_loss"],
                  "   (in TRL 1.16: its fused LM head + entropy/accuracy metrics)"),
                 ("clip + AdamW step (both sides)", b["optimizer"], ""))
        lines += ["", "CPU ms per step, by part (the same batches, the parts taken in turns):"]
        lines += [f"  {label:<50}{ms:7.1f}{note}" for label, ms, note in parts]
    lines += ["", f"ratio trl/plain tokens/s: {r['ratio']:.3f} wall-clock (target >= 0.9); {r['cpu_ratio']:.3f} per "
                  "CPU second (steadier when other processes share the CPU)"]
    return "\n".join(lines)


if __name__ == "__main__":
    main(make_parser().parse_args())
