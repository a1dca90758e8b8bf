"""Turning file bytes into text without losing track of bytes that do not decode.

Files are decoded with ``errors="surrogateescape"``: every byte that is not
valid in the encoding becomes a lone surrogate (U+DC80..U+DCFF) instead of
aborting the whole read. Parsing (CSV, JSON, fastText) then proceeds as usual,
and each field a reader actually uses is checked afterwards. That way a bad
byte is reported with its line and field, ``on_error="skip"`` drops only the
record that holds it, and a ``fallback`` encoding (typically ``"latin-1"``) can
re-decode just that field from its original bytes.
"""

from __future__ import annotations

import codecs
import os
import re
import select
from dataclasses import dataclass
from pathlib import Path

from rnnkit.data.errors import DataError

# How long a named pipe given as data may stay without a writer before the run gives up on it (a FIFO nobody
# writes to would otherwise hang the command for good).
PIPE_WAIT_S = 30.0


def read_bytes(path: str | os.PathLike) -> bytes:
    """The whole content of a file, or of a pipe once something writes to it.

    ``--data <(zcat train.csv.gz)`` is a pipe with its writer already running. A named pipe that nothing
    writes to would block ``open`` forever: it is opened without blocking, and refused if no data (or end of
    data) arrives within ``PIPE_WAIT_S`` seconds.
    """
    path = Path(path)
    if not path.is_fifo() or not hasattr(select, "poll"):
        return path.read_bytes()
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP)
        if not poller.poll(int(PIPE_WAIT_S * 1000)):
            raise DataError(path, message=f"a pipe that nothing wrote to in {PIPE_WAIT_S:g} s: start its writer "
                            "first (e.g. `cat data.csv > PIPE &`), or give a regular file")
        os.set_blocking(fd, True)
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)

_ESCAPED = re.compile("[\udc80-\udcff]+")


def _check_encoding(name: str, value) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be an encoding name (str), got {value!r}")
    try:
        codecs.lookup(value)
    except LookupError as err:
        raise ValueError(f"{name} must be a known text encoding, got {value!r}") from err
    return value


@dataclass(frozen=True)
class TextCodec:
    """How to decode a file: a primary encoding and an optional per-field fallback.

    Attributes:
        encoding: the encoding the file is expected to be in.
        fallback: encoding to re-decode a field with when its bytes are not valid in
            ``encoding`` (``None``: such a field is an error).
    """

    encoding: str = "utf-8"
    fallback: str | None = None

    def __post_init__(self):
        _check_encoding("encoding", self.encoding)
        if self.fallback is not None:
            _check_encoding("fallback_encoding", self.fallback)

    def read(self, path: str | os.PathLike) -> str:
        """The whole file as text (undecodable bytes escaped); an empty file is a ``DataError``."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{os.fspath(path)}: no such file")
        if path.is_dir():
            raise IsADirectoryError(f"{os.fspath(path)}: a folder, not a file (use read_folder for a folder of "
                                    "documents)")
        if not (path.is_file() or path.is_fifo()):  # a pipe (`--data <(zcat x.csv.gz)`) is read once, here
            raise DataError(path, message="not a regular file (a device or socket)")
        data = read_bytes(path)
        if not data.strip():
            raise DataError(path, message="file is empty")
        text = data.decode(self.encoding, errors="surrogateescape")
        # A UTF-8 byte-order mark would otherwise end up glued to the first header name.
        return text.removeprefix("\ufeff")

    def repair(self, value: str) -> str | None:
        """``value`` with escaped bytes re-decoded by the fallback; ``None`` if that is impossible."""
        if not _ESCAPED.search(value):
            return value
        if self.fallback is None:
            return None
        raw = value.encode(self.encoding, errors="surrogateescape")
        try:
            return raw.decode(self.fallback)
        except UnicodeDecodeError:
            return None

    def describe_bad_bytes(self, value: str) -> str:
        """Message for a field that did not decode, quoting the first offending bytes."""
        match = _ESCAPED.search(value)
        bad = match.group().encode(self.encoding, errors="surrogateescape") if match else b""
        tried = self.encoding if self.fallback is None else f"{self.encoding} or {self.fallback}"
        return f"bytes {bad[:8]!r} are not valid {tried}"


def first_bad_line(text: str) -> int:
    """1-based line of the first escaped (undecodable) byte in ``text``; 1 if there is none."""
    match = _ESCAPED.search(text)
    return text.count("\n", 0, match.start()) + 1 if match else 1
