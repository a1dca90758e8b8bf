"""Language-model corpora larger than memory: token ids encoded once into a file, then memory-mapped.

Reading a text into one ``str``, tokenizing it into a list and encoding it into an int64 tensor costs
tens of bytes per character. Here the text is read in pieces of about ``PIECE_BYTES`` (cut at whitespace,
so no word is split, and so the ids are those of the whole text read at once), and:

1. pass one tokenizes each piece and writes provisional ids (first appearance; a character's code point)
   to a scratch file, counting only what it needs;
2. the vocabulary is built from the counts of the training part (``Vocabulary.build``, the same rules as
   in memory), and the provisional ids are mapped to it, piece by piece, into ``train.ids`` (int16 when the
   vocabulary fits, else int32); validation and test files are encoded straight into their own files;
3. ``meta.json`` (token counts, the cut, the vocabulary) is written last, so a cache is complete or absent.

The cache folder is named by a hash of the files (path, size, modification time) and of every setting
that changes the ids, so a second run on the same text reads it back at once. ``open_cache`` maps the
files copy-on-write into tensors that share the page cache: the corpus is never in the process's own
memory, only the windows cut from it (``StreamBatcher`` turns them into int64 as it cuts them).

With no validation file the last ``valid_fraction`` of the tokens is held out, as ``load_corpus`` does
with characters (for a character tokenizer the two give the same ids).
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rnnkit.data.corpus import text_files
from rnnkit.data.errors import DataError
from rnnkit.data.tokenizers import CharTokenizer
from rnnkit.data.vocab import Vocabulary

PIECE_BYTES = 1 << 21
# Provisional ids (uint32) are handled in runs of this many.
RUN = 1 << 21
FORMAT = 1
UNICODE_SIZE = 0x110000


def text_bytes(path: str | os.PathLike) -> int:
    """Bytes of text under ``path``."""
    return sum(f.stat().st_size for f in text_files(path))


def iter_pieces(files: list[Path], piece_bytes: int | None = None) -> Iterator[str]:
    """The files' text in pieces, each ending at whitespace; files joined by a blank line, as ``read_text`` does."""
    piece_bytes = piece_bytes or PIECE_BYTES
    for number, path in enumerate(files):
        if number:
            yield "\n\n"
        decoder = codecs.getincrementaldecoder("utf-8")()
        carry, offset, seen = [], 0, False  # carry: the text read since the last cut, in reads
        with open(path, "rb") as handle:
            while True:
                raw = handle.read(piece_bytes)
                pending = decoder.getstate()[0]
                try:
                    text = decoder.decode(raw, final=not raw)
                except UnicodeDecodeError as err:
                    where = offset - len(pending) + err.start
                    raise DataError(str(path), _line_at(path, where), None,
                                    f"bytes that are not UTF-8 at offset {where}") from err
                offset += len(raw)
                seen = seen or not text.isspace() and bool(text)
                if not raw:
                    rest = "".join(carry) + text
                    if rest:
                        yield rest
                    break
                # Cut after the last whitespace, so a word (or a \r\n) is never split between pieces. A read
                # with none is carried whole into the next: a piece then ends at the next whitespace or at the
                # end of the file, so memory is bounded by the longest run without a space or newline (one
                # token for the word tokenizer), not by the piece size.
                cut = max(text.rfind("\n"), text.rfind(" ")) + 1
                if not cut:
                    carry.append(text)
                    continue
                piece, carry = "".join(carry) + text[:cut], [text[cut:]]
                yield piece
        if not seen:
            raise DataError(str(path), message="the file is empty")


def _line_at(path: Path, offset: int) -> int:
    """1-based line of byte ``offset`` (only computed for an error message)."""
    lines = 1
    with open(path, "rb") as handle:
        while offset > 0:
            raw = handle.read(min(offset, PIECE_BYTES))
            if not raw:
                break
            lines += raw.count(b"\n")
            offset -= len(raw)
    return lines


