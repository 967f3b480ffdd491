"""How fast does `mathalign eval` get through 1,000 problems? Batched + KV cache vs one prompt at a time, no cache.

    python benchmarks/eval_speed.py                       # arithmetic, 1,000 problems, ~3.3M-parameter MathGPT
    python benchmarks/eval_speed.py --task expressions    # long step-by-step completions

The model has random weights (speed does not depend on what it learned), so every completion is forced to the
realistic length of the family's gold completions (`min_new_tokens = max_new_tokens` = the longest target + eos).
The slow path (batch 1, no KV cache: every new token re-reads the whole sequence) is timed on a subset and
extrapolated to the full count. Both paths are `mathalign.evaluation.generate_batched`, the function `eval` uses.
"""

import argparse
import os
import random
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads distort timings on a shared CPU

import torch  # noqa: E402

import mathalign  # noqa: E402
from mathalign.generation import generate_batched  # noqa: E402
from mathalign.tasks import get_task  # noqa: E402


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="arithmetic", help="problem family (default: arithmetic)")
    parser.add_argument("--num-problems", type=int, default=1000, help="problems to evaluate (default: 1000)")
    parser.add_argument("--slow-subset", type=int, default=50, help="prompts timed on the slow path (default: 50)")
    parser.add_argument("--batch-size", type=int, default=64, help="batch of the fast path (default: 64)")
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    return parser


def main(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    family = get_task(args.task)
    rng = random.Random(0)
    spec = family.make_spec()
    problems = [family.generate(rng, spec) for _ in range(args.num_problems)]
    prompts = [family.normalize_prompt(p.prompt) for p in problems]
    tokenizer = mathalign.train_tokenizer([p.text for p in problems], vocab_size=400)
    new_tokens = 1 + max(len(tokenizer(p.target)["input_ids"]) for p in problems)

    torch.manual_seed(0)
    config = mathalign.MathGPTConfig(
        vocab_size=len(tokenizer),
        hidden_size=args.hidden_size,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = mathalign.MathGPTForCausalLM(config).to(args.device).eval()
    prompt_tokens = sum(len(tokenizer(p)["input_ids"]) for p in prompts) / len(prompts)
    print(
        f"{args.task}: {len(prompts)} problems, {prompt_tokens:.1f} prompt tokens on average, {new_tokens} new tokens "
        f"each; MathGPT {model.num_parameters() / 1e6:.2f}M parameters on {args.device}, "
        f"{torch.get_num_threads()} threads"
    )

    def timed(subset, **kwargs) -> float:
        start = time.perf_counter()
        generate_batched(model, tokenizer, subset, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                         progress=False, **kwargs)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start

    timed(prompts[:8], batch_size=8)  # warm-up (allocator, kernels)
    fast = timed(prompts, batch_size=args.batch_size, use_cache=True)
    subset = prompts[: args.slow_subset]
    single_cached = timed(subset, batch_size=1, use_cache=True) * len(prompts) / len(subset)
    slow = timed(subset, batch_size=1, use_cache=False) * len(prompts) / len(subset)

    rows = [
        (f"batched ({args.batch_size}) + KV cache", fast, "measured"),
        ("one at a time + KV cache", single_cached, f"{len(subset)} timed, extrapolated"),
        ("one at a time, no cache", slow, f"{len(subset)} timed, extrapolated"),
    ]
    for name, seconds, how in rows:
        print(f"{name:<30} {seconds:8.2f} s for {len(prompts)}  {len(prompts) / seconds:9.1f} problems/s  ({how})")
    ratio = slow / fast
    print(f"speed-up of the eval path over one-at-a-time without cache: {ratio:.1f}x (target >= 5x)")
    return {"fast_s": fast, "single_cached_s": single_cached, "slow_s": slow, "ratio": ratio}


if __name__ == "__main__":
    main(make_parser().parse_args())
