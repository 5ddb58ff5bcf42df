"""Documents -> tokens -> packed fixed-length sequences, with a held-out validation split.

Sources (:class:`DataSpec`):

    synthetic  ``synthetic_corpus(n_docs, seed)``: offline, for tests and CPU demos
    files      local text (one document per paragraph), JSONL or Parquet files
               (a ``text`` field), read with Hugging Face ``datasets``
    hf         a Hub dataset streamed by name (default FineWeb-Edu ``sample-10BT``);
               needs the network

:func:`prepare` streams the documents once, assigns each to validation with
probability ``val_frac`` (seeded) until the validation set holds ``val_tokens``
targets, tokenizes, and appends the tokens -- every document preceded by
``<|endoftext|>`` -- to ``val.bin`` / ``train.bin`` (flat ``uint16``/``uint32``). At load
time a split of n tokens is cut into ``n // (T + 1)`` packed rows of ``T + 1`` tokens:
inputs ``row[:-1]``, targets ``row[1:]`` (T = seq_len). The same spec and seed give
byte-identical files. :class:`SequenceSampler` walks seeded permutations of the rows,
epoch after epoch, so batch contents depend on the seed and never on the micro-batch.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bayes_scaling.errors import InputError
from bayes_scaling.io import write_json
from training import tokenizer as tok

SOURCES = ("synthetic", "files", "hf")
FILE_BUILDERS = {".txt": "text", ".text": "text", ".md": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}
#: Characters of training text the BPE trainer sees at most.
BPE_TRAIN_CHARS = 20_000_000


@dataclass(frozen=True)
class DataSpec:
    """Where the documents come from and how they become sequences."""

    source: str = "synthetic"
    files: tuple[str, ...] = ()
    dataset: str = "HuggingFaceFW/fineweb-edu"
    dataset_config: str | None = "sample-10BT"
    text_field: str = "text"
    synthetic_docs: int = 4000
    tokenizer: str = "bpe:512"
    seq_len: int = 64
    val_tokens: int = 16384
    val_frac: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise InputError(f"data.source {self.source!r}: expected one of {', '.join(SOURCES)}")
        if self.source == "files" and not self.files:
            raise InputError("data.source 'files' needs data.files (or --data-files)")
        tok.vocab_size_of(self.tokenizer)
        for key in ("seq_len", "val_tokens", "synthetic_docs"):
            if int(getattr(self, key)) < 1:
                raise InputError(f"data.{key}: must be a positive integer, got {getattr(self, key)!r}")
        if not 0 < self.val_frac < 1:
            raise InputError(f"data.val_frac {self.val_frac}: must be between 0 and 1")

    @property
    def vocab_size(self) -> int:
        return tok.vocab_size_of(self.tokenizer)

    def describe(self) -> dict:
        """What identifies the data (file paths reduced to names: a plan keeps its ids on another machine)."""
        d = asdict(self)
        d["files"] = sorted(Path(f).name for f in self.files)
        if self.source != "hf":
            d.pop("dataset"), d.pop("dataset_config")
        if self.source != "synthetic":
            d.pop("synthetic_docs")
        return d


def iter_documents(spec: DataSpec) -> Iterator[str]:
    """The documents of ``spec`` in a fixed order (non-empty texts only)."""
    if spec.source == "synthetic":
        from training.synthetic import synthetic_corpus

        yield from synthetic_corpus(spec.synthetic_docs, spec.seed)
        return
    import datasets

    if spec.source == "hf":
        rows = datasets.load_dataset(spec.dataset, name=spec.dataset_config, split="train", streaming=True)
        yield from (r[spec.text_field] for r in rows if r[spec.text_field])
        return
    for path in spec.files:
        builder = FILE_BUILDERS.get(Path(path).suffix.lower())
        if builder is None:
            raise InputError(f"{path}: unknown file type; expected {', '.join(FILE_BUILDERS)}")
        if not Path(path).is_file():
            raise InputError(f"{path}: no such file")
        kwargs = {"sample_by": "paragraph"} if builder == "text" else {}
        rows = datasets.load_dataset(builder, data_files=[str(path)], split="train", streaming=True, **kwargs)
        for row in rows:
            if spec.text_field not in row:
                raise InputError(f"{path}: no field {spec.text_field!r} (fields: {', '.join(row)})")
            if row[spec.text_field] and row[spec.text_field].strip():
                yield row[spec.text_field]


def _split_draws(spec: DataSpec) -> Iterator[bool]:
    """Seeded per-document coin flips: True means 'goes to validation (while it has room)'."""
    rng = np.random.default_rng([spec.seed, 0x5EED])
    while True:
        yield from (rng.random(1024) < spec.val_frac)


def build_encoding(spec: DataSpec):
    """The tokenizer of ``spec``: a standard tiktoken encoding, or a BPE trained on training documents."""
    if not spec.tokenizer.startswith("bpe:"):
        return tok.standard_encoding(spec.tokenizer)

    def train_texts() -> Iterator[str]:
        chars = 0
        for doc, to_val in zip(iter_documents(spec), _split_draws(spec)):
            if not to_val:  # (documents drawn for validation never shape the tokenizer)
                yield doc
                chars += len(doc)
                if chars > BPE_TRAIN_CHARS:
                    return

    return tok.train_bpe(train_texts(), spec.vocab_size, name=spec.tokenizer)


def prepare(spec: DataSpec, out_dir: str | Path, max_train_tokens: int) -> dict:
    """Tokenize ``spec`` into ``out_dir`` (train.bin, val.bin, tokenizer.json, data.json).

    Reads documents until the validation set is full and the training set holds
    ``max_train_tokens`` tokens (or the source ends). Returns the data.json content.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    enc = build_encoding(spec)
    dtype = np.uint16 if enc.n_vocab <= 2**16 else np.uint32
    T = spec.seq_len
    val_need = (spec.val_tokens + T - 1) // T * (T + 1)  # whole rows of T + 1 tokens
    train_need = (max_train_tokens + T - 1) // T * (T + 1)
    counts = {"val": 0, "train": 0}
    exhausted = True
    docs = {"val": 0, "train": 0}
    tmp = {s: out_dir / f".{s}.bin.tmp" for s in counts}
    with open(tmp["val"], "wb") as fval, open(tmp["train"], "wb") as ftrain:
        files = {"val": fval, "train": ftrain}
        for doc, to_val in zip(iter_documents(spec), _split_draws(spec)):
            split = "val" if to_val and counts["val"] < val_need else "train"
            if split == "train" and counts["train"] >= train_need:
                if counts["val"] >= val_need:
                    exhausted = False
                    break
                continue
            ids = np.asarray([enc.eot_token, *enc.encode_ordinary(doc)], dtype=dtype)
            files[split].write(ids.tobytes())
            counts[split] += ids.size
            docs[split] += 1
    if counts["val"] < val_need:
        raise InputError(f"data: the corpus gave {counts['val']} validation tokens, fewer than val_tokens = "
                         f"{spec.val_tokens} needs ({val_need}); use a larger corpus or a smaller val_tokens/larger val_frac")
    if counts["train"] < 2 * (T + 1):
        raise InputError(f"data: only {counts['train']} training tokens; the corpus is too small")
    for s in counts:
        os.replace(tmp[s], out_dir / f"{s}.bin")
    tok.save_encoding(enc, out_dir / "tokenizer.json")
    meta = {
        "spec": spec.describe(),
        "vocab_size": enc.n_vocab,
        "dtype": np.dtype(dtype).name,
        "seq_len": T,
        "train_tokens": counts["train"],
        "val_tokens": counts["val"],
        "train_docs": docs["train"],
        "val_docs": docs["val"],
        "val_rows": val_need // (T + 1),
        "train_tokens_requested": max_train_tokens,
        "exhausted": exhausted,  # the source ended before train_tokens_requested
    }
    write_json(out_dir / "data.json", meta)
    return meta


