"""`mathalign data`: build the datasets (`data build <builder>`) and convert the seeds' files (`data convert ...`).

Each builder's flags come from its own module (`data_builders/<builder>.py`), so `mathalign data build sft` and
`python -m data_builders.sft` take exactly the same options.
"""

import argparse

DATA_EXAMPLES = """\
examples:
  mathalign data build sft --out data/sft --num-train 50000
  mathalign data build sft --out data/sft --num-train 80000 --overwrite   # replace an earlier build
  mathalign data build preferences --out data/dpo --answer-style explain --negatives near_miss refusal
  mathalign data build rl --out data/rl --task arithmetic expressions --max-depth 3
  mathalign data build gsm8k --out data/gsm8k --style rl           # openai/gsm8k from the Hub
  mathalign data convert import-pairs pos_neg_pairs.json --out data/seed_dpo
  mathalign data build sft --help                                  # every option of one builder
"""


def add_parser(subparsers) -> None:
    import data_builders
    from data_builders import seed_formats

    data = subparsers.add_parser(
        "data",
        help="build verifiable datasets (pretrain, sft, preferences, rl, gsm8k, aqua) and convert seed files",
        description="Build seeded, verifiable DatasetDicts with typed features, disjoint splits and a dataset card; "
        "save them to disk (arrow or parquet) and optionally push them to the Hub.",
        epilog=DATA_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = data.add_subparsers(dest="data_command", metavar="<data command>", required=True)

    build = commands.add_parser(
        "build",
        help="build one dataset",
        description="Build one dataset: " + "; ".join(f"{k}: {v}" for k, v in data_builders.BUILDERS.items()),
        epilog=DATA_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    builders = build.add_subparsers(dest="builder", metavar="<builder>", required=True)
    for name, summary in data_builders.BUILDERS.items():
        module = data_builders.get_builder(name)
        parser = builders.add_parser(name, help=summary, description=module.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(parser)
        parser.set_defaults(func=module.main)

    convert = commands.add_parser(
        "convert",
        help="import/export the seeds' formats (pos_neg_pairs.json, step-by-step JSONL)",
        description=seed_formats.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    seed_formats.add_arguments(convert)
