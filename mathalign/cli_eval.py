"""`mathalign eval | compare | chat | attention`: measure a model, compare stages, talk to it, look inside it.

    mathalign eval runs/sft --data data/sft --out runs/sft/eval
    mathalign compare runs/base runs/sft runs/dpo --names base,sft,dpo --data data/sft --out runs/comparison
    mathalign chat runs/sft
    mathalign attention runs/sft --prompt "x-18=21, x=?" --out runs/sft/attention

Heavy libraries load only when a command runs, so `mathalign --help` stays fast.
"""

import argparse

EVAL_EXAMPLE = """\
examples:
  mathalign eval runs/sft --data data/sft --out runs/sft/eval          # test and every test_* split present
  mathalign eval runs/sft --data data/sft --split test --num-samples 200
  mathalign eval runs/sft-lora --data test.parquet                     # a LoRA adapter directory
  mathalign eval runs/sft --data sft                # build `sft` in memory: 256 rows per test split
  mathalign eval Qwen/Qwen2.5-0.5B-Instruct --data data/gsm8k --batch-size 16 --num-samples 200

--data takes a `save_to_disk` directory, a parquet/jsonl file (one split), or a builder name. Rows need the
columns prompt, answer and task (type, difficulty and form give the per-type, per-length and per-form breakdowns).
Without --split, `test` is evaluated together with every held-out test split the dataset has (test_ood: longer
operands, test_surface: other ways of writing the problems, test_uniform: uniformly drawn operands, any test_*),
and one table shows accuracy per type (rows) and split (columns).
"""

COMPARE_EXAMPLE = """\
example:
  mathalign compare runs/base runs/sft runs/dpo runs/grpo --names base,sft,dpo,grpo --data data/sft --out cmp

Each checkpoint gets its own report in OUT/<name>/; OUT/comparison.md and OUT/comparison.png compare them.
An evaluation directory (one holding metrics.json) is read instead of evaluated again.
"""

CHAT_EXAMPLE = """\
examples:
  mathalign chat runs/sft                                # interactive: exit, quit, q or Ctrl-D to leave
  mathalign chat runs/sft --prompt "5 + (10 - 3)"        # one shot, for scripts
  mathalign chat runs/sft --task arithmetic --prompt "72/4"

Input with `=` is an arithmetic question (`72/4=?`, `x-18=21, x=?`); a bare expression becomes `Evaluate: ...`.
The answer is marked right or wrong when the problem family can solve the prompt itself.
"""

ATTENTION_EXAMPLE = """\
example:
  mathalign attention runs/sft --prompt "x-18=21, x=?" --out runs/sft/attention --max-new-tokens 8

Writes attention_layer_<i>.png (one heatmap per head) and prints the mean attention entropy of every layer.
"""


def _print_metrics(metrics: dict) -> None:
    from .report import split_metrics, split_type_text

    splits = split_metrics(metrics)
    width = max(10, *(len(name) for name in splits))
    print(f"{'split':<{width}} {'problems':>8} {'accuracy':>9} {'parsed':>8} {'avg len':>8} {'problems/s':>11}")
    for name, m in splits.items():
        avg = m.get("avg_generation_length")
        print(
            f"{name:<{width}} {m['num_samples']:>8} {100 * m['accuracy']:>8.1f}% {100 * m['parse_rate']:>7.1f}% "
            f"{avg if avg is None else round(avg, 1):>8} {m.get('problems_per_second', 0):>11.1f}"
        )
    if any(m.get("accuracy_per_type") for m in splits.values()):
        print()
        print(split_type_text(metrics))


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return number