class TokenData:
    """A prepared data directory: packed train rows, the fixed validation rows, the tokenizer."""

    def __init__(self, data_dir: str | Path) -> None:
        self.dir = Path(data_dir)
        meta_path = self.dir / "data.json"
        if not meta_path.exists():
            raise InputError(f"{self.dir}: no prepared data (data.json missing); run `python -m training.sweep plan` first")
        self.meta = json.loads(meta_path.read_text())
        self.seq_len = int(self.meta["seq_len"])
        self.vocab_size = int(self.meta["vocab_size"])
        self.train = self._rows("train")
        self.val = self._rows("val")[: int(self.meta["val_rows"])]

    def _rows(self, split: str) -> np.ndarray:
        flat = np.memmap(self.dir / f"{split}.bin", dtype=self.meta["dtype"], mode="r")
        width = self.seq_len + 1
        return flat[: flat.size // width * width].reshape(-1, width)

    @property
    def train_tokens(self) -> int:
        """Distinct training targets (rows x seq_len): a run of D tokens makes D / train_tokens epochs."""
        return self.train.shape[0] * self.seq_len

    def encoding(self):
        return tok.load_encoding(self.dir / "tokenizer.json")


class SequenceSampler:
    """Row indices for each optimizer step: consecutive slices of seeded per-epoch permutations.

    Step s takes rows ``[s*b, (s+1)*b)`` of the concatenation perm_0 ‖ perm_1 ‖ …, where
    perm_e = permutation of the n rows drawn from ``default_rng([seed, e])``.
    """

    def __init__(self, n_rows: int, seed: int) -> None:
        self.n_rows, self.seed = n_rows, seed

    def steps(self, batch_rows: int) -> Iterator[np.ndarray]:
        stream = itertools.chain.from_iterable(
            np.random.default_rng([self.seed, epoch]).permutation(self.n_rows) for epoch in itertools.count()
        )
        while True:
            yield np.fromiter(itertools.islice(stream, batch_rows), dtype=np.int64, count=batch_rows)
