"""A trained model on problems the project's generator did not write: plain transformers, other surface forms.

    python benchmarks/held_out_forms.py runs/quickstart/grpo-merged                 # arithmetic
    python benchmarks/held_out_forms.py runs/expressions/sft --family expressions
    python benchmarks/held_out_forms.py runs/quickstart/grpo-merged --json results.json

The problems are written here, by code of this file alone (nothing from `mathalign.tasks` or `data_builders`),
the way a person might type them, and the model is loaded and run with nothing but `AutoTokenizer`,
`AutoModelForCausalLM` and `generate` (greedy), as anyone who downloads it would. No prompt is normalised.

Arithmetic suites (the nine types, operands drawn uniformly from 0..99, so most are 2-digit x 2-digit):
  canonical   `17*19=?`, `x-18=21, x=?`                 the training form
  spaced      `17 * 19 = ?`, `x - 18 = 21, x = ?`       a space around everything
  compact     `x-18=21,x=?`                             no space at all (the seed's test prompts)
  mixed       each gap a space or none, `+`/`*` operands in either order
Expressions suites (`+`/`-`, numbers 1..20):
  minimal     1-5 numbers, only the parentheses the value needs
  all_parens  every compound operand in parentheses: `(12 - 4) - (3 + 1)`, `((1 + 2) + 3)`
  mixed       redundant parentheses here and there, a lone number as `(7)`, any spacing
  malformed   unbalanced parentheses and dangling operators: the answer is ERROR

Prints accuracy per suite and per type; the answer is read from `The answer is N` / `Final Result: N`.
"""

import argparse
import json
import random
import re
from collections import defaultdict

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ANSWER = {"arithmetic": re.compile(r"The answer is (-?\d+)"), "expressions": re.compile(r"Final Result: ?(ERROR|-?\d+)")}


# -- arithmetic, written independently of the project's generator -----------------------------------------------

def arithmetic_problem(rng: random.Random, type: str) -> tuple[list[str], int]:
    """(pieces of the prompt, answer) of one problem of `type` with operands uniform in 0..99."""
    n = lambda low=0: rng.randint(low, 99)  # noqa: E731
    if type == "a+b":
        a, b = n(), n()
        return [str(a), "+", str(b), "=", "?"], a + b
    if type == "a-b":
        a, b = n(), n()
        return [str(a), "-", str(b), "=", "?"], a - b
    if type == "a*b":
        a, b = n(), n()
        return [str(a), "*", str(b), "=", "?"], a * b
    if type == "a/b":
        q, b = n(), n(1)
        return [str(q * b), "/", str(b), "=", "?"], q
    x = n()
    if type == "x+b":
        b = n()
        return ["x", "+", str(b), "=", str(x + b), ",", "x", "=", "?"], x
    if type == "x-b":
        b = n()
        return ["x", "-", str(b), "=", str(x - b), ",", "x", "=", "?"], x
    if type == "x*b":
        b = n(1)
        return ["x", "*", str(b), "=", str(x * b), ",", "x", "=", "?"], x
    if type == "b-x":
        b = n()
        return [str(b), "-", "x", "=", str(b - x), ",", "x", "=", "?"], x
    x, q = n(1), n(1)  # b/x=q
    return [str(x * q), "/", "x", "=", str(q), ",", "x", "=", "?"], x


ARITHMETIC_TYPES = ["a+b", "a-b", "a*b", "a/b", "x*b", "x+b", "x-b", "b-x", "b/x"]


def write_arithmetic(pieces: list[str], suite: str, rng: random.Random) -> str:
    if suite == "canonical":
        text = "".join(pieces)
        return text.replace(",", ", ")
    if suite == "spaced":
        return " ".join(pieces)
    if suite == "compact":
        return "".join(pieces)
    if pieces[1] in "+*" and rng.random() < 0.5:  # mixed: operand order too
        pieces = [pieces[2], pieces[1], pieces[0], *pieces[3:]]
    return pieces[0] + "".join((" " if rng.random() < 0.5 else "") + p for p in pieces[1:])


# -- expressions ------------------------------------------------------------------------------------------------

def expression_tree(rng: random.Random, numbers: int):
    if numbers == 1:
        return rng.randint(1, 20)
    left = rng.randint(1, numbers - 1)
    return (rng.choice("+-"), expression_tree(rng, left), expression_tree(rng, numbers - left))


def value(tree) -> int:
    if isinstance(tree, int):
        return tree
    op, a, b = tree
    return value(a) + value(b) if op == "+" else value(a) - value(b)


