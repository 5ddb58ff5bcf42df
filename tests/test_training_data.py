"""Tokenizer and data pipeline: offline BPE round trips, deterministic packing and split."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")
from bayes_scaling.errors import InputError  # noqa: E402
from training import tokenizer as tok  # noqa: E402
from training.data import DataSpec, SequenceSampler, TokenData, prepare  # noqa: E402
from training.synthetic import synthetic_corpus  # noqa: E402


def test_synthetic_corpus_is_deterministic_and_structured():
    a, b, c = synthetic_corpus(50, seed=1), synthetic_corpus(50, seed=1), synthetic_corpus(50, seed=2)
    assert a == b and a != c
    words = " ".join(a).split()
    assert len(set(words)) < len(words) / 5  # a small vocabulary, used again and again


def test_trained_bpe_round_trips_any_text_offline(tmp_path):
    docs = synthetic_corpus(300, seed=0)
    enc = tok.train_bpe(docs, 400)
    assert enc.n_vocab == 400 and enc.eot_token == 399
    for text in [docs[0], "héllo wörld ✓ 12345\n\n\ttabs  and  spaces", "", "<|endoftext|> as plain text"]:
        assert enc.decode(enc.encode_ordinary(text)) == text
    assert len(enc.encode_ordinary(docs[0])) < len(docs[0].encode()) / 3  # merges learned: ~4 bytes per token
    tok.save_encoding(enc, tmp_path / "tok.json")
    again = tok.load_encoding(tmp_path / "tok.json")
    assert again.encode_ordinary(docs[1]) == enc.encode_ordinary(docs[1]) and again.n_vocab == enc.n_vocab


def test_standard_encoding_offline_says_so(monkeypatch):
    def offline(name):
        raise ConnectionError("Failed to resolve 'openaipublic.blob.core.windows.net'")

    monkeypatch.setattr(tok.tiktoken, "get_encoding", offline)
    with pytest.raises(InputError, match="offline.*bpe:VOCAB"):
        tok.standard_encoding("gpt2")
    assert tok.vocab_size_of("gpt2") == 50257  # planning needs no download
    with pytest.raises(InputError, match="bpe:VOCAB"):
        tok.vocab_size_of("bpe:many")


SPEC = DataSpec(source="synthetic", synthetic_docs=400, tokenizer="bpe:300", seq_len=16, val_tokens=512)


def test_prepare_is_deterministic_and_packs_rows(tmp_path):
    meta = prepare(SPEC, tmp_path / "a", max_train_tokens=4000)
    prepare(SPEC, tmp_path / "b", max_train_tokens=4000)
    for name in ("train.bin", "val.bin", "tokenizer.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    data = TokenData(tmp_path / "a")
    assert data.train.shape[1] == data.val.shape[1] == 17  # T inputs + the shifted target
    assert data.val.shape[0] == 512 // 16  # exactly val_tokens targets
    assert data.train_tokens >= 4000 and meta["exhausted"] is False
    eot = data.encoding().eot_token
    assert data.train.reshape(-1)[0] == eot  # every document starts with the separator
    other = prepare(DataSpec(**{**SPEC.__dict__, "seed": 1}), tmp_path / "c", max_train_tokens=4000)
    assert (tmp_path / "c" / "val.bin").read_bytes() != (tmp_path / "a" / "val.bin").read_bytes()
    assert other["val_docs"] > 0


def test_validation_documents_never_reach_training(tmp_path):
    prepare(SPEC, tmp_path, max_train_tokens=10**9)
    data, enc = TokenData(tmp_path), TokenData(tmp_path).encoding()
    split = lambda rows: set(enc.decode(list(np.asarray(rows).reshape(-1))).split("<|endoftext|>")[1:-1])  # noqa: E731
    assert split(data.val) and not split(data.val) & split(data.train)
    assert json.loads((tmp_path / "data.json").read_text())["exhausted"] is True


def test_local_text_jsonl_and_parquet_files(tmp_path):
    docs = synthetic_corpus(200, seed=3)
    (tmp_path / "a.txt").write_text("\n\n".join(docs[:80]))
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps({"text": d}) for d in docs[80:140]))
    pd.DataFrame({"text": docs[140:]}).to_parquet(tmp_path / "c.parquet")
    files = tuple(str(tmp_path / n) for n in ("a.txt", "b.jsonl", "c.parquet"))
    spec = DataSpec(source="files", files=files, tokenizer="bpe:300", seq_len=16, val_tokens=256)
    meta = prepare(spec, tmp_path / "out", max_train_tokens=10**9)
    assert meta["train_docs"] + meta["val_docs"] == 200
    assert spec.describe()["files"] == ["a.txt", "b.jsonl", "c.parquet"]  # names, not machine-specific paths
    with pytest.raises(InputError, match="no such file"):
        prepare(DataSpec(source="files", files=(str(tmp_path / "missing.txt"),)), tmp_path / "x", 100)


def test_sampler_walks_seeded_epoch_permutations():
    steps = SequenceSampler(10, seed=0).steps(4)
    rows = np.concatenate([next(steps) for _ in range(5)])  # 20 rows = two epochs
    assert sorted(rows[:10]) == list(range(10)) and sorted(rows[10:]) == list(range(10))
    again = SequenceSampler(10, seed=0).steps(4)
    assert np.array_equal(np.concatenate([next(again) for _ in range(5)]), rows)
    assert not np.array_equal(next(SequenceSampler(10, seed=1).steps(10)), rows[:10])
