"""Reading a folder of class sub-folders, one file per document.

Layout::

    reviews/
        neg/  001.txt  002.txt ...
        pos/  001.txt ...

The sub-folder name is the label. Sub-folders and files are visited in sorted
name order so the result does not depend on the file system. Hidden entries
(names starting with ``.``, e.g. ``.DS_Store``) and files directly inside
``path`` are ignored, as are folders nested inside a class folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from rnnkit.data.decoding import TextCodec, first_bad_line
from rnnkit.data.errors import DataError
from rnnkit.data.examples import Example, ProblemLog, ReadResult


def _visible(entries) -> list[Path]:
    return sorted((p for p in entries if not p.name.startswith(".")), key=lambda p: p.name)


def read_folder(path: str | os.PathLike, encoding: str = "utf-8", on_error: str = "raise", *,
                fallback_encoding: str | None = None) -> ReadResult:
    """Read every document under ``path/<label>/``.

    Args:
        path: the folder holding one sub-folder per class.
        encoding: the documents' encoding.
        on_error: ``"raise"`` at the first bad document or ``"skip"`` and count it.
        fallback_encoding: decode a document that is not valid ``encoding`` with this one
            instead (e.g. ``"latin-1"`` for a corpus with a few legacy files).

    A document is bad when it is empty (after stripping) or does not decode; its
    ``DataError`` names the document's file, the line of the first bad byte and
    field ``'text'``. ``Example.source`` is ``"file:1"``. The text is the file's content,
    stripped of surrounding whitespace.
    """
    root = Path(path)
    if not root.is_dir():
        raise NotADirectoryError(f"{os.fspath(path)}: not a folder")
    codec = TextCodec(encoding, fallback_encoding)
    log = ProblemLog(path, on_error)
    class_dirs = [p for p in _visible(root.iterdir()) if p.is_dir()]
    if not class_dirs:
        raise DataError(path, message="no class sub-folders (expected path/<label>/<document files>)")

    examples: list[Example] = []
    for class_dir in class_dirs:
        for file in (p for p in _visible(class_dir.iterdir()) if p.is_file()):
            raw = file.read_bytes().decode(codec.encoding, errors="surrogateescape").removeprefix("\ufeff")
            text = codec.repair(raw)
            if text is None:
                log.report(first_bad_line(raw), "text", codec.describe_bad_bytes(raw), path=os.fspath(file))
                continue
            text = text.strip()
            if not text:
                log.report(1, "text", "empty text", path=os.fspath(file))
                continue
            examples.append(Example(text, class_dir.name, f"{os.fspath(file)}:1"))
    return log.result(examples)