def write_expression(tree, parens: str, rng: random.Random, top: bool = True, right: bool = False) -> str:
    """parens: `minimal` (only where needed), `all` (every compound operand), `mixed` (needed + some extra)."""
    if isinstance(tree, int):
        return f"({tree})" if parens == "mixed" and (top or rng.random() < 0.05) else str(tree)
    op, a, b = tree
    text = f"{write_expression(a, parens, rng, False)} {op} {write_expression(b, parens, rng, False, True)}"
    needed = right and not top
    extra = {"minimal": False, "all": not top, "mixed": rng.random() < 0.3}[parens]
    return f"({text})" if needed or extra else text


def respace(text: str, rng: random.Random) -> str:
    tokens = re.findall(r"\d+|\S", text)
    style = rng.choice(["none", "every", "drawn"])
    gap = lambda: {"none": "", "every": " "}.get(style, rng.choice(["", " "]))  # noqa: E731
    return tokens[0] + "".join(gap() + t for t in tokens[1:])


def expression_problems(rng: random.Random, suite: str, count: int) -> list[tuple[str, str, str]]:
    out = []
    for i in range(count):
        numbers = 1 + i % 5 if suite != "all_parens" else 2 + i % 4
        tree = expression_tree(rng, numbers)
        if suite == "malformed":
            text = write_expression(tree if numbers > 1 else ("+", tree, 3), "minimal", rng)
            kind = rng.choice(["unbalanced", "dangling"])
            text = (text + " )" if rng.random() < 0.5 else "( " + text) if kind == "unbalanced" else \
                (text + " " + rng.choice("+-") if rng.random() < 0.5 else text.replace(" + ", " + + ", 1)
                 if " + " in text else text + " -")
            out.append((f"Evaluate: {text}", "ERROR", kind))
            continue
        text = write_expression(tree, {"minimal": "minimal", "all_parens": "all", "mixed": "mixed"}[suite], rng)
        if suite == "mixed":
            text = respace(text, rng)
        out.append((f"Evaluate: {text}", str(value(tree)), f"{numbers} number{'s' * (numbers > 1)}"))
    return out


# -- running the model ------------------------------------------------------------------------------------------

@torch.no_grad()
def answers(model, tokenizer, prompts: list[str], batch_size: int, max_new_tokens: int) -> list[str]:
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    out = []
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True)
        ids = model.generate(**batch, do_sample=False, max_new_tokens=max_new_tokens,
                             pad_token_id=tokenizer.pad_token_id)
        out += tokenizer.batch_decode(ids[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a saved model directory (or Hub id) with its tokenizer")
    parser.add_argument("--family", choices=("arithmetic", "expressions"), default="arithmetic")
    parser.add_argument("--per_type", type=int, default=100, help="problems per type and suite (default: 100)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--batch_size", type=int, default=200)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(args.model, trust_remote_code=True)
    model = AutoModelForCausalLM.from_pretrained(args.model, trust_remote_code=True).eval()
    rng = random.Random(args.seed)
    rows = []  # (suite, type, prompt, gold)
    if args.family == "arithmetic":
        for suite in ("canonical", "spaced", "compact", "mixed"):
            for type in ARITHMETIC_TYPES:
                for _ in range(args.per_type):
                    pieces, gold = arithmetic_problem(rng, type)
                    rows.append((suite, type, write_arithmetic(pieces, suite, rng), str(gold)))
        max_new_tokens = 80
    else:
        for suite in ("minimal", "all_parens", "mixed", "malformed"):
            rows += [(suite, type, prompt, gold) for prompt, gold, type in
                     expression_problems(rng, suite, args.per_type * 5)]
        max_new_tokens = 180
    completions = answers(model, tokenizer, [r[2] for r in rows], args.batch_size, max_new_tokens)
    right = defaultdict(lambda: [0, 0])
    examples = {}
    for (suite, type, prompt, gold), completion in zip(rows, completions):
        found = ANSWER[args.family].findall(completion)
        ok = bool(found) and found[-1] == gold
        for key in ((suite, type), (suite, "all")):
            right[key][0] += ok
            right[key][1] += 1
        if not ok:
            examples.setdefault(suite, []).append((prompt, gold, completion.strip()[-60:]))
    results = {f"{s}/{t}": r[0] / r[1] for (s, t), r in right.items()}
    suites = sorted({s for s, _ in right}, key=[r[0] for r in rows].index)
    types = [t for t in dict.fromkeys(t for _, t in right) if t != "all"] + ["all"]
    print(f"{'type':<12}" + "".join(f"{s:>12}" for s in suites))
    for t in types:
        print(f"{t:<12}" + "".join(f"{100 * right[(s, t)][0] / right[(s, t)][1]:>11.1f}%"
                                   if right[(s, t)][1] else f"{'-':>12}" for s in suites))
    for suite, wrong in examples.items():
        print(f"\n{suite}: {len(wrong)} wrong, e.g.")
        for prompt, gold, completion in wrong[:3]:
            print(f"  {prompt!r} (gold {gold}) -> ...{completion!r}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
