"""A run folder that is either absent, a finished run, or untouched: staging, refusal, resume and publication.

A run writes into a staging folder beside its ``--out`` (``.NAME.staging-XXXXXX``) and
renames it into place only when everything (model, report, log) is written, so
``--out`` always holds a complete run whose report matches the model beside it.

* An existing ``--out`` is refused before anything is written, unless ``overwrite``;
  even then the old run stays in place until the new one is complete.
* While a run is alive it holds an exclusive lock on ``.lock`` in its staging folder
  (released by the kernel however the process ends), so a second run to the same
  ``--out`` is refused rather than mixed in. Opening takes turns on a lock of the
  parent folder, so a staging folder is locked before another run can see it.
* The resumable training state lives in ``resume/`` of the staging folder with the
  run's settings in ``run.json``. A killed run leaves its staging folder behind; a
  new run refuses to start over it (pass ``overwrite`` to discard it), and
  ``resume`` adopts it. ``resume/`` is deleted when the run is published.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; concurrent runs to one --out are then not detected
    fcntl = None

from rnnkit.models.config import ClassifierConfig, LanguageModelConfig
from rnnkit.outputs import output_folder_problem
from rnnkit.training.checkpoint import _swap_in, siblings_named
from rnnkit.training.state import STATE_FILE, check_state_file, state_world_size
from rnnkit.training.trainer import INTERRUPTED, NON_FINITE, RESUMABLE_CHANGES

SETTINGS_FILE = "run.json"
RESUME_DIR = "resume"
LOCK_FILE = ".lock"
# What tempfile.mkdtemp adds after the ``.NAME.staging-`` prefix.
_TEMP_SUFFIX = "[a-z0-9_]{8}"
# Settings a resumed run may change: they alter no number of the result (the trainer's own list, so the two
# checks of a resumed run's settings cannot disagree).
CHANGEABLE_ON_RESUME = tuple(f"train.{name}" for name in RESUMABLE_CHANGES)


class RunFolderError(ValueError):
    """--out cannot be used as asked (exists, busy, nothing to resume); one line, nothing written."""


class RunFolder:
    """The staging folder of one run aimed at ``out``; ``open`` it, train into ``path``, then ``publish``.

    Args:
        out: the final run folder (``--out``).
        overwrite: replace a finished run at ``out`` when this one completes, and discard an interrupted one.
        resume: continue the interrupted run of ``out`` instead of starting a new one.
        command: how the user starts this kind of run, for messages (``rnnkit train``).
    """

    def __init__(self, out: str | Path, *, overwrite: bool = False, resume: bool = False,
                 command: str = "rnnkit train"):
        self.out = Path(out)
        self.overwrite, self.resume, self.command = overwrite, resume, command
        self.path: Path | None = None
        self._lock = None
        self.follower = False  # another process (torchrun's rank 0) owns the folder: never create, lock or move it

    @property
    def state_dir(self) -> Path:
        return self.path / RESUME_DIR

    def state_path(self, member: str | None = None) -> Path:
        """Where the trainer saves its resumable state (one file per ensemble member)."""
        return self.state_dir / (f"{member}.pt" if member else STATE_FILE)

    # -- opening --------------------------------------------------------------
    def open(self, settings: dict[str, Any], world_size: int = 1) -> RunFolder:
        """Check ``out``, then create (or, resuming, adopt) the staging folder; ``settings`` must be JSON.

        Runs started at the same instant take turns here (a lock on the folder that holds ``out``), so a
        staging folder is never seen by another run before its lock is taken: a run only ever deletes or
        adopts a folder whose lock it holds, and no run can mistake another's for an abandoned one.
        """
        problem = output_folder_problem(self.out, "--out")
        if problem is not None:
            raise RunFolderError(problem)
        if not self.resume:
            self.out.parent.mkdir(parents=True, exist_ok=True)
        with _locked_folder(self.out.parent):
            held = {}  # the staging folders of no live run, each with its lock now held by this process
            try:
                for staging in _staging_folders(self.out):
                    try:
                        handle = _try_lock(staging)
                    except FileNotFoundError:  # published or discarded by its run since it was listed
                        continue
                    if handle is None:
                        raise RunFolderError(f"--out {self.out}: another rnnkit run is writing it now ({staging})")
                    held[staging] = handle
                return self._open(settings, held, world_size)
            finally:
                for handle in held.values():
                    if handle is not self._lock:
                        handle.close()

    def _open(self, settings: dict[str, Any], leftovers: dict[Path, Any], world_size: int = 1) -> RunFolder:
        resumable = [p for p in leftovers if (p / SETTINGS_FILE).is_file() and any((p / RESUME_DIR).glob("*.pt"))]
        if self.resume:
            if not resumable:
                raise RunFolderError(_nothing_to_resume(self.out))
            self.path = max(resumable, key=lambda p: _newest_state(p))
            self._lock = leftovers[self.path]  # held since it was found: no moment where another run could take it
            try:
                self._check_settings(settings)
                for state in sorted(self.state_dir.glob("*.pt")):  # before any output: the data is read next
                    check_state_file(state, f"--resume {self.out}")
                    self._check_world_size(state, world_size)
            except BaseException:
                self.release()  # refused: the interrupted run stays resumable, by this process too
                raise
            return self
        if resumable and not self.overwrite:
            raise RunFolderError(f"--out {self.out} has an interrupted run ({resumable[0].name}); continue it with "
                                 f"`{self.command} --resume {self.out}`, or pass --overwrite to discard it")
        if self.out.is_dir() and any(self.out.iterdir()) and not self.overwrite:
            raise RunFolderError(f"--out {self.out} already holds a run; pass --overwrite to replace it (the old run "
                                 "stays until the new one completes), or choose another --out")
        for leftover in leftovers:  # killed before its first checkpoint, or discarded by --overwrite
            shutil.rmtree(leftover, ignore_errors=True)
        self.path = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.staging-", dir=self.out.parent))
        self._take_lock()
        try:
            text = json.dumps(settings, indent=2, allow_nan=False)
            (self.path / SETTINGS_FILE).write_text(text + "\n", encoding="utf-8")
        except BaseException:
            self.discard()  # nothing worth keeping yet; no locked, settings-less staging folder is left behind
            raise
        return self

    def open_in(self, world, settings: dict[str, Any]) -> RunFolder:
        """``open`` for a run of ``world`` (see ``training.distributed``): rank 0 alone checks, creates or adopts
        and locks the staging folder; the other ranks follow it (its path is broadcast), and an error there is
        raised on every rank."""
        if not world.distributed:
            return self.open(settings)
        path = world.on_main(lambda: str(self.open(settings, world.size).path))
        if not world.is_main:
            self.path, self.follower = Path(path), True
        return self

    def _check_settings(self, settings: dict[str, Any]) -> None:
        saved = read_settings(self.path)
        now, before = _flatten(settings), _flatten(saved)
        # A field the saved run predates had, in effect, the value it was trained with (FIELDS_BEFORE).
        before_fields = {**ClassifierConfig.FIELDS_BEFORE, **LanguageModelConfig.FIELDS_BEFORE}
        added = {f"model.{name}": value for name, value in before_fields.items()}
        before.update({k: added[k] for k in now.keys() & added.keys() if k not in before})
        changed = sorted(k for k in now.keys() | before.keys()
                         if k not in CHANGEABLE_ON_RESUME and now.get(k) != before.get(k))
        if changed:
            detail = "; ".join(f"{k}: saved {before.get(k)!r}, now {now.get(k)!r}" for k in changed)
            raise RunFolderError(f"--resume {self.out} continues the run with its saved settings; these differ: "
                                 f"{detail}")

    def _check_world_size(self, state: Path, world_size: int) -> None:
        """A run continues with the number of processes it was saved by (each has its own generators and data)."""
        saved = state_world_size(state)
        if saved != world_size:
            how = "without torchrun" if saved == 1 else f"under torchrun --nproc-per-node {saved}"
            raise RunFolderError(f"--resume {self.out}: the run was trained by {saved} process(es), this is "
                                 f"{world_size}; resume it {how}")

    def _take_lock(self) -> None:
        handle = _try_lock(self.path)
        if handle is None:
            raise RunFolderError(f"--out {self.out}: another rnnkit run is writing it now ({self.path})")
        self._lock = handle

    # -- ending ---------------------------------------------------------------
    def publish(self) -> Path:
        """Move the finished run into ``out`` (replacing an old one only now), then drop the resume state.

        The state goes after the rename: a crash in between leaves a complete run with a spare ``resume/``
        folder, never a complete run in a staging folder that looks like an abandoned one.
        """
        if self.follower:
            return self.out
        if self.out.is_dir() and any(self.out.iterdir()) and not (self.overwrite or self.resume):
            raise RunFolderError(f"--out {self.out} appeared while this run trained; the finished run is kept "
                                 f"in {self.path}")
        _swap_in(self.path, self.out)  # an old run is kept aside until the new one is in place
        shutil.rmtree(self.out / RESUME_DIR, ignore_errors=True)
        for name in (SETTINGS_FILE, LOCK_FILE):
            (self.out / name).unlink(missing_ok=True)
        self.release()
        return self.out

    def discard(self) -> None:
        """Delete the staging folder (a run that leaves nothing worth keeping)."""
        if self.path is not None and not self.follower:
            shutil.rmtree(self.path, ignore_errors=True)
        self.release()

    def release(self) -> None:
        """Let go of the lock; the staging folder stays for ``resume``."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def read_settings(staging: Path) -> dict[str, Any]:
    path = staging / SETTINGS_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise RunFolderError(f"cannot read the saved settings of the interrupted run: {path}: {error}") from error


