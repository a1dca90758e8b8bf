"""The one exception the data layer raises for bad input files.

A ``DataError`` always says *where* the problem is -- file, 1-based line and
field when they are known -- so a user can open the file and fix it without
reading a stack trace. It subclasses ``ValueError`` so callers that already
catch bad-value errors keep working.
"""

from __future__ import annotations

import os


class DataError(ValueError):
    """Bad input data, located by file, line (1-based) and field.

    ``str(err)`` renders as ``"reviews.csv, line 12, field 'label': empty label"``;
    parts that are unknown (``line=None`` or ``field=None``) are left out, e.g.
    ``"reviews.csv: file is empty"``.

    Attributes:
        path: the file (or folder) as the caller named it, as a string.
        line: 1-based line number, or ``None`` when the problem is not tied to a line.
        field: column / JSON field / part of the record, or ``None``.
        reason: the bare message, without the location prefix.
    """

    def __init__(self, path: str | os.PathLike, line: int | None = None, field: str | None = None,
                 message: str = "invalid data"):
        self.path = os.fspath(path)
        self.line = line
        self.field = field
        self.reason = message
        super().__init__(self._render())

    def _render(self) -> str:
        location = self.path
        if self.line is not None:
            location += f", line {self.line}"
        if self.field is not None:
            location += f", field {self.field!r}"
        return f"{location}: {self.reason}"

    def __reduce__(self):
        # The default pickling re-calls __init__ with ``self.args`` (the rendered
        # string), which would nest the location twice; rebuild from the parts.
        return (type(self), (self.path, self.line, self.field, self.reason))
