"""The `mathalign` command line: one entry point, one subcommand per job.

    mathalign quickstart                 # the whole pipeline on a CPU, minutes
    mathalign data build sft --out data/sft
    mathalign train recipes/sft.yaml
    mathalign eval runs/sft --data data/sft
    mathalign chat runs/sft

Subcommands live in their own modules (`cli_<name>.py`, each with `add_parser(subparsers)`), imported only when
the command line is parsed, so `import mathalign.cli` does no work and `--help` stays fast.
"""

import argparse
import importlib
import sys

from .errors import UserError

# (module, what it adds) in the order `--help` lists them.
SUBCOMMAND_MODULES = [
    "mathalign.cli_quickstart",
    "mathalign.cli_data",
    "mathalign.cli_train",
    "mathalign.cli_eval",
    "mathalign.cli_hub",
    "mathalign.cli_convert",
]


class _Parser(argparse.ArgumentParser):
    """An argument error is one line that names the command's --help (not the whole usage first)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mathalign",
        description="Train and measure SFT, DPO, GRPO and LoRA on verifiable arithmetic, with TRL and transformers.",
        epilog="Run `mathalign <command> --help` for each command's options and examples.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name == name:  # that subcommand is not part of this build
                continue
            raise
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    # `train` passes recipe overrides (`--max_steps 5`) through; every other command takes only its own options.
    try:
        args, extra = parser.parse_known_args(argv)
        if extra and not getattr(args, "_allow_extra", False):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as done:  # --help, or an argument error already printed as one line
        return int(done.code or 0)
    try:
        result = args.func(args, extra) if getattr(args, "_allow_extra", False) else args.func(args)
    except (UserError, FileNotFoundError, ValueError) as err:
        # Bad input gets one clear line; genuine bugs still raise with their traceback.
        print(f"mathalign {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nmathalign {args.command}: interrupted.", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