class _Provisional:
    """Provisional ids of a tokenizer's tokens: a character's code point, else the order of first appearance."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.chars = isinstance(tokenizer, CharTokenizer)
        self.index: dict[str, int] = {}

    def ids(self, piece: str) -> np.ndarray:
        if self.chars:
            return np.frombuffer(piece.encode("utf-32-le"), dtype=np.uint32)
        tokens = self.tokenizer.tokenize(piece)
        index = self.index
        return np.fromiter((index.setdefault(t, len(index)) for t in tokens), dtype=np.uint32, count=len(tokens))

    @property
    def size(self) -> int:
        return UNICODE_SIZE if self.chars else len(self.index)

    def tokens(self, ids: np.ndarray) -> list[str]:
        """The tokens of these provisional ids."""
        if self.chars:
            return [chr(i) for i in ids]
        every = list(self.index)
        return [every[i] for i in ids]


def _runs(path: Path, start: int, stop: int) -> Iterator[np.ndarray]:
    """Provisional ids [start, stop) of the scratch file, read a run at a time (not mapped: memory stays flat)."""
    with open(path, "rb") as handle:
        handle.seek(start * 4)
        for first in range(start, stop, RUN):
            yield np.fromfile(handle, dtype=np.uint32, count=min(RUN, stop - first))


def cache_key(paths: list[str | None], settings: dict) -> str:
    """A name for the cache of these files under these settings; any change to either gives another."""
    described = []
    for path in paths:
        if path is not None:
            described.append([[str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns] for f in text_files(path)])
        else:
            described.append(None)
    blob = json.dumps({"format": FORMAT, "files": described, "settings": settings}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _ids_dtype(vocab_size: int):
    return np.int16 if vocab_size <= np.iinfo(np.int16).max + 1 else np.int32


def build_cache(folder: str | os.PathLike, data: str, tokenizer, min_freq: int = 1, max_vocab: int | None = None,
                valid_fraction: float = 0.05, valid_data: str | None = None, test_data: str | None = None,
                reuse: str | os.PathLike | None = None) -> Path:
    """Encode ``data`` (and the validation / test texts) into ``folder/<key>/``; return that cache folder.

    An existing complete cache of the same files and settings is reused as it is: in ``folder``, or in
    ``reuse`` (another run's cache folder, e.g. the run a new one replaces), whose files are then linked in.
    """
    settings = {"tokenizer": tokenizer.to_config(), "min_freq": min_freq, "max_vocab": max_vocab,
                "valid_fraction": None if valid_data else valid_fraction}
    target = Path(folder) / cache_key([data, valid_data, test_data], settings)
    if (target / "meta.json").exists():
        return target
    if reuse is not None and _link_cache(Path(reuse) / target.name, target):
        return target
    target.mkdir(parents=True, exist_ok=True)
    coder = _Provisional(tokenizer)
    scratch = target / "provisional.u32"
    total = 0
    with open(scratch, "wb") as out:
        for piece in iter_pieces(text_files(data)):
            ids = coder.ids(piece)
            ids.tofile(out)
            total += ids.size
    cut = total if valid_data else int(total * (1 - valid_fraction))
    if cut < 2 or total - cut < 2 and not valid_data:
        scratch.unlink()
        raise ValueError(f"{data} is too short to hold out valid_fraction={valid_fraction} ({total} tokens)")
    counts = np.zeros(coder.size, dtype=np.int64)
    for run in _runs(scratch, 0, cut):
        seen_here = np.bincount(run)  # as long as the largest id in the run: short for ASCII text
        counts[: seen_here.size] += seen_here
    seen = np.flatnonzero(counts)
    tokens = coder.tokens(seen)
    vocab = Vocabulary.build(dict(zip(tokens, counts[seen].tolist(), strict=True)), min_freq=min_freq,
                             max_size=max_vocab)
    dtype = _ids_dtype(len(vocab))
    lookup = np.full(coder.size, vocab.unk_id, dtype=dtype)
    lookup[seen] = [vocab.token_id(t) for t in tokens]
    with open(target / "train.ids", "wb") as out:
        for run in _runs(scratch, 0, total):
            lookup[run].tofile(out)
    scratch.unlink()
    meta = {"format": FORMAT, "dtype": np.dtype(dtype).name, "tokens": total, "cut": cut,
            "vocab": vocab.to_dict(), "files": {}}
    for name, path in (("valid", valid_data), ("test", test_data)):
        if path is not None:
            meta["files"][name] = _encode(path, tokenizer, vocab, lookup if coder.chars else None, dtype,
                                          target / f"{name}.ids")
    partial = target / "meta.json.partial"
    partial.write_text(json.dumps(meta))
    partial.replace(target / "meta.json")
    return target


def _link_cache(source: Path, target: Path) -> bool:
    """Hard-link (or copy) the complete cache ``source`` to ``target``, ``meta.json`` last; False if it cannot."""
    if not (source / "meta.json").is_file():
        return False
    try:
        target.mkdir(parents=True, exist_ok=True)
        for path in sorted(source.glob("*.ids")):
            (target / path.name).unlink(missing_ok=True)
            try:
                os.link(path, target / path.name)  # the files are only ever mapped read-only: sharing is safe
            except OSError:
                shutil.copyfile(path, target / path.name)  # another file system, or no hard links there
        partial = target / "meta.json.partial"
        shutil.copyfile(source / "meta.json", partial)
        partial.replace(target / "meta.json")
    except OSError:
        shutil.rmtree(target, ignore_errors=True)
        return False
    return True


def _encode(path: str, tokenizer, vocab: Vocabulary, char_lookup: np.ndarray | None, dtype, out_path: Path) -> int:
    """Encode a text with a fixed vocabulary straight into ``out_path``; return its token count."""
    count = 0
    with open(out_path, "wb") as out:
        for piece in iter_pieces(text_files(path)):
            if char_lookup is not None:
                ids = char_lookup[np.frombuffer(piece.encode("utf-32-le"), dtype=np.uint32)]
            else:
                ids = np.asarray(vocab.encode(tokenizer.tokenize(piece)), dtype=dtype)
            ids.tofile(out)
            count += ids.size
    return count


@dataclass
class MemmapCorpus:
    """A cached corpus: its vocabulary and 1-D id tensors backed by the files (``test`` None without one)."""

    vocab: Vocabulary
    train: Tensor
    valid: Tensor
    test: Tensor | None


def _map(path: Path, dtype, count: int) -> Tensor:
    if count == 0:
        return torch.zeros(0, dtype=torch.long)
    # Copy-on-write ("c"): torch wants a writable array; nothing writes, so the pages stay the file's.
    return torch.from_numpy(np.memmap(path, dtype=dtype, mode="c", shape=(count,)))


def open_cache(folder: str | os.PathLike) -> MemmapCorpus:
    """Map a cache ``build_cache`` wrote; nothing is read into memory until a window is cut."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except FileNotFoundError as err:
        raise DataError(str(folder), message="not a complete token-id cache (no meta.json)") from err
    if meta.get("format") != FORMAT:
        raise DataError(str(folder), message=f"token-id cache format {meta.get('format')}, this rnnkit reads {FORMAT}")
    dtype = np.dtype(meta["dtype"])
    everything = _map(folder / "train.ids", dtype, meta["tokens"])
    train, held = everything[: meta["cut"]], everything[meta["cut"]:]
    files = meta["files"]
    valid = _map(folder / "valid.ids", dtype, files["valid"]) if "valid" in files else held
    test = _map(folder / "test.ids", dtype, files["test"]) if "test" in files else None
    return MemmapCorpus(Vocabulary.from_dict(meta["vocab"]), train, valid, test)
