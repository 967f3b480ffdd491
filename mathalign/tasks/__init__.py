"""Problem families: the one place that makes problems and checks answers.

    >>> from mathalign.tasks import get_task
    >>> task = get_task("arithmetic")
    >>> task.check(" The answer is 18.", "18")
    True

Every family has `name`, `types`, `make_spec(**options)`, `generate(rng, spec)` (arithmetic, expressions) or
`from_row(row)` (gsm8k, aqua), `extract_answer(text)`, `check(text, answer)` and `normalize_prompt(text)`; and its
surface, which rewards, chat and evaluation ask instead of restating it: `answer_cue`/`format_pattern`/
`has_answer_format(text)` (the format reward's strict cue), `read_prompt(text)` (what a person typed, as this
family's prompt, or None), `as_prompt(text)`, `problem_of(prompt)` (the problem a prompt asks, or None) and
`steps(text)` (reasoning lines). Steps of any completion are read by one parser, `mathalign.tasks.steps`.
Dataset rows carry a `task` column naming their family, so rewards and evaluation dispatch with `get_task(row_task)`.
"""

from .aqua import AquaSpec, AquaTask
from .arithmetic import ArithmeticSpec, ArithmeticTask
from .base import Problem, Task
from .expressions import ExpressionError, ExpressionsSpec, ExpressionsTask, verify_steps
from .gsm8k import GSM8KSpec, GSM8KTask

TASKS: dict[str, Task] = {
    task.name: task for task in (ArithmeticTask(), ExpressionsTask(), GSM8KTask(), AquaTask())
}
GENERATIVE_TASKS = ("arithmetic", "expressions")  # families that draw problems from a spec


def get_task(name: str) -> Task:
    """The family called `name` ("arithmetic", "expressions", "gsm8k", "aqua")."""
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown task {name!r}; valid tasks: {sorted(TASKS)}") from None


__all__ = [
    "GENERATIVE_TASKS",
    "TASKS",
    "AquaSpec",
    "AquaTask",
    "ArithmeticSpec",
    "ArithmeticTask",
    "ExpressionError",
    "ExpressionsSpec",
    "ExpressionsTask",
    "GSM8KSpec",
    "GSM8KTask",
    "Problem",
    "Task",
    "get_task",
    "verify_steps",
]
