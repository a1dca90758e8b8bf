"""Where a language model's text comes from: one typed config, shared by CLI and API, and the readers it picks."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rnnkit.config_fields import help_field as _help
from rnnkit.data.bundled import TextSplits, bundled_names, load_bundled
from rnnkit.data.decoding import read_bytes
from rnnkit.data.errors import DataError
from rnnkit.validation import check_choice, check_positive_int, check_probability


@dataclass
class CorpusConfig:
    data: str = _help("a bundled corpus (see `rnnkit datasets`), a text file, or a folder of .txt files",
                      default="shakespeare")
    valid_data: str | None = _help("validation text; without it the last valid_fraction of the text", default=None)
    test_data: str | None = _help("test text, read only to report at the end", default=None)
    valid_fraction: float = _help("share of the text held out (from its end) when no valid_data", default=0.05)
    tokenizer: str = _help("char or word", default="char")
    lowercase: bool = _help("lowercase before tokenizing", default=False)
    min_freq: int = _help("keep tokens seen at least this often", default=1)
    max_vocab: int | None = _help("keep at most this many tokens", default=None)
    bptt: int = _help("tokens per truncated-BPTT window", default=128)
    random_length: bool = _help("vary the window length around bptt", default=False)
    eval_streams: int = _help("during training, score validation as this many side-by-side streams "
                              "(1 = exact, slowest); the final figures are always exact", default=16)
    mmap: str = _help("encode the text piece by piece into a token-id file in the run folder and train from it "
                      "memory-mapped: on, off, or auto (texts over 256 MB)", default="auto")

    def __post_init__(self):
        check_choice("tokenizer", self.tokenizer, {"char", "word"})
        check_choice("mmap", self.mmap, {"auto", "on", "off"})
        check_probability("valid_fraction", self.valid_fraction)
        for name in ("min_freq", "bptt", "eval_streams"):
            check_positive_int(name, getattr(self, name))
        if self.max_vocab is not None:
            check_positive_int("max_vocab", self.max_vocab)
        if self.valid_fraction == 0 and not self.valid_data and self.data not in bundled_names():
            raise ValueError("valid_fraction must be > 0 when there is no valid_data (validation needs some text)")


def text_files(path: str | os.PathLike) -> list[Path]:
    """A text file, or the .txt files of a folder in sorted order (as ``read_text`` takes them)."""
    p = Path(path)
    if not p.exists():
        raise DataError(path, message="no such file or folder")
    files = sorted(p.glob("*.txt")) if p.is_dir() else [p]
    if not files:
        raise DataError(path, message="the folder holds no .txt files")
    return files


def read_text(path: str) -> str:
    """A UTF-8 text file, or every .txt file of a folder in sorted order joined by a blank line."""
    texts = []
    for f in text_files(path):
        raw = read_bytes(f)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            line = raw[: err.start].count(b"\n") + 1
            raise DataError(str(f), line, None, f"bytes that are not UTF-8 at offset {err.start}") from err
        if not text.strip():
            raise DataError(str(f), message="the file is empty")
        texts.append(text)
    return "\n\n".join(texts)


def load_corpus(config: CorpusConfig) -> TextSplits:
    if not Path(config.data).exists() and config.data in bundled_names():
        splits = load_bundled(config.data)
        if not isinstance(splits, TextSplits):
            raise ValueError(f"data={config.data!r} is a classification set, not a text corpus")
        return splits
    text = read_text(config.data)
    if config.valid_data:
        train, valid = text, read_text(config.valid_data)
    else:
        # At least 2 characters held out, so even a tiny text has something to validate on.
        cut = min(int(len(text) * (1 - config.valid_fraction)), len(text) - 2)
        if cut < 2:
            raise DataError(config.data, message=f"{len(text)} characters are too few to train on and hold out "
                            f"valid_fraction={config.valid_fraction} (at least 4 needed; give valid_data or more text)")
        train, valid = text[:cut], text[cut:]
    test = read_text(config.test_data) if config.test_data else ""
    return TextSplits(name=Path(config.data).name, train=train, valid=valid, test=test)