def resumable_settings(out: str | Path) -> dict[str, Any]:
    """The settings saved by the interrupted run of ``out`` (for a CLI to rebuild its configs), or RunFolderError."""
    out = Path(out)
    found = [p for p in _staging_folders(out) if (p / SETTINGS_FILE).is_file() and any((p / RESUME_DIR).glob("*.pt"))]
    if not found:
        raise RunFolderError(_nothing_to_resume(out))
    return read_settings(max(found, key=_newest_state))


def _nothing_to_resume(out: Path) -> str:
    if out.is_dir() and any(out.iterdir()):
        return (f"--resume {out}: that run is finished, there is nothing to resume; to train it again, start a new "
                f"run with the same --out and --overwrite (the finished run stays until the new one completes)")
    return (f"--resume {out}: no interrupted run to resume: no .{out.name}.staging-* folder with a saved training "
            "state beside it")


def _staging_folders(out: Path) -> list[Path]:
    return [p for p in siblings_named(out, ".staging-", _TEMP_SUFFIX) if p.is_dir()]


def _try_lock(staging: Path):
    """The lock of ``staging``, now held (an open file; closing it lets go), or None if a live run holds it.

    Without ``fcntl`` (Windows) every folder counts as free, and nothing is held open (it could not be deleted).
    """
    if fcntl is None:
        return _NoLock()
    handle = open(staging / LOCK_FILE, "a")  # noqa: SIM115 -- held open while the lock is needed
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


