"""Train the tokenizer MathGPT reads with: a byte-level BPE from `tokenizers` that never merges digits.

Why these choices:
- Every digit is its own token (`Digits(individual_digits=True)` runs before BPE), so `123` and `321` share their
  pieces and the model can learn place-value arithmetic; words such as `Evaluate`, `Step` or `answer` still merge.
- Optionally (`merge_number_spaces=True`) the space before a number stays with its first digit (` 17` -> ` 1`, `7`
  instead of ` `, `1`, `7`). Text that writes many numbers between spaces gets fewer tokens (19% on the
  expressions), the space stops being the most frequent token (ambiguous for a model that copies by looking back at
  the previous token), and a negative number (` -7`: ` -`, `7`) no longer tokenises like a minus followed by a
  number (` - 7`: ` -`, ` 7`).
- Byte-level pre-tokenisation and decoding make `decode(encode(text)) == text` for any string, spaces included,
  unless `rewrites` are given: a normalizer (saved in tokenizer.json, so `AutoTokenizer` applies it for every user)
  then rewrites the text before it is split, e.g. arithmetic's spacing (`3 + 4 = ?` encodes as `3+4=?`).
- `<pad>` differs from `<eos>`: if they were the same, completion-only SFT would mask the real end of sequence and
  the model would never learn to stop.
- Nothing is added automatically (no BOS), like Qwen: prompts and completions tokenise the same alone or joined.
"""

import re
from collections.abc import Iterable

from collections.abc import Sequence

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
THINK, END_THINK = "<think>", "</think>"
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK, THINK, END_THINK]

# Plain-text chat: the user's text, then the assistant's answer ended by <eos>. `{% generation %}` marks the tokens
# `assistant_only_loss=True` trains on.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{% generation %}{{ message['content'] }}{{ eos_token }}{% endgeneration %}"
    "{%- else -%}"
    "{{ message['content'] }}"
    "{%- endif -%}"
    "{%- endfor -%}"
)

MIN_VOCAB_SIZE = 256 + len(SPECIAL_TOKENS)  # the byte alphabet plus the special tokens


def _byte_level_bpe(vocab_size: int, merge_number_spaces: bool = False,
                    rewrites: Sequence[tuple[str, str]] = ()) -> tuple[Tokenizer, trainers.BpeTrainer]:
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    if rewrites:
        tokenizer.normalizer = normalizers.Sequence([normalizers.Replace(Regex(pattern), replacement)
                                                     for pattern, replacement in rewrites])
    # Digits first: each digit becomes its own piece, so no merge can ever span two digits. The regex variant keeps
    # one space in front of a digit in the same piece, so BPE can learn ` 1` ... ` 9` as tokens.
    digits = (
        pre_tokenizers.Split(Regex(r" ?\d"), behavior="isolated")
        if merge_number_spaces
        else pre_tokenizers.Digits(individual_digits=True)
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [digits, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    return tokenizer, trainer


def wrap_tokenizer(tokenizer: Tokenizer, model_max_length: int = 256) -> PreTrainedTokenizerFast:
    """Wrap a `tokenizers.Tokenizer` holding mathalign's special tokens as a transformers fast tokenizer."""
    missing = [t for t in (PAD, BOS, EOS, UNK) if tokenizer.token_to_id(t) is None]
    if missing:
        raise ValueError(f"wrap_tokenizer: the tokenizer lacks the special tokens {missing}.")
    # <think> and </think> stay atomic but are *not* skipped on decode: TRL decodes completions with
    # skip_special_tokens=True before scoring them, and the format reward must see the tags (Qwen3 does the same).
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in (THINK, END_THINK)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        model_max_length=model_max_length,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def train_tokenizer(
    texts: Iterable[str], vocab_size: int = 512, model_max_length: int = 256, merge_number_spaces: bool = False,
    rewrites: Sequence[tuple[str, str]] = (),
) -> PreTrainedTokenizerFast:
    """Train a digit-preserving byte-level BPE on `texts` and return it as a `PreTrainedTokenizerFast`.

    >>> tok = train_tokenizer(["Evaluate: 12 + 7", "The answer is 19."], vocab_size=300)
    >>> tok.convert_ids_to_tokens(tok("123")["input_ids"])
    ['1', '2', '3']

    `merge_number_spaces=True` keeps the space before a number with its first digit (see the module docstring).
    `rewrites`: (regex, replacement) pairs the tokenizer's normalizer applies, in order, to every text it encodes
    (a task family's `tokenizer_rewrites`):

    >>> from mathalign.tasks import get_task
    >>> rewrites = get_task("arithmetic").tokenizer_rewrites
    >>> tok = train_tokenizer(["3+4=? The answer is 7."], vocab_size=300, rewrites=rewrites)
    >>> tok.decode(tok("3 + 4 = ? The answer is 7.").input_ids)
    '3+4=? The answer is 7.'
    """
    if not isinstance(vocab_size, int) or vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(
            f"train_tokenizer: vocab_size must be an integer >= {MIN_VOCAB_SIZE} (256 bytes + "
            f"{len(SPECIAL_TOKENS)} special tokens), got {vocab_size!r}."
        )
    try:
        for pattern, _ in rewrites:
            re.compile(pattern)
    except (TypeError, ValueError, re.error) as e:
        raise ValueError(f"train_tokenizer: `rewrites` must be (regex, replacement) pairs; {e}") from None
    tokenizer, trainer = _byte_level_bpe(vocab_size, merge_number_spaces, rewrites)
    tokenizer.train_from_iterator(iter(texts), trainer=trainer)
    return wrap_tokenizer(tokenizer, model_max_length=model_max_length)


def digit_token_ids(tokenizer: PreTrainedTokenizerFast) -> list[int]:
    """The ids of the tokens that are a number's digits: `0`...`9`, and ` 0`...` 9` under `merge_number_spaces`.

    What an Abacus MathGPT (`MathGPTConfig(abacus_embeddings=True, digit_token_ids=...)`) counts digit runs with.

    >>> tok = train_tokenizer(["12 + 7 = 19"], vocab_size=300)
    >>> sorted(tok.decode([i]) for i in digit_token_ids(tok))
    ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']
    """
    pieces = {i: tokenizer.decode([i]) for i in range(len(tokenizer))}
    return sorted(i for i, piece in pieces.items() if re.fullmatch(r" ?[0-9]+", piece))


def token_ids_containing(tokenizer: PreTrainedTokenizerFast, text: str) -> list[int]:
    """The ids of every (non-special) token whose text contains `text`: `"?"` -> `?`, `=?`, ... (an Abacus
    MathGPT's `abacus_prompt_end_token_ids`). An error when there is none: the model could never see it.

    >>> tok = train_tokenizer(["72/4=?", "x-5=2, x=?"], vocab_size=300)
    >>> sorted(tok.decode([i]) for i in token_ids_containing(tok, "?"))
    ['=?', '?']
    """
    special = set(tokenizer.all_special_ids)
    ids = sorted(i for i in range(len(tokenizer)) if i not in special and text in tokenizer.decode([i]))
    if not ids:
        raise ValueError(f"no token of this tokenizer contains {text!r}.")
    return ids


__all__ = ["SPECIAL_TOKENS", "digit_token_ids", "token_ids_containing", "train_tokenizer", "wrap_tokenizer"]
