"""Memory-mapped token ids: the same ids as reading the text whole, cached once, and memory that stays flat."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.api.language_model import train_language_model
from rnnkit.data import CharTokenizer, DataError, StreamBatcher, Vocabulary, WordTokenizer, mmap_stream
from rnnkit.data.corpus import CorpusConfig, load_corpus
from rnnkit.data.mmap_stream import build_cache, open_cache
from rnnkit.models.config import LanguageModelConfig
from rnnkit.models.language_model import RNNLanguageModel
from rnnkit.tasks.language_model import score_ids
from rnnkit.training import TrainConfig

TEXT = "Où sont les neiges d'antan?\r\nThe naïve café — 東京 🎉 x\n" * 40


@pytest.fixture
def small_pieces(monkeypatch):
    # 7-byte pieces: multi-byte characters and \r\n are cut across pieces, and the carry must mend them.
    monkeypatch.setattr(mmap_stream, "PIECE_BYTES", 7)


def _in_memory(data: str, tokenizer, valid_fraction=0.05, valid_data=None, min_freq=1, max_vocab=None):
    splits = load_corpus(CorpusConfig(data=data, valid_data=valid_data, valid_fraction=valid_fraction))
    train_tokens = tokenizer.tokenize(splits.train)
    vocab = Vocabulary.build([train_tokens], min_freq=min_freq, max_size=max_vocab)
    return vocab, vocab.encode(train_tokens), vocab.encode(tokenizer.tokenize(splits.valid))


def test_char_ids_equal_the_whole_text_read_at_once(tmp_path, small_pieces):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text(TEXT[:900], encoding="utf-8")
    (folder / "b.txt").write_text(TEXT[900:], encoding="utf-8")
    vocab, train, valid = _in_memory(str(folder), CharTokenizer(), valid_fraction=0.1)
    cached = open_cache(build_cache(tmp_path / "cache", str(folder), CharTokenizer(), valid_fraction=0.1))
    assert cached.vocab == vocab
    assert cached.train.tolist() == train and cached.valid.tolist() == valid
    assert cached.train.dtype == torch.int16 and cached.test is None


def test_word_ids_with_min_freq_and_a_validation_file(tmp_path, small_pieces):
    train_file, valid_file = tmp_path / "train.txt", tmp_path / "valid.txt"
    train_file.write_text(TEXT + "rare-word once\n", encoding="utf-8")
    valid_file.write_text("Les neiges du café, unseen words\n", encoding="utf-8")
    tokenizer = WordTokenizer(lowercase=True)
    vocab, train, valid = _in_memory(str(train_file), tokenizer, valid_data=str(valid_file), min_freq=2)
    cached = open_cache(build_cache(tmp_path / "cache", str(train_file), tokenizer, min_freq=2,
                                   valid_data=str(valid_file), test_data=str(valid_file)))
    assert cached.vocab == vocab and "once" not in cached.vocab
    assert cached.train.tolist() == train and cached.valid.tolist() == valid == cached.test.tolist()
    assert vocab.unk_id in valid


def test_a_long_word_across_the_piece_size_is_not_split(tmp_path, small_pieces):
    # Runs with no whitespace much longer than the 7-byte pieces, one at the very start and one at the end
    # of the file: cut mid-word, they would become several tokens (and ids) the whole text never has.
    word = "supercalifragilistic-" * 3
    text = f"{word}x the cat {word}y sat\r\non the mat {word}z"
    path = tmp_path / "long.txt"
    path.write_text(text, encoding="utf-8")
    pieces = list(mmap_stream.iter_pieces([path], piece_bytes=7))
    assert "".join(pieces) == text
    tokenizer = WordTokenizer()
    assert [t for p in pieces for t in tokenizer.tokenize(p)] == tokenizer.tokenize(text)
    assert all(p[-1] in " \n" for p in pieces[:-1])
    valid_file = tmp_path / "valid.txt"
    valid_file.write_text(f"the {word}z cat{word}", encoding="utf-8")
    vocab, train, valid = _in_memory(str(path), tokenizer, valid_data=str(valid_file))
    cached = open_cache(build_cache(tmp_path / "cache", str(path), tokenizer, valid_data=str(valid_file)))
    assert cached.vocab == vocab and f"{word}x" in cached.vocab
    assert cached.train.tolist() == train and cached.valid.tolist() == valid


def test_cache_is_reused_and_rebuilt_when_the_text_changes(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text(TEXT, encoding="utf-8")
    first = build_cache(tmp_path / "cache", str(text), CharTokenizer())
    stamp = (first / "train.ids").stat().st_mtime_ns
    assert build_cache(tmp_path / "cache", str(text), CharTokenizer()) == first
    assert (first / "train.ids").stat().st_mtime_ns == stamp
    assert build_cache(tmp_path / "cache", str(text), CharTokenizer(), valid_fraction=0.2) != first
    text.write_text(TEXT + "more", encoding="utf-8")
    assert build_cache(tmp_path / "cache", str(text), CharTokenizer()) != first
    assert not list((tmp_path / "cache").glob("*/provisional.u32"))  # the scratch file is gone


def test_bad_bytes_and_empty_files_are_named(tmp_path, small_pieces):
    bad = tmp_path / "bad.txt"
    bad.write_bytes("line one\nline two é\n".encode() + b"\xff oops\n")
    with pytest.raises(DataError, match=re.escape(f"{bad}, line 3: bytes that are not UTF-8 at offset 21")):
        build_cache(tmp_path / "cache", str(bad), CharTokenizer())
    empty = tmp_path / "empty.txt"
    empty.write_text(" \n\n", encoding="utf-8")
    with pytest.raises(DataError, match="the file is empty"):
        build_cache(tmp_path / "cache", str(empty), CharTokenizer())
    with pytest.raises(DataError, match="not a complete token-id cache"):
        open_cache(tmp_path / "cache")


def _anon_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise OSError("no RssAnon")


class _PeakAnon:
    """The highest anonymous resident memory (KiB) seen while the block runs, sampled every 2 ms."""

    def __enter__(self):
        self.base = self.peak = _anon_kib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _anon_kib())
            time.sleep(0.002)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _anon_kib())

    @property
    def grew_mib(self) -> float:
        return (self.peak - self.base) / 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RssAnon from /proc (Linux)")
def test_memory_stays_flat_on_a_100_mb_corpus(tmp_path):
    rng = np.random.default_rng(0)
    block = "".join(rng.choice(list("abcdefghij klmnop\n"), size=1 << 20).tolist()).encode()
    big = tmp_path / "big.txt"
    with open(big, "wb") as out:
        for _ in range(100):
            out.write(block)
    tokens = 100 << 20
    torch.manual_seed(0)
    model = RNNLanguageModel(LanguageModelConfig(embedding_dim=8, hidden_size=8, num_layers=1, dropout=0.0), 20)
    with _PeakAnon() as memory:
        cached = open_cache(build_cache(tmp_path / "cache", str(big), CharTokenizer()))
        batcher = StreamBatcher(cached.train, 32, 64)
        for step, (x, _) in enumerate(batcher):
            model(x)
            if step == 3:
                break
        tail = cached.valid[-5000:]
        score_ids(model, tail, window=500, streams=2)
    assert cached.train.numel() + cached.valid.numel() == tokens
    # Read whole, the corpus would take 100 MB as text, 800 MB as int64 ids, several GB as a list of characters.
    print(f"anonymous memory grew by {memory.grew_mib:.1f} MiB")
    assert memory.grew_mib < 64, f"anonymous memory grew by {memory.grew_mib:.0f} MiB"


def test_train_lm_from_a_memory_mapped_corpus(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text(TEXT * 3, encoding="utf-8")
    model = LanguageModelConfig(embedding_dim=8, hidden_size=8, num_layers=1, dropout=0.0)
    train = TrainConfig(epochs=1, batch_size=4, max_steps=3, eval_every=3, progress=False, patience=None)
    lm, summary = train_language_model(CorpusConfig(data=str(text), bptt=16, mmap="on", eval_streams=1),
                                       tmp_path / "run", model=model, train=train)
    assert list((tmp_path / "run" / "token-ids").glob("*/meta.json"))
    assert summary["steps"] == 3 and lm.vocab == _in_memory(str(text), CharTokenizer())[0]
    assert summary["final_valid_bits_per_char"] == pytest.approx(summary["valid_bits_per_char"], rel=1e-5)


def test_a_run_replacing_another_reuses_its_token_id_cache(tmp_path, monkeypatch):
    # Each run writes into a fresh staging folder: without reuse, --overwrite would encode the whole corpus again.
    text = tmp_path / "t.txt"
    text.write_text(TEXT * 3, encoding="utf-8")
    model = LanguageModelConfig(embedding_dim=8, hidden_size=8, num_layers=1, dropout=0.0)
    train = TrainConfig(epochs=1, batch_size=4, max_steps=3, eval_every=3, progress=False, patience=None)
    corpus = CorpusConfig(data=str(text), bptt=16, mmap="on", eval_streams=1)
    _, first = train_language_model(corpus, tmp_path / "run", model=model, train=train)
    before = {p.relative_to(tmp_path / "run"): p.read_bytes() for p in (tmp_path / "run" / "token-ids").rglob("*")
              if p.is_file()}

    def no_encoding(*args, **kwargs):
        raise AssertionError("the corpus was encoded again")

    monkeypatch.setattr(mmap_stream, "iter_pieces", no_encoding)
    _, second = train_language_model(corpus, tmp_path / "run", model=model, train=train, overwrite=True)
    after = {p.relative_to(tmp_path / "run"): p.read_bytes() for p in (tmp_path / "run" / "token-ids").rglob("*")
             if p.is_file()}
    assert after == before and len(before) >= 2
    assert second["final_valid_bits_per_char"] == first["final_valid_bits_per_char"]
