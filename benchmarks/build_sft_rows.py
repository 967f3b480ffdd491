"""How fast the SFT builder makes rows: 1,000,000 arithmetic rows in-process, then (optionally) saved to disk.

    python benchmarks/build_sft_rows.py                       # 1M arithmetic rows, 1-3 digit operands
    python benchmarks/build_sft_rows.py --task expressions --rows 200000
    python benchmarks/build_sft_rows.py --save /tmp/sft_1m    # also time save_to_disk

Target: 1,000,000 rows in under 60 s on a 2-core CPU. Operands go up to 3 digits because 1-2 digits hold only
~78,000 distinct problems, and a split never repeats a problem (the builder refuses such a request up front).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import data_builders.sft as sft  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="train rows to build (default: 1000000)")
    parser.add_argument("--task", default="arithmetic", help="arithmetic or expressions (default: arithmetic)")
    parser.add_argument("--max-digits", type=int, default=3, help="arithmetic operand digits (default: 3)")
    parser.add_argument("--save", default=None, help="also save_to_disk here and time it")
    args = parser.parse_args()

    family_options = {"max_digits": args.max_digits} if args.task == "arithmetic" else {}
    start, cpu_start = time.perf_counter(), time.process_time()
    dataset = sft.build(task=args.task, num_train=args.rows, num_validation=0, num_test=0, num_test_ood=0,
                        seed=0, progress=False, **family_options)
    built, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    rows = dataset["train"].num_rows
    # CPU time is the figure to compare on a shared machine: wall time also counts other people's processes
    print(f"built {rows:,} {args.task} SFT rows in {built:.1f} s wall ({cpu:.1f} s CPU): {rows / built:,.0f} rows/s "
          f"wall, {rows / cpu:,.0f} rows/s CPU")
    if args.save:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() if args.save == "tmp" else _nullcontext(args.save) as out:
            dataset.save_to_disk(out)
        print(f"save_to_disk in {time.perf_counter() - start:.1f} s")


class _nullcontext:
    def __init__(self, value):
        self.value = value

    def __enter__(self):
        return self.value

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    main()
