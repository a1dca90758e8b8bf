"""The engine's private cache directory: the compiled kernels and the auto-tuning decisions.

Under ``$RNNKIT_CACHE`` (default ``~/.cache/rnnkit``). A shared library loaded from there runs with the
user's rights, so the directory and every file read from it are checked first:

* the directory is created mode 0700; an existing one must be a real directory (not a symlink) owned by this
  user and writable by nobody else. One that only others can *read* (an older rnnkit made it 0755) is
  tightened to 0700; one that others can write, or another user's, is refused: this process then works in a
  fresh private temporary directory (rebuilding there) and warns once, naming the directory and the fix;
* a file is opened without following links, relative to the checked directory's descriptor, and must be a
  regular file owned by this user and writable by nobody else; ``read`` returns it with the problem, if any;
* files are written atomically: a temporary name in the directory, then a rename, so a reader never sees
  half a file (concurrent processes included).
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import stat
import tempfile
import warnings
from pathlib import Path

_state: dict = {}


def root() -> Path:
    """Where the cache is asked to be (``$RNNKIT_CACHE`` or ``~/.cache/rnnkit``); see ``directory``."""
    return Path(os.environ.get("RNNKIT_CACHE") or Path.home() / ".cache" / "rnnkit")


def check_directory(path: Path) -> str | None:
    """Why ``path`` cannot be the private cache (it is tightened to 0700 if only others' read bits are set)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:  # another process made it meanwhile: check what it is
            pass
        st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return "it is a symbolic link"
    if not stat.S_ISDIR(st.st_mode):
        return "it is not a directory"
    if st.st_uid != os.geteuid():
        return f"it is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})"
    if st.st_mode & 0o022:
        return f"others can write into it (mode {stat.S_IMODE(st.st_mode):04o})"
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return None


def directory() -> Path:
    """The checked private cache directory of this process (a temporary one if the asked one is refused)."""
    asked = root()
    if _state.get("asked") == asked and os.path.isdir(_state["path"]):  # removed meanwhile: made and checked again
        return _state["path"]
    try:
        problem = check_directory(asked)
    except OSError as err:
        problem = f"it cannot be created or read ({err.strerror})"
    path = asked
    if problem is not None:
        path = Path(tempfile.mkdtemp(prefix="rnnkit-cache-"))  # mode 0700, ours
        atexit.register(shutil.rmtree, path, True)
        warnings.warn(f"rnnkit: the cache directory {asked} is refused: {problem}. Using {path} for this process "
                      f"(compiled kernels and tuning are not kept); make {asked} a directory of yours with "
                      f"mode 0700, or point RNNKIT_CACHE elsewhere", stacklevel=2)
    _state.update(asked=asked, path=path, problem=problem)
    return path


def refused() -> str | None:
    """Why the asked directory was refused this process (None: it is in use)."""
    directory()
    return _state["problem"]


def _open_dir(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    if check_fd(fd, directory=True) is not None:  # swapped since it was checked
        os.close(fd)
        raise PermissionError(f"{path} changed since it was checked")
    return fd


def check_fd(fd: int, directory: bool = False) -> str | None:
    """Why the open file ``fd`` may not be trusted (None: a regular file, or directory, of ours, writable only
    by us)."""
    st = os.fstat(fd)
    if not (stat.S_ISDIR(st.st_mode) if directory else stat.S_ISREG(st.st_mode)):
        return "not a directory" if directory else "not a regular file"
    if st.st_uid != os.geteuid():
        return f"owned by uid {st.st_uid}, not by this user"
    if st.st_mode & 0o022:
        return f"writable by others (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def open_checked(name: str) -> tuple[int | None, str | None]:
    """``(fd, None)`` for the cache file ``name`` if it may be trusted (the caller closes fd), else
    ``(None, why not)``; a missing file is ``(None, "missing")``."""
    dir_fd = _open_dir(directory())
    try:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
        except FileNotFoundError:
            return None, "missing"
        except OSError as err:  # ELOOP: a symbolic link
            return None, f"cannot be opened without following links ({err.strerror})"
        problem = check_fd(fd)
        if problem is not None:
            os.close(fd)
            return None, problem
        return fd, None
    finally:
        os.close(dir_fd)


def read(name: str) -> tuple[bytes | None, str | None]:
    """The contents of the cache file ``name`` and ``None``, or ``None`` and why it is not trusted."""
    fd, problem = open_checked(name)
    if fd is None:
        return None, problem
    with os.fdopen(fd, "rb") as f:
        return f.read(), None


def write(name: str, data: bytes, mode: int = 0o600, durable: bool = True) -> Path:
    """Write the cache file ``name`` atomically (a temporary name, then a rename); returns its path.

    ``durable=False`` skips the flush to disk (``fsync``, tens of milliseconds on a busy disk): for files whose
    loss in a power cut costs only their re-making, such as the tuner's decisions."""
    path = directory()
    dir_fd = _open_dir(path)
    tmp = f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                if durable:
                    os.fsync(f.fileno())
            os.chmod(tmp, mode, dir_fd=dir_fd)  # the umask may have taken bits the owner needs
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
            raise
    finally:
        os.close(dir_fd)
    return path / name