def run_eval(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_model

    metrics = evaluate_model(
        args.model,
        dataset=args.data,
        split=args.split,
        num_samples=args.num_samples,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        out_dir=args.out,
        seed=args.seed,
        trainer_state=args.trainer_state,
    )
    _print_metrics(metrics)
    if args.out:
        print(f"report: {args.out}/report.md")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .evaluation import compare_stages

    if args.names:
        names = [n.strip() for n in args.names.split(",")]
        if len(names) != len(args.checkpoints) or len(set(names)) != len(names) or not all(names):
            raise ValueError(
                f"--names needs {len(args.checkpoints)} distinct comma-separated names, one per checkpoint; "
                f"got {args.names!r}."
            )
    else:
        names = []
        for path in args.checkpoints:
            name = Path(path).name or str(path)
            names.append(name if name not in names else f"{name}-{len(names)}")
    stage_metrics = compare_stages(
        dict(zip(names, args.checkpoints)),
        dataset=args.data,
        out_dir=args.out,
        split=args.split,
        num_samples=args.num_samples,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
    )
    for name, m in stage_metrics.items():
        held_out = "".join(f"  {split} {100 * sm['accuracy']:5.1f}%"
                           for split, sm in list(m.get("splits", {}).items())[1:])
        print(f"{name:<12} accuracy {100 * m['accuracy']:5.1f}%  parse rate {100 * m['parse_rate']:5.1f}%{held_out}")
    print(f"comparison: {args.out}/comparison.md, {args.out}/comparison.png")
    return 0


def run_chat_command(args: argparse.Namespace) -> int:
    from .chat import run_chat

    return run_chat(args.model, prompt=args.prompt, task=args.task, max_new_tokens=args.max_new_tokens)


def run_attention(args: argparse.Namespace) -> int:
    from .attention import inspect_attention
    from .chat import NotAProblem, route
    from .generation import load_model_and_tokenizer

    try:
        _, prompt = route(args.prompt, args.task)  # the same prompt format the model was trained on
    except NotAProblem:
        prompt = args.prompt  # attention is worth seeing on any text
    model, tokenizer = load_model_and_tokenizer(args.model, attn_implementation="eager")
    result = inspect_attention(model, tokenizer, prompt, args.out, max_new_tokens=args.max_new_tokens)
    print(f"text: {result['text']!r} ({len(result['tokens'])} tokens)")
    print("layer  mean attention entropy (nats)")
    for i, entropy in enumerate(result["entropy"]):
        print(f"{i:>5}  {entropy:.4f}")
    print(f"heatmaps: {', '.join(str(f) for f in result['files'])}")
    return 0


def _common_eval_options(parser: argparse.ArgumentParser, data_required: bool = True) -> None:
    parser.add_argument("--data", required=data_required, metavar="BUILDER_OR_PATH",
                        help="dataset directory (save_to_disk), parquet/jsonl file, or builder name (sft, rl, ...)")
    parser.add_argument("--split", default=None,
                        help="split(s) to evaluate, comma-separated (default: test plus every test_* split present)")
    parser.add_argument("--num-samples", type=_positive, default=None, metavar="N",
                        help="evaluate a seeded random subset of N rows per split (default: every row)")
    parser.add_argument("--batch-size", type=_positive, default=64, metavar="B",
                        help="prompts generated together (default: 64)")
    parser.add_argument("--max-new-tokens", type=_positive, default=None, metavar="T",
                        help="generation budget (default: longest gold completion + 25%%, or a per-family default)")


def add_parser(subparsers) -> None:
    """Register `eval`, `compare`, `chat` and `attention` on the top-level subparsers."""
    raw = argparse.RawDescriptionHelpFormatter

    p = subparsers.add_parser(
        "eval", help="accuracy of a model on a dataset's test split, with a report",
        description="Batched greedy generation with the KV cache; answers checked by each row's problem family; "
        "metrics.json, samples.jsonl, report.md and plots written with --out.",
        epilog=EVAL_EXAMPLE, formatter_class=raw,
    )
    p.add_argument("model", metavar="MODEL", help="checkpoint directory, LoRA adapter directory, or Hub model id")
    _common_eval_options(p)
    p.add_argument("--out", default=None, metavar="DIR", help="write the report here (default: print metrics only)")
    p.add_argument("--seed", type=int, default=0, help="seed of the --num-samples subset (default: 0)")
    p.add_argument("--trainer-state", default=None, metavar="JSON",
                   help="trainer_state.json to plot training curves from (default: found next to MODEL)")
    p.set_defaults(func=run_eval)

    p = subparsers.add_parser(
        "compare", help="evaluate several checkpoints (stages) and compare them in one table and plot",
        description="Evaluate checkpoints on the same data; write comparison.md and comparison.png.",
        epilog=COMPARE_EXAMPLE, formatter_class=raw,
    )
    p.add_argument("checkpoints", nargs="+", metavar="CKPT", help="checkpoints (or evaluation directories)")
    _common_eval_options(p, data_required=False)
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the comparison and per-stage reports")
    p.add_argument("--names", default=None, help="comma-separated stage names, one per checkpoint (default: dir names)")
    p.set_defaults(func=run_compare)

    p = subparsers.add_parser(
        "chat", help="interactive solver: type a problem, see the reasoning and whether it is right",
        description="Type an expression or an arithmetic question; the model's steps and answer are shown and "
        "checked. --prompt answers one problem and exits.",
        epilog=CHAT_EXAMPLE, formatter_class=raw,
    )
    p.add_argument("model", metavar="MODEL", help="checkpoint directory, LoRA adapter directory, or Hub model id")
    p.add_argument("--prompt", default=None, help="answer this one problem and exit (for scripts)")
    p.add_argument("--task", default=None, metavar="FAMILY",
                   help="force a problem family (arithmetic, expressions, gsm8k, aqua) instead of guessing")
    p.add_argument("--max-new-tokens", type=_positive, default=None, metavar="T",
                   help="generation budget (default: per family)")
    p.set_defaults(func=run_chat_command)

    p = subparsers.add_parser(
        "attention", help="attention heatmaps per layer and attention entropy for one prompt",
        description="Run MODEL with eager attention on a prompt; write a heatmap PNG per layer (heads tiled) and "
        "print each layer's mean attention entropy.",
        epilog=ATTENTION_EXAMPLE, formatter_class=raw,
    )
    p.add_argument("model", metavar="MODEL", help="checkpoint directory, LoRA adapter directory, or Hub model id")
    p.add_argument("--prompt", required=True, help="the text to look at, e.g. \"x-18=21, x=?\"")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for attention_layer_<i>.png")
    p.add_argument("--task", default=None, metavar="FAMILY", help="problem family whose prompt format to use")
    p.add_argument("--max-new-tokens", type=int, default=0, metavar="T",
                   help="append the model's greedy answer (up to T tokens) before looking (default: 0)")
    p.set_defaults(func=run_attention)
