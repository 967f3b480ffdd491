"""The machinery every data builder shares, by job (this module re-exports their names for older imports):

    options.py      BuildOptions, size checks, option resolution, command-line flags, the rebuild command
    sampling.py     exact, disjoint, stratified splits of problems (allocate, plan_quotas, draw_splits, caps)
    building.py     typed Features, common columns, Arrow datasets with content fingerprints (build_generated)
    publishing.py   cards, saving, pushing through mathalign.hub, and the command-line tail (finish, run_main)
"""

from __future__ import annotations

from .building import (
                       build_generated,
                       build_parameters,
                       common_columns,
                       common_features,
                       describe,
                       make_dataset,
                       type_names,
)
from .options import (
                       BYTES_PER_ROW,
                       IN_DISTRIBUTION,
                       MAX_ROWS,
                       PROGRESS_MIN_ROWS,
                       SAMPLING_ORDER,
                       SIZE_FIELDS,
                       SPLITS,
                       BuildOptions,
                       add_dataclass_arguments,
                       add_generation_arguments,
                       add_output_arguments,
                       check_row_count,
                       command_line,
                       generated_signature,
                       keyword_signature,
                       memory_limit_bytes,
                       options_from_args,
                       resolve_options,
)
from .publishing import (
                       check_out,
                       finish,
                       input_paths,
                       make_card,
                       make_parser,
                       run_generated,
                       run_main,
                       save,
                       size_category,
                       type_counts,
)
from .sampling import (
                       Label,
                       allocate,
                       draw_splits,
                       held_out_caps,
                       plan_quotas,
                       train_caps,
)

__all__ = [
                       "BYTES_PER_ROW",
                       "IN_DISTRIBUTION",
                       "MAX_ROWS",
                       "PROGRESS_MIN_ROWS",
                       "SAMPLING_ORDER",
                       "SIZE_FIELDS",
                       "SPLITS",
                       "BuildOptions",
                       "Label",
                       "add_dataclass_arguments",
                       "add_generation_arguments",
                       "add_output_arguments",
                       "allocate",
                       "build_generated",
                       "build_parameters",
                       "check_out",
                       "check_row_count",
                       "command_line",
                       "common_columns",
                       "common_features",
                       "describe",
                       "draw_splits",
                       "finish",
                       "generated_signature",
                       "held_out_caps",
                       "input_paths",
                       "keyword_signature",
                       "make_card",
                       "make_dataset",
                       "make_parser",
                       "memory_limit_bytes",
                       "options_from_args",
                       "plan_quotas",
                       "resolve_options",
                       "run_generated",
                       "run_main",
                       "save",
                       "size_category",
                       "train_caps",
                       "type_counts",
                       "type_names",
]
