"""An interactive solver: type a problem, watch the model reason, see whether it got it right.

    $ mathalign chat runs/grpo
    math> 5 + (10 - 3)
      Evaluate: 5 + (10 - 3)
      Step 1: 10 - 3 = 7 Expression now: 5 + 7
      Step 2: 5 + 7 = 12 Expression now: 12
      Final result: 12   ✓ right
    math> x-18=21, x=?
      x-18=21, x=? The answer is 39.
      Answer: 39   ✓ right
    math> q

    $ mathalign chat runs/grpo --prompt "72/4=?"        # one shot, for scripts

What you type is routed to a problem family and written in that family's prompt format: anything with `=` is an
arithmetic question (`72/4=?`, `x-18=21, x=?`, spacing as you like), a bare expression of numbers, operators and
parentheses becomes `Evaluate: ...`; `--task` forces a family. A model trained on arithmetic alone (its run's
`recipe.yaml` says so) gets a bare `72/4` or `99*64` as the question `72/4=?`, since it has never seen `Evaluate:`.
When the family can read the prompt as one of its problems (arithmetic's nine types, any expression), the model's
answer is marked right or wrong.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import UserError

EXIT_WORDS = frozenset({"exit", "quit", "q"})
PROMPT = "math> "
EXAMPLES = "an expression such as `5 + (10 - 3)` or a question such as `72/4=?` or `x-18=21, x=?`"
# Families asked, in order, to read what a person typed (`Task.read_prompt`): a bare `72/4` is an expression unless
# the model knows arithmetic alone (`prefer`); a family that can read its own prompts is asked first when preferred.
ROUTING_ORDER = ("expressions", "arithmetic")
GENERATED_BUILDERS = frozenset({"pretrain", "sft", "preferences", "rl"})  # data drawn from `data_options.task`


class NotAProblem(ValueError):
    """Input that no problem family can read; its message is what to tell the user."""


@dataclass
class Solution:
    """One solved prompt: what the model read and wrote, its reasoning steps, its answer and the verdict."""

    task: str
    prompt: str
    output: str
    answer: str | None
    steps: list[str] = field(default_factory=list)
    expected: str | None = None  # the family's own answer, when it can compute one
    correct: bool | None = None  # None: nothing to compare with


def route(text: str, task: str | None = None, prefer: str | None = None) -> tuple[str, str]:
    """(family, prompt) for what a person typed, in the family's prompt format; raises NotAProblem otherwise.

    `prefer="arithmetic"` (a model trained on arithmetic alone) reads a bare expression that is one of arithmetic's
    problems, such as `99*64`, as that question instead of `Evaluate: 99 * 64`.

    >>> route("5 + (10 - 3)")
    ('expressions', 'Evaluate: 5 + (10 - 3)')
    >>> route("x - 18 = 21, x = ?")
    ('arithmetic', 'x-18=21, x=?')
    >>> route("99*64", prefer="arithmetic")
    ('arithmetic', '99*64=?')
    """
    from mathalign.tasks import get_task
    from mathalign.tasks.base import typed_text

    text = typed_text(text)
    if not text:
        raise NotAProblem(f"Type {EXAMPLES}.")
    if task is not None:
        return task, get_task(task).as_prompt(text)
    order = ROUTING_ORDER if prefer not in ROUTING_ORDER else (prefer,) + tuple(f for f in ROUTING_ORDER if f != prefer)
    for name in order:  # the first family that reads it as one of its problems
        prompt = get_task(name).read_prompt(text)
        if prompt is not None:
            return name, prompt
    raise NotAProblem(f"Sorry, I can't read {text!r} as a math problem. Try {EXAMPLES}.")


def trained_family(model_path) -> str | None:
    """The one problem family a model was trained on, read from its run's `recipe.yaml` (`data_options.task`);
    None when there is no recipe, it names several families, or it cannot be read (a Hub id, a foreign model)."""
    from pathlib import Path

    import yaml

    try:
        recipe = yaml.safe_load((Path(model_path) / "recipe.yaml").read_text())
        if recipe.get("dataset_name", "sft") not in GENERATED_BUILDERS:  # a file, a Hub dataset, gsm8k, aqua
            return None
        families = (recipe.get("data_options") or {}).get("task") or ["arithmetic"]  # the builders' default
    except Exception:  # noqa: BLE001  (no readable recipe: route by what is typed alone)
        return None
    families = [families] if isinstance(families, str) else list(families)
    return families[0] if len(families) == 1 else None


def expected_answer(task: str, prompt: str) -> str | None:
    """The family's own answer to `prompt`, when it can read the prompt as one of its problems (`Task.problem_of`)."""
    from mathalign.tasks import get_task

    try:
        problem = get_task(task).problem_of(prompt)
    except Exception:  # noqa: BLE001  (a prompt the family cannot read is simply not checked)
        return None
    return None if problem is None else str(problem.answer)


