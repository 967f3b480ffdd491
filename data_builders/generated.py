"""The entry points every generated builder (pretrain, sft, preferences, rl) shares, written once.

A builder module says what its rows are (`rows`, `FEATURES`, its options class and summary) and gets the rest:

    build, add_arguments, main, make_parser = generated.entry_points(NAME, BuildOptions, rows, FEATURES, SUMMARY,
                                                                     __doc__, __name__)
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NamedTuple

from datasets import DatasetDict

from .building import build_generated
from .options import add_generation_arguments, generated_signature
from .publishing import make_parser as base_parser
from .publishing import run_generated


class EntryPoints(NamedTuple):
    build: Callable[..., DatasetDict]
    add_arguments: Callable[[argparse.ArgumentParser], None]
    main: Callable[[argparse.Namespace], None]
    make_parser: Callable[[], argparse.ArgumentParser]


def entry_points(name: str, options_class: type, rows: Callable, features: dict, summary: str, doc: str | None,
                 module: str) -> EntryPoints:
    """`build(**options)`, `add_arguments(parser)`, `main(args)` and `make_parser()` of the builder `name`."""

    def build(progress: bool | None = None, **options) -> DatasetDict:
        return build_generated(name, options_class, options, rows, features, progress)

    def add_arguments(parser) -> None:
        add_generation_arguments(parser, options_class)

    def main(args) -> None:
        run_generated(name, options_class, build, summary, args)

    def make_parser() -> argparse.ArgumentParser:
        parser = base_parser(doc, f"python -m data_builders.{name}")
        add_arguments(parser)
        return parser

    build.__doc__ = (f"The {name} DatasetDict; `options` are {options_class.__name__} fields plus family spec options "
                     "(min_digits, max_depth...).")
    build.__signature__ = generated_signature(options_class)
    add_arguments.__doc__ = f"The {name} builder's flags: {options_class.__name__}, family specs, output."
    main.__doc__ = "Build from the parsed flags, then card, save and push."
    make_parser.__doc__ = f"The parser of `python -m data_builders.{name}`."
    for function in (build, add_arguments, main, make_parser):
        function.__module__ = module
        function.__qualname__ = function.__name__
    return EntryPoints(build, add_arguments, main, make_parser)
