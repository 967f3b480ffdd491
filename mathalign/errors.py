"""The errors a user can fix: printed as one line that says what to do, never as a traceback.

Every command catches `UserError` at its top (the `mathalign` CLI, `python -m mathalign.train`, the pipeline) and
exits with status 2. Library modules raise these; they never import the command-line modules to do so.
"""


class UserError(Exception):
    """An error caused by the user's input (a file, a key, a value): its message says what to change."""


class RecipeError(UserError, ValueError):
    """A recipe or command line that cannot run as written; the message says what to change."""


class StageFailed(UserError, RuntimeError):
    """A pipeline stage launched in its own process exited with an error (its log was printed above)."""


__all__ = ["RecipeError", "StageFailed", "UserError"]
