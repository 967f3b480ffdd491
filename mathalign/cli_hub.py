"""`mathalign push` and `mathalign push-dataset`: publish a run, a model, an adapter or a dataset to the Hub."""

import argparse

PUSH_EXAMPLES = """\
examples:
  mathalign push runs/sft --repo-id me/mathgpt-sft
  mathalign push runs/lora --repo-id me/mathgpt-lora --base-repo-id me/mathgpt-sft   # adapter + its local base
  HF_ENDPOINT=http://localhost:8080 mathalign push runs/sft/model --repo-id me/mathgpt-sft --private

A run directory is searched for its final model at the top, then in model/ and final/; checkpoint-*/ folders are
pushed only when named. The token comes from --token, HF_TOKEN or `hf auth login` (prefer the last two: a token on
the command line ends up in your shell history). A README.md model card is written into the pushed folder.
"""

PUSH_DATASET_EXAMPLES = """\
examples:
  mathalign data build sft --out data/sft
  mathalign push-dataset data/sft --repo-id me/mathalign-sft
  python -c "import datasets; print(datasets.load_dataset('me/mathalign-sft'))"
"""


def add_parser(subparsers) -> None:
    push = subparsers.add_parser(
        "push",
        help="publish a model, LoRA adapter or training run to the Hub with a model card",
        description="Push a model or LoRA adapter (safetensors, tokenizer, generation config, remote code, card) to "
        "the Hub or any server HF_ENDPOINT names; it then loads anywhere with trust_remote_code=True.",
        epilog=PUSH_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    push.add_argument("path", metavar="RUN_OR_MODEL_DIR", help="a save_pretrained folder or a training run directory")
    push.add_argument("--repo-id", required=True, metavar="USER/NAME", help="the Hub repo (created if missing)")
    push.add_argument(
        "--private", action="store_true", help="create the repo private (an existing repo keeps its visibility)"
    )
    push.add_argument(
        "--token", default=None, help="Hub token with write access (default: HF_TOKEN or `hf auth login`)"
    )
    push.add_argument("--commit-message", default=None, help="commit message (default: 'Upload <run> with mathalign')")
    push.add_argument(
        "--base-repo-id",
        default=None,
        metavar="USER/NAME",
        help="adapters only: the Hub repo of the base model; a local base folder is pushed there too",
    )
    push.add_argument(
        "--license",
        default=None,
        help="the card's license (a Hub license id such as apache-2.0 or other; default: the recipe's `license`, "
        "else apache-2.0 for a MathGPT, else none: a model built on another base keeps that base's license)",
    )
    push.set_defaults(func=run_push)

    push_data = subparsers.add_parser(
        "push-dataset",
        help="publish a saved DatasetDict (and its card) to a Hub dataset repo",
        description="Push a DatasetDict.save_to_disk folder to a Hub dataset repo with its README.md card; "
        "datasets.load_dataset(USER/NAME) then gives back the same rows and features.",
        epilog=PUSH_DATASET_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    push_data.add_argument("path", metavar="DIR", help="a folder written by DatasetDict.save_to_disk")
    push_data.add_argument("--repo-id", required=True, metavar="USER/NAME", help="the Hub dataset repo")
    push_data.add_argument(
        "--private", action="store_true", help="create the repo private (an existing repo keeps its visibility)"
    )
    push_data.add_argument(
        "--token", default=None, help="Hub token with write access (default: HF_TOKEN or `hf auth login`)"
    )
    push_data.add_argument("--commit-message", default=None, help="commit message")
    push_data.set_defaults(func=run_push_dataset)


def run_push(args) -> int:
    from .hub import push_model, resolve_model_dir

    folder = resolve_model_dir(args.path)
    kind = "LoRA adapter" if (folder / "adapter_config.json").is_file() else "model"
    print(f"Pushing the {kind} in {folder} to {args.repo_id}")
    if kind == "LoRA adapter" and args.base_repo_id:
        print(f"Its base model goes to (or is already in) {args.base_repo_id}")
    url = push_model(
        args.path,
        args.repo_id,
        private=args.private,
        token=args.token,
        commit_message=args.commit_message,
        base_repo_id=args.base_repo_id,
        license=args.license,
    )
    print(f"Done: {url}")
    return 0


def run_push_dataset(args) -> int:
    from .hub import push_dataset

    print(f"Pushing the dataset in {args.path} to {args.repo_id}")
    url = push_dataset(
        args.path, args.repo_id, private=args.private, token=args.token, commit_message=args.commit_message
    )
    print(f"Done: {url}")
    return 0