def reasoning_steps(output: str) -> list[str]:
    """The `Step N: ...` lines inside `<think> ... </think>` (empty when the output has no reasoning): the expressions
    family's `steps`, the only family that writes step lines."""
    from mathalign.tasks import get_task

    return get_task("expressions").steps(output)


def solve(model, tokenizer, text: str, task: str | None = None, max_new_tokens: int | None = None,
          prefer: str | None = None) -> Solution:
    """Route `text`, generate the model's greedy answer, extract it and check it (NotAProblem for nonsense)."""
    from mathalign.generation import DEFAULT_MAX_NEW_TOKENS, FALLBACK_MAX_NEW_TOKENS, generate_batched
    from mathalign.tasks import get_task

    family_name, prompt = route(text, task, prefer)
    family = get_task(family_name)
    budget = max_new_tokens or DEFAULT_MAX_NEW_TOKENS.get(family_name, FALLBACK_MAX_NEW_TOKENS)
    context = getattr(model.config, "max_position_embeddings", None)
    if context:
        budget = min(budget, int(context) - len(tokenizer(prompt)["input_ids"]))
        if budget < 1:
            raise NotAProblem(f"That problem is too long for this model ({context} tokens of context).")
    [output], _, _ = generate_batched(model, tokenizer, [prompt], batch_size=1, max_new_tokens=budget, progress=False)
    expected = expected_answer(family_name, prompt)
    return Solution(
        task=family_name,
        prompt=prompt,
        output=output,
        answer=family.extract_answer(output),
        steps=reasoning_steps(output),
        expected=expected,
        correct=None if expected is None else bool(family.check(output, expected)),
    )


def _marks() -> tuple[str, str]:
    try:
        "✓✗".encode(sys.stdout.encoding or "ascii")
        return "✓", "✗"
    except (UnicodeEncodeError, LookupError):
        return "+", "x"


def format_solution(solution: Solution) -> str:
    """What the solver prints: the reasoning steps (or the model's sentence), then the answer and the verdict."""
    right, wrong = _marks()
    lines = [f"  {solution.prompt}" + ("" if solution.steps else f"{solution.output}")]
    lines += [f"  {step}" for step in solution.steps]
    label = "Final result" if solution.steps or solution.task == "expressions" else "Answer"
    if solution.answer is None:
        shown = solution.output.strip()
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        verdict = f"(no answer found in {shown!r})"
        if solution.expected is not None:
            verdict += f"   {wrong} the answer is {solution.expected}"
        lines.append(f"  {label}: {verdict}")
    else:
        if solution.correct is None:
            verdict = "(not checked)"
        elif solution.correct:
            verdict = f"{right} right"
        else:
            verdict = f"{wrong} wrong, the answer is {solution.expected}"
        lines.append(f"  {label}: {solution.answer}   {verdict}")
    return "\n".join(lines)


def chat_loop(
    model,
    tokenizer,
    task: str | None = None,
    max_new_tokens: int | None = None,
    read: Callable[[str], str] = input,
    write: Callable[[str], None] = print,
    prefer: str | None = None,
) -> int:
    """Read problems until `exit`/`quit`/`q`, Ctrl-D or Ctrl-C at the prompt; answer each one. Returns 0."""
    write(f"Type {EXAMPLES}; `exit`, `quit`, `q` or Ctrl-D to leave.")
    while True:
        try:
            text = read(PROMPT)
        except (EOFError, KeyboardInterrupt):
            write("")
            return 0
        text = text.strip()
        if text.lower() in EXIT_WORDS:
            return 0
        if not text:
            continue
        try:
            write(format_solution(solve(model, tokenizer, text, task, max_new_tokens, prefer)))
        except NotAProblem as err:
            write(f"  {err}")
        except KeyboardInterrupt:
            write("  (interrupted)")
        except Exception as err:  # noqa: BLE001  (one bad turn must not end the session with a traceback)
            write(f"  Sorry, that did not work: {type(err).__name__}: {err}")


def run_chat(
    model_path,
    prompt: str | None = None,
    task: str | None = None,
    max_new_tokens: int | None = None,
) -> int:
    """`mathalign chat`: load the model, then one shot (`prompt`) or the interactive loop."""
    from mathalign.generation import load_model_and_tokenizer

    prefer = trained_family(model_path)
    if prompt is not None:
        try:
            route(prompt, task, prefer)  # refuse nonsense before spending seconds on loading the model
        except NotAProblem as err:
            raise UserError(str(err)) from None
    model, tokenizer = load_model_and_tokenizer(model_path)
    if prompt is not None:
        print(format_solution(solve(model, tokenizer, prompt, task, max_new_tokens, prefer)))
        return 0
    print(f"mathalign chat: {model_path}")
    return chat_loop(model, tokenizer, task, max_new_tokens, prefer=prefer)


__all__ = ["NotAProblem", "Solution", "chat_loop", "format_solution", "reasoning_steps", "route", "run_chat", "solve",
           "trained_family"]
