"""Writing an output file whole or not at all, with errors that name it.

A file is written under a temporary name in its own folder and renamed over the target once complete, so a
full disk or an interrupted run leaves no half-written PNG or page behind (and any earlier file stays as it
was); an OS error (ENOSPC, EACCES...) is reported against the file the user asked for, not the temporary name
or no name at all.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path


def named_os_error(err: OSError, path: str | Path) -> OSError:
    """The same error (errno, reason) reported against ``path``."""
    if err.errno is None:
        return OSError(f"{path}: {err}")
    return type(err)(err.errno, err.strerror or os.strerror(err.errno), str(path))


@contextlib.contextmanager
def reported_as(path: str | Path) -> Iterator[None]:
    """OS errors raised inside the block name ``path`` (e.g. a library's write to a temporary file)."""
    try:
        yield
    except OSError as err:
        raise named_os_error(err, path) from err


def write_atomically(path: str | Path, write: Callable[[Path], object]) -> Path:
    """``write(temporary)`` then rename the temporary over ``path``; on failure nothing is left and the
    error names ``path``. The temporary keeps ``path``'s suffix (writers that infer a format from it)."""
    path = Path(path)
    with reported_as(path):
        temporary = _reserve_temporary(path)
        try:
            write(temporary)
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    return path


def _reserve_temporary(path: Path) -> Path:
    # Not mkstemp: its files are 0600, and the output should get the usual umask-derived mode like any file.
    for _ in range(100):
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp{path.suffix}")
        try:
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return temporary
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name beside it", str(path))


def write_text_atomically(path: str | Path, text: str) -> Path:
    return write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def output_folder_problem(path: str | os.PathLike, option: str) -> str | None:
    """Why ``path`` (given as ``option``) cannot be a folder to write results in, or None.

    The one wording of these refusals: the pre-flight checks and the run folder both ask here.
    """
    if not str(path).strip():
        return f"{option} is empty: give a folder to write the results in"
    p = Path(path)
    if p.exists() and not p.is_dir():
        return f"{option} {p} is a file; it must be a folder or not exist yet"
    existing = next((a for a in [p, *p.absolute().parents] if a.exists()), None)
    if existing is not None and not existing.is_dir():
        return f"{option} {p} cannot be made: {existing} is a file"
    return None