class _NoLock:
    def close(self) -> None:
        pass


@contextmanager
def _locked_folder(folder: Path):
    """Hold an exclusive lock on ``folder`` itself (nothing is written there) while the block runs."""
    if fcntl is None or not folder.is_dir():  # no folder: no staging folder either, nothing to take turns on
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held by another run's open() only for as long as that takes
        yield
    finally:
        os.close(fd)


def _newest_state(staging: Path) -> float:
    return max((p.stat().st_mtime for p in (staging / RESUME_DIR).glob("*.pt")), default=0.0)


def _flatten(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class RunStopped(Exception):
    """A run that ended without completing; ``exit_code`` is what the command should exit with."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class RunInterrupted(RunStopped):
    """SIGINT/SIGTERM (or Ctrl-C) stopped the run; its state is saved for ``--resume`` if a checkpoint exists."""


class RunDiverged(RunStopped):
    """The loss or gradient became non-finite; only a validated best model (if any) was kept."""


def check_result(run: RunFolder, result) -> str | None:
    """After one ``Trainer.fit``: raise ``RunInterrupted`` (state kept for resume) or ``RunDiverged`` with nothing
    validated (staging discarded); return a message to raise once published for a diverged run with a best model."""
    if result.reason == INTERRUPTED:
        code = 128 + (result.signal or signal.SIGINT)
        if run.path is not None and any(run.state_dir.glob("*.pt")):
            run.release()
            raise RunInterrupted(f"interrupted at step {result.steps}; the training state is saved, continue with: "
                                 f"{run.command} --resume {run.out}", code)
        run.discard()
        raise RunInterrupted(f"interrupted at step {result.steps}, before the first checkpoint: nothing saved", code)
    if result.reason != NON_FINITE:
        return None
    where = f"training diverged: the loss or gradient norm became non-finite at step {result.steps + 1}"
    if result.best is None:
        run.discard()
        raise RunDiverged(f"{where}, before any validation; nothing saved (try a lower --lr)")
    return f"{where}; kept the best validated model (epoch {result.best_epoch}) in {run.out}"


def abandon(run: RunFolder, error: BaseException | None = None) -> None:
    """A run failed with ``error``: keep its staging folder if it holds a resumable state, else remove it.

    Ctrl-C after training (during the final scoring or the report) lands here rather than in the trainer: the
    state is kept, so it becomes a ``RunInterrupted`` that says how to continue, as one inside training does.
    """
    if run.path is not None and run.path.is_dir() and any(run.state_dir.glob("*.pt")):
        run.release()
        if isinstance(error, KeyboardInterrupt):
            raise RunInterrupted(f"interrupted; the training state is saved, continue with: {run.command} --resume "
                                 f"{run.out}", 128 + signal.SIGINT) from error
        if _disk_full(error):
            raise RunStopped(f"{_where(error, run)}: no space left on device; the training state is saved: free some "
                             f"space, then continue with: {run.command} --resume {run.out}{_kept(run)}") from error
    else:
        run.discard()
        if _disk_full(error):
            raise RunStopped(f"{_where(error, run)}: no space left on device; nothing of this run is kept (free some "
                             f"space and start it again){_kept(run)}") from error


def _disk_full(error: BaseException | None) -> bool:
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


def _where(error: OSError, run: RunFolder) -> str:
    # Not every writer names its file (a log line's write does not): the run's folder then.
    return str(error.filename if error.filename is not None else run.path or run.out)


def _kept(run: RunFolder) -> str:
    """What the user most fears lost: an earlier run in --out is untouched until a new one completes."""
    return f"; the earlier run in {run.out} is unchanged" if run.out.is_dir() and any(run.out.iterdir()) else ""
