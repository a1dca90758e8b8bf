"""Reading labelled texts from CSV and TSV files.

Columns are picked by header name or by 0-based index; several text columns are
joined with one space (AG News keeps a title and a description). Every data row
must have exactly as many fields as the header (or, without a header, as the
first row): a row with more usually means an unquoted delimiter inside a text,
which would silently shift columns, so it is reported rather than guessed at.

TSV files are read with quoting switched off: tab-separated corpora routinely
contain unbalanced ``"`` characters inside texts, and CSV quoting would make one
of them swallow every following line into a single field.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from rnnkit.data.decoding import TextCodec
from rnnkit.data.errors import DataError
from rnnkit.data.examples import Example, ProblemLog, ReadResult
from rnnkit.data.records import build_example, check_label_map

Column = str | int

# Presets fill in the layout of well-known files; see ``read_csv``.
PRESETS: dict[str, dict] = {
    # ag_news_csv/{train,test}.csv: "class","title","description", no header, classes 1..4.
    "ag_news": {
        "header": False,
        "label_column": 0,
        "text_columns": (1, 2),
        "label_map": {"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"},
    },
}

_DEFAULTS = {"header": True, "label_column": "label", "text_columns": ("text",), "label_map": None}
_EXTENSION_DELIMITERS = {".tsv": "\t", ".tab": "\t", ".csv": ","}


def _check_column(name: str, value, header: bool) -> Column:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"{name} must be a column name (str) or 0-based index (int), got {value!r}")
    if isinstance(value, int) and value < 0:
        raise ValueError(f"{name} must be a 0-based column index >= 0, got {value!r}")
    if isinstance(value, str) and not header:
        raise ValueError(f"{name} is the column name {value!r}, but header=False: use a 0-based index")
    return value


def _resolve(columns: Sequence[Column], header_row: list[str] | None, path, line: int) -> list[tuple[int, str]]:
    """Column specs -> ``(index, field name)``; a name missing from the header is a fatal ``DataError``."""
    names = [h.strip() for h in header_row] if header_row is not None else None
    resolved = []
    for col in columns:
        if isinstance(col, str):
            if col not in names:
                raise DataError(path, line, col, f"column not found; the header has {names}")
            positions = [i for i, name in enumerate(names) if name == col]
            if len(positions) > 1:
                # Taking the first (or the last) would be a silent guess at which one the user meant.
                raise DataError(path, line, col, f"the header names {len(positions)} columns {col!r} (0-based "
                                f"positions {', '.join(map(str, positions))}): rename one, or pick one by its "
                                "0-based index")
            resolved.append((positions[0], col))
        elif names is not None:
            if col >= len(names):
                raise DataError(path, line, f"column {col}", f"the header has only {len(names)} columns")
            resolved.append((col, names[col] or f"column {col}"))
        else:
            resolved.append((col, f"column {col}"))
    return resolved


def read_csv(path: str | os.PathLike, text_columns: Column | Sequence[Column] = ("text",),
             label_column: Column | None = "label", delimiter: str | None = None, header: bool = True,
             encoding: str = "utf-8", on_error: str = "raise", *, preset: str | None = None,
             label_map: Mapping[str, str] | None = None, fallback_encoding: str | None = None) -> ReadResult:
    """Read a CSV / TSV file of texts and labels.

    Args:
        path: the file.
        text_columns: one column or several (joined with a space), by header name or 0-based index.
        label_column: the label column, or ``None`` for unlabelled data (labels are ``None``).
        delimiter: field separator; ``None`` picks tab for ``.tsv``/``.tab`` and comma otherwise.
        header: whether the first non-blank row names the columns.
        encoding: the file's encoding.
        on_error: ``"raise"`` a ``DataError`` at the first bad row, or ``"skip"`` bad rows
            and count them in ``ReadResult.skipped``. A missing column, an empty file or a
            file without a single usable row raise in both modes.
        preset: ``"ag_news"`` for the AG News CSVs: no header, label in column 0 with values
            1-4 mapped to World, Sports, Business, Sci/Tech, text = columns 1 and 2. A preset
            sets ``header``, ``label_column``, ``text_columns`` and ``label_map``; passing any of
            those as well is an error.
        label_map: raw label -> label; a raw label outside the map is a bad row.
        fallback_encoding: re-decode fields that are not valid ``encoding`` with this one
            (e.g. ``"latin-1"``) instead of treating them as bad rows.

    Blank lines are ignored. ``Example.source`` is ``"path:line"`` of the row's first line.
    """
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
        given = {"header": header, "label_column": label_column, "text_columns": text_columns,
                 "label_map": label_map}
        clashes = [k for k, v in given.items() if v != _DEFAULTS[k]]
        if clashes:
            raise ValueError(f"preset {preset!r} sets {', '.join(clashes)}; do not pass them as well")
        header, label_column, text_columns, label_map = (PRESETS[preset][k] for k in given)
    if not isinstance(header, bool):
        raise TypeError(f"header must be a bool, got {header!r}")
    if isinstance(text_columns, str | int):
        text_columns = (text_columns,)
    text_columns = tuple(text_columns)
    if not text_columns:
        raise ValueError("text_columns must name at least one column, got an empty sequence")
    text_columns = tuple(_check_column("text_columns", c, header) for c in text_columns)
    if label_column is not None:
        label_column = _check_column("label_column", label_column, header)
    label_map = check_label_map(label_map)
    if delimiter is None:
        delimiter = _EXTENSION_DELIMITERS.get(Path(path).suffix.lower(), ",")
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\r\n\"":
        raise ValueError(f"delimiter must be one character other than a newline or quote, got {delimiter!r}")
    codec = TextCodec(encoding, fallback_encoding)
    log = ProblemLog(path, on_error)

    text = codec.read(path)
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    # strict: a quote in the wrong place or never closed is an error, not a silently merged field.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting, strict=True)
    examples: list[Example] = []
    text_fields = label_field = None
    width = width_line = None
    last_line = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            line, last_line = last_line + 1, reader.line_num
            span = f" (lines {line}-{last_line})" if last_line > line else ""
            hint = ", an unclosed quote?" if "end of data" in str(err) else ""
            log.report(line, None, f"malformed {'TSV' if delimiter == chr(9) else 'CSV'} row{span}: {err}{hint}")
            continue
        line, last_line = last_line + 1, reader.line_num
        if not row:
            continue
        if text_fields is None:
            header_row = row if header else None
            text_fields = _resolve(text_columns, header_row, path, line)
            if label_column is not None:
                label_field = _resolve((label_column,), header_row, path, line)[0]
            width, width_line = len(row), line
            needed = max(i for i, _ in text_fields + ([label_field] if label_field else []))
            if needed >= width:
                raise DataError(path, line, f"column {needed}", f"the first row has only {width} fields")
            if header:
                continue
        if len(row) != width:
            missing = [name for i, name in text_fields + ([label_field] if label_field else []) if i >= len(row)]
            like = "the header" if header else "the first row"
            log.report(line, missing[0] if missing else None,
                       f"row has {len(row)} fields, expected {width} like {like} (line {width_line})")
            continue
        texts = [(name, row[i]) for i, name in text_fields]
        label = (label_field[1], row[label_field[0]]) if label_field else None
        example = build_example(log, codec, line, texts, label, label_map)
        if example is not None:
            examples.append(example)
    # No header / first row was ever parsed (every row was malformed): result() reports that.
    return log.result(examples)
