"""One entry point for every supported input format, and the unseen-label check.

The format readers live in their own modules (``csv_reader``, ``jsonl_reader``,
``fasttext_reader``, ``folder_reader``); this module re-exports them so callers
can write ``from rnnkit.data.readers import read_csv``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from rnnkit.data.csv_reader import read_csv
from rnnkit.data.errors import DataError
from rnnkit.data.examples import Example, ReadResult
from rnnkit.data.fasttext_reader import read_fasttext
from rnnkit.data.folder_reader import read_folder
from rnnkit.data.jsonl_reader import read_jsonl

__all__ = ["Example", "ReadResult", "read_csv", "read_jsonl", "read_fasttext", "read_folder",
           "read_examples", "detect_format", "check_labels", "FORMATS"]

FORMATS = ("csv", "tsv", "jsonl", "fasttext", "folder")
_BY_EXTENSION = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
                 ".ft": "fasttext", ".fasttext": "fasttext"}


def detect_format(path: str | os.PathLike) -> str:
    """The format ``read_examples(format="auto")`` would use for ``path``.

    Folders are ``"folder"``; files go by extension; a ``.txt`` file is fastText when its
    first non-blank line starts with ``__label__`` (the only common labelled ``.txt`` layout).
    """
    p = Path(path)
    if p.is_dir():
        return "folder"
    suffix = p.suffix.lower()
    if suffix in _BY_EXTENSION:
        return _BY_EXTENSION[suffix]
    if suffix == ".txt" and p.is_file():
        with p.open("rb") as handle:
            for raw in handle:
                if raw.strip():
                    if raw.lstrip().startswith(b"__label__"):
                        return "fasttext"
                    break
    if not p.exists():
        raise FileNotFoundError(f"{os.fspath(path)}: no such file or folder")
    raise ValueError(f"cannot tell the format of {os.fspath(path)!r} from its name; pass format= one of {FORMATS} "
                     f"(known extensions: {sorted(_BY_EXTENSION)}, .txt with __label__ lines, or a folder)")


def read_examples(path: str | os.PathLike, format: str = "auto", **options) -> ReadResult:
    """Read ``path`` with the reader for ``format`` (``"auto"``: see ``detect_format``).

    ``options`` go to the reader unchanged (``read_csv``, ``read_jsonl``, ``read_fasttext``,
    ``read_folder``); ``"tsv"`` is ``read_csv`` with a tab delimiter.
    """
    if format == "auto":
        format = detect_format(path)
    if format not in FORMATS:
        raise ValueError(f"format must be 'auto' or one of {FORMATS}, got {format!r}")
    if format == "tsv":
        options.setdefault("delimiter", "\t")
        format = "csv"
    reader = {"csv": read_csv, "jsonl": read_jsonl, "fasttext": read_fasttext, "folder": read_folder}[format]
    return reader(path, **options)


def check_labels(examples: Iterable[Example], known_labels: Iterable[str],
                 path: str | os.PathLike | None = None) -> None:
    """Raise a ``DataError`` at the first example whose label the model was not trained on.

    Args:
        examples: e.g. a test file read for evaluation.
        known_labels: the labels seen in training.
        path: file to name in the message; default: the file in the example's ``source``.

    Unlabelled examples (``label is None``) are not checked. The message names the
    file, line and field ``'label'``, lists the known labels and counts how many
    examples in total carry unseen labels, so one run shows the size of the problem.
    """
    known = set(known_labels)
    if not known:
        raise ValueError("known_labels must hold at least one label, got none")
    unseen = [ex for ex in examples if ex.label is not None and ex.label not in known]
    if not unseen:
        return
    first = unseen[0]
    file, line = first.location()
    others = f"; {len(unseen)} examples in all have unseen labels" if len(unseen) > 1 else ""
    raise DataError(file if path is None else path, line, "label",
                    f"label {first.label!r} was not seen in training (known: {sorted(known)}){others}")
