"""`mathalign convert`: bring checkpoints from other codebases into MathGPT form.

    mathalign convert nanogpt out/ckpt.pt --meta data/math_char/meta.pkl runs/nanogpt
"""

import argparse

NANOGPT_EXAMPLE = """\
example:
  mathalign convert nanogpt sft/gpt.pt --meta sft/meta.pkl runs/nanogpt-math
  python -c "import mathalign, transformers as t; t.AutoModelForCausalLM.from_pretrained('runs/nanogpt-math')"

The checkpoint is read with torch.load(weights_only=True) and meta.pkl with a plain-data unpickler: files that
contain other Python objects are refused, never executed. The codebook's character ids stay the model's ids;
mathalign's special tokens (<pad> <bos> <eos> <unk> <think> </think>) are appended after them.
"""


def run_nanogpt(args: argparse.Namespace) -> int:
    from .convert import convert_nanogpt  # torch and transformers load only when the command runs

    model, tokenizer = convert_nanogpt(args.checkpoint, args.out_dir, meta_path=args.meta, overwrite=args.overwrite)
    config = model.config
    print(
        f"converted nanoGPT {args.checkpoint} -> {args.out_dir}: {config.num_hidden_layers} layers, "
        f"width {config.hidden_size}, {config.num_attention_heads} heads, context {config.max_position_embeddings}, "
        f"bias={config.bias}, {model.num_parameters() / 1e6:.2f}M parameters"
    )
    if tokenizer is None:
        print("no --meta codebook given: saved the model only (token ids are nanoGPT's, no tokenizer).")
    else:
        print(f"tokenizer: {len(tokenizer) - len(tokenizer.all_special_tokens)} characters + special tokens "
              f"{tokenizer.all_special_tokens} (ids {len(tokenizer) - len(tokenizer.all_special_tokens)}..)")
    return 0


def add_parser(subparsers) -> None:
    """Register `mathalign convert nanogpt ...` on the top-level subparsers."""
    parser = subparsers.add_parser(
        "convert",
        help="import a checkpoint from another codebase (nanoGPT)",
        description="Import a checkpoint from another codebase as a MathGPT checkpoint directory.",
    )
    formats = parser.add_subparsers(dest="source", metavar="<source>", required=True)
    nanogpt = formats.add_parser(
        "nanogpt",
        help="a nanoGPT ckpt.pt (+ meta.pkl character codebook)",
        description="Convert a nanoGPT checkpoint (model_args + model state dict, as nanoGPT's train.py saves it) "
        "into a MathGPT checkpoint whose logits equal the original model's.",
        epilog=NANOGPT_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    nanogpt.add_argument("checkpoint", metavar="CKPT.pt", help="nanoGPT checkpoint, e.g. out/ckpt.pt")
    nanogpt.add_argument("out_dir", metavar="OUT_DIR", help="directory to write the MathGPT model (and tokenizer) to")
    nanogpt.add_argument("--meta", metavar="META.pkl", default=None,
                         help="nanoGPT character codebook (stoi/itos); without it no tokenizer is saved")
    nanogpt.add_argument("--overwrite", action="store_true",
                         help="replace OUT_DIR if it is an existing file or non-empty folder (everything in it is "
                              "deleted once the new checkpoint is complete)")
    nanogpt.set_defaults(func=run_nanogpt)
