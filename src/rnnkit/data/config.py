"""Where a classifier's data comes from and how text becomes ids: one typed config, shared by CLI and API."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rnnkit.config_fields import help_field as _help
from rnnkit.data.bundled import ClassificationSplits, bundled_names, load_bundled
from rnnkit.data.errors import DataError
from rnnkit.data.examples import Example
from rnnkit.data.folds import stratified_holdout
from rnnkit.data.readers import FORMATS, check_labels, detect_format, read_examples
from rnnkit.validation import check_choice, check_nonnegative_int, check_positive_int, check_probability


@dataclass
class ClassifierDataConfig:
    data: str = _help("a bundled data set (see `rnnkit datasets`) or a training file/folder", default="bbc-news")
    valid_data: str | None = _help("validation file; without one, valid_fraction of the training file is held out",
                                   default=None)
    test_data: str | None = _help("test file, read only to report at the end", default=None)
    valid_fraction: float = _help("share of the training file held out for validation when no valid_data",
                                  default=0.1)
    format: str = _help("auto, csv, tsv, jsonl, fasttext or folder", default="auto")
    text_columns: str = _help("CSV/TSV text column(s): names or 0-based indices, comma-separated", default="text")
    label_column: str = _help("CSV/TSV label column: name or 0-based index", default="label")
    text_field: str = _help("JSON Lines text field", default="text")
    label_field: str = _help("JSON Lines label field", default="label")
    header: bool = _help("the CSV/TSV file starts with a header row (--no-header: columns by index)", default=True)
    csv_preset: str | None = _help("a documented CSV layout, e.g. ag_news (class 1-4, title, description)",
                               default=None)
    on_error: str = _help("bad records: raise (stop, naming file, line and field) or skip (count them)",
                          default="raise")
    tokenizer: str = _help("word or char", default="word")
    lowercase: bool = _help("lowercase text before tokenizing (word level)", default=True)
    min_freq: int = _help("keep tokens seen at least this often in training", default=2)
    max_vocab: int | None = _help("keep at most this many tokens (most frequent first)", default=50000)
    max_length: int | None = _help("keep the first N tokens of each text (None: all)", default=800)
    embeddings: str = _help("auto (GloVe 6B 50d for a word model with embedding_dim 50, else random), glove or "
                            "random; a missing GloVe stops the run unless this is random", default="auto")
    glove_words: int = _help("with GloVe, also add its N most frequent words to the vocabulary, so words never "
                             "seen in training still have a meaningful vector (0: training words only)",
                             default=0)

    def __post_init__(self):
        check_probability("valid_fraction", self.valid_fraction)
        check_choice("format", self.format, {"auto", *FORMATS})
        check_choice("on_error", self.on_error, {"raise", "skip"})
        check_choice("tokenizer", self.tokenizer, {"word", "char"})
        check_choice("embeddings", self.embeddings, {"auto", "glove", "random"})
        check_positive_int("min_freq", self.min_freq)
        for name in ("max_vocab", "max_length"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))
        check_nonnegative_int("glove_words", self.glove_words)
        for name in ("text_columns", "label_column", "text_field", "label_field"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip() or any(not c.strip() for c in value.split(",")):
                raise ValueError(f"{name} must name a column or field, got {value!r}")

    def reader_options(self, path: str) -> dict:
        # One detection for every caller: an unknown extension or a .txt without __label__ lines is an error
        # naming the file, never a guess.
        kind = detect_format(path) if self.format == "auto" else self.format
        options: dict = {"on_error": self.on_error}
        if kind in ("csv", "tsv"):
            if self.csv_preset:
                options["preset"] = self.csv_preset
            else:
                options["text_columns"] = [_column(c) for c in self.text_columns.split(",")]
                options["label_column"] = _column(self.label_column)
                options["header"] = self.header
        elif kind == "jsonl":
            options.update(text_field=self.text_field, label_field=self.label_field)
        elif kind in ("fasttext", "folder"):
            pass
        if kind == "tsv":
            options["delimiter"] = "\t"
        return {"format": "csv" if kind == "tsv" else kind, **options}


def _column(text: str):
    text = text.strip()
    return int(text) if text.isdigit() else text


def read_file(path: str, config: ClassifierDataConfig) -> tuple[list[Example], int]:
    if not Path(path).exists():
        raise DataError(path, message="no such file or folder")
    result = read_examples(path, **config.reader_options(path))
    if not result.examples:
        raise DataError(path, message="no usable records" + (f" ({result.skipped} skipped)" if result.skipped else ""))
    return result.examples, result.skipped


def load_classification_data(config: ClassifierDataConfig, seed: int = 0) -> tuple[ClassificationSplits, int]:
    """Train/valid/test examples and the label list; the second value counts skipped records.

    Every label problem is found here, before any training: one class only, a validation or test label that
    training never sees. Without ``valid_data`` the validation split is stratified (``stratified_holdout``).
    """
    if not Path(config.data).exists():
        if config.data not in bundled_names():
            raise DataError(config.data, message=f"no such file or folder, nor a bundled data set ({bundled_names()})")
        splits = load_bundled(config.data)
        if not isinstance(splits, ClassificationSplits):
            raise ValueError(f"data={config.data!r} is a text corpus for language models, not a classification set")
        return splits, 0
    train, skipped = read_file(config.data, config)
    notes: list[str] = []
    counts = Counter(e.label for e in train)
    if len(counts) < 2:
        (label, n), = counts.items()
        raise DataError(config.data, field="label", message=f"every example has the label {label!r} ({n} examples): "
                        "a classifier needs at least two classes")
    if config.valid_data:
        valid, more = read_file(config.valid_data, config)
        skipped += more
    else:
        if config.valid_fraction <= 0:
            raise ValueError("valid_fraction must be > 0 when there is no valid_data (early stopping needs it)")
        if max(counts.values()) < 2:
            raise DataError(config.data, message=f"each of the {len(counts)} classes has a single example, so "
                            "none can be held out for validation: give valid_data")
        held = set(stratified_holdout([e.label for e in train], config.valid_fraction, seed))
        valid = [e for i, e in enumerate(train) if i in held]
        train = [e for i, e in enumerate(train) if i not in held]
        rare = sorted(label for label, n in counts.items() if n * config.valid_fraction < 1)
        if rare:
            shown = ", ".join(f"{label!r} ({counts[label]})" for label in rare[:5]) + (" ..." if len(rare) > 5 else "")
            notes.append(f"{len(rare)} rare classes kept whole in training, not in validation "
                         f"(examples in {config.data}): {shown}")
    labels = sorted(counts)
    check_labels(valid, labels)
    test: list[Example] = []
    if config.test_data:
        test, more = read_file(config.test_data, config)
        skipped += more
        check_labels(test, labels)
    splits = ClassificationSplits(name=Path(config.data).name, train=train, valid=valid, test=test, labels=labels,
                                  notes=notes)
    return splits, skipped

