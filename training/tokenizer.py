"""Tokenizers as ``tiktoken.Encoding``: a standard encoding, or a BPE trained on the corpus.

``"gpt2"``, ``"cl100k_base"``, ``"o200k_base"`` … are tiktoken's standard encodings; their
BPE files are downloaded on first use (then cached in ``TIKTOKEN_CACHE_DIR``), so offline
they fail -- :func:`standard_encoding` says so in one line instead of a network traceback.

``"bpe:VOCAB"`` trains a byte-level BPE with VOCAB tokens on the training documents
(the ``tokenizers`` package does the training) and loads it into tiktoken the way
nanochat does: tiktoken needs only ``mergeable_ranks`` (token bytes -> rank) and the
pre-tokenisation regex ``pat_str``. The 256 single bytes take ranks 0..255 and the k-th
learned merge takes rank 256 + k; tiktoken merges the adjacent pair whose concatenation
has the lowest rank, which replays the merges in the order they were learned. The last
id is the document separator ``<|endoftext|>``. Small vocabularies keep CPU runs cheap
(the embedding and the output layer scale with the vocabulary).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from pathlib import Path

import tiktoken

from bayes_scaling.errors import InputError

EOT = "<|endoftext|>"

#: GPT-4's split pattern with numbers in runs of at most two digits (as in nanochat).
SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
)

#: Vocabulary sizes of tiktoken's standard encodings (known without downloading them).
STANDARD_VOCAB = {"gpt2": 50257, "r50k_base": 50257, "p50k_base": 50281, "cl100k_base": 100277, "o200k_base": 200019}


def vocab_size_of(name: str) -> int:
    """Vocabulary size a tokenizer spec will have (for planning, before any data is read)."""
    if name.startswith("bpe:"):
        return _bpe_vocab(name)
    if name in STANDARD_VOCAB:
        return STANDARD_VOCAB[name]
    raise InputError(f"tokenizer {name!r}: expected one of {', '.join(STANDARD_VOCAB)} or bpe:VOCAB (e.g. bpe:512)")


def _bpe_vocab(name: str) -> int:
    try:
        vocab = int(name.split(":", 1)[1])
    except ValueError:
        raise InputError(f"tokenizer {name!r}: expected bpe:VOCAB with an integer VOCAB, e.g. bpe:512") from None
    if not 257 <= vocab <= 65536:
        raise InputError(f"tokenizer {name!r}: VOCAB must be between 257 (bytes + separator) and 65536")
    return vocab


def standard_encoding(name: str) -> tiktoken.Encoding:
    """tiktoken's encoding ``name``; an InputError if its BPE file cannot be fetched (offline)."""
    vocab_size_of(name)
    try:
        return tiktoken.get_encoding(name)
    except Exception as err:  # requests/urllib errors differ by version; all mean "could not fetch"
        raise InputError(
            f"tokenizer {name!r}: tiktoken could not load its BPE file ({type(err).__name__}); offline? "
            "use a cached file (TIKTOKEN_CACHE_DIR) or tokenizer = \"bpe:VOCAB\" to train one on the corpus"
        ) from None


def train_bpe(texts: Iterable[str], vocab_size: int, name: str | None = None) -> tiktoken.Encoding:
    """Train a byte-level BPE of ``vocab_size`` tokens (separator included) and wrap it in tiktoken.

    A small corpus may support fewer merges than asked for; the encoding then has fewer tokens.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - 1, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[], show_progress=False)
    tok.train_from_iterator(texts, trainer)
    merges = json.loads(tok.to_str())["model"]["merges"]
    unbyte = {c: b for b, c in _bytes_to_unicode().items()}
    ranks = {bytes([b]): b for b in range(256)}
    for merge in merges:
        left, right = merge if isinstance(merge, list) else merge.split(" ")
        token = bytes(unbyte[c] for c in left + right)
        ranks.setdefault(token, len(ranks))
    return encoding_from_ranks(ranks, name or f"bpe:{vocab_size}")


def encoding_from_ranks(ranks: dict[bytes, int], name: str) -> tiktoken.Encoding:
    """A tiktoken encoding from mergeable ranks, with ``<|endoftext|>`` as the last id."""
    return tiktoken.Encoding(name=name, pat_str=SPLIT_PATTERN, mergeable_ranks=ranks,
                             special_tokens={EOT: len(ranks)})


def save_encoding(enc: tiktoken.Encoding, path: str | Path) -> None:
    """Write a trained encoding as JSON: name, pattern and base64 token bytes in rank order."""
    from bayes_scaling.io import write_json

    tokens = [base64.b64encode(enc.decode_single_token_bytes(i)).decode() for i in range(enc.eot_token)]
    write_json(path, {"name": enc.name, "pat_str": enc._pat_str, "tokens": tokens})


def load_encoding(path: str | Path) -> tiktoken.Encoding:
    """Read an encoding written by :func:`save_encoding`."""
    meta = json.loads(Path(path).read_text())
    ranks = {base64.b64decode(t): i for i, t in enumerate(meta["tokens"])}
    return tiktoken.Encoding(name=meta["name"], pat_str=meta["pat_str"], mergeable_ranks=ranks,
                             special_tokens={EOT: len(ranks)})


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (the ByteLevel alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))
