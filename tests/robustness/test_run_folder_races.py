"""Runs started at the same instant into one --out: real processes, stopped at the worst moment by a hook.

Each test stops one process inside ``RunFolder.open`` (between creating its staging folder and locking it,
or while it holds another folder's lock to test it) and starts a second one then. The second either finishes
(the old behaviour, racing) or waits on a lock (``/proc/locks`` says so), and the outcome is checked once
both are done: the first run's folder survives, and nobody is refused because of a mere test.
"""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from rnnkit.training import rundir
from rnnkit.training.rundir import LOCK_FILE, RESUME_DIR, SETTINGS_FILE, RunFolder, RunFolderError
from rnnkit.training.state import save_state

pytestmark = pytest.mark.skipif(rundir.fcntl is None, reason="no advisory locks on this platform")
SETTINGS = {"train": {"seed": 0}}
fork = multiprocessing.get_context("fork")  # the children start at once, with rnnkit already imported


def _open(out, results, name, resume=False, overwrite=False, hold=None):
    """Open a run folder and report the outcome; keep the lock until ``hold`` is set."""
    try:
        run = RunFolder(out, resume=resume, overwrite=overwrite).open(SETTINGS)
    except RunFolderError as error:
        results.put((name, str(error)))
        return
    except Exception as error:  # noqa: BLE001 -- reported to the test, which fails on it
        results.put((name, f"crashed: {error!r}"))
        return
    whole = (run.path / SETTINGS_FILE).is_file()
    results.put((name, "opened" if whole else f"opened, but {run.path} lost its {SETTINGS_FILE}"))
    if hold is not None:
        hold.wait(30)
    run.release()


def _open_paused_after_creating(out, results, paused, go, hold):
    real = tempfile.mkdtemp

    def mkdtemp(*args, **kwargs):
        path = real(*args, **kwargs)
        paused.set()
        go.wait(30)
        return path

    tempfile.mkdtemp = mkdtemp  # this child's own copy of the module
    _open(out, results, "first", hold=hold)


def _open_paused_holding_a_lock(out, results, paused, go):
    real = rundir.fcntl

    def flock(handle, operation):
        real.flock(handle, operation)
        if str(getattr(handle, "name", "")).endswith(LOCK_FILE) and operation & real.LOCK_EX:
            paused.set()
            go.wait(30)

    rundir.fcntl = SimpleNamespace(flock=flock, LOCK_EX=real.LOCK_EX, LOCK_NB=real.LOCK_NB, LOCK_UN=real.LOCK_UN)
    _open(out, results, "tester")


def _blocked_on_a_lock(pid: int) -> bool:
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return False
    return any("->" in line.split() and str(pid) in line.split() for line in lines)


def _finished_or_waiting(process, timeout=30.0) -> None:
    """Until ``process`` has ended or waits on a lock (where /proc/locks cannot tell: a second)."""
    deadline = time.monotonic() + (timeout if Path("/proc/locks").exists() else 1.0)
    while process.is_alive() and not _blocked_on_a_lock(process.pid) and time.monotonic() < deadline:
        time.sleep(0.01)


def _outcomes(results, n: int) -> dict[str, str]:
    return dict(results.get(timeout=30) for _ in range(n))


def test_a_staging_folder_is_never_taken_for_a_leftover_before_its_lock(tmp_path):
    out = tmp_path / "run"
    results, paused, go, hold = fork.Queue(), fork.Event(), fork.Event(), fork.Event()
    first = fork.Process(target=_open_paused_after_creating, args=(out, results, paused, go, hold))
    first.start()
    assert paused.wait(30)  # its staging folder exists, not yet locked
    second = fork.Process(target=_open, args=(out, results, "second"), kwargs={"overwrite": True})
    second.start()
    _finished_or_waiting(second)
    go.set()
    outcome = _outcomes(results, 2)
    hold.set()
    first.join(30), second.join(30)
    assert outcome["first"] == "opened"
    assert "another rnnkit run is writing it now" in outcome["second"]


def test_testing_a_lock_never_refuses_the_run_that_wants_it(tmp_path):
    out = tmp_path / "run"
    interrupted = RunFolder(out).open(SETTINGS)  # an interrupted run with a saved state, free to resume
    save_state(interrupted.state_dir / "state.pt", {})  # a whole one: --resume checks it before adopting the run
    interrupted.release()
    results, paused, go = fork.Queue(), fork.Event(), fork.Event()
    tester = fork.Process(target=_open_paused_holding_a_lock, args=(out, results, paused, go))
    tester.start()
    assert paused.wait(30)  # a new run (no --overwrite) is testing the interrupted run's lock
    resumer = fork.Process(target=_open, args=(out, results, "resumer"), kwargs={"resume": True})
    resumer.start()
    _finished_or_waiting(resumer)
    go.set()
    outcome = _outcomes(results, 2)
    tester.join(30), resumer.join(30)
    assert outcome["resumer"] == "opened"
    assert "has an interrupted run" in outcome["tester"]
    assert (interrupted.path / RESUME_DIR / "state.pt").is_file()


def _hammer(out, results, name, rounds):
    outcomes = []
    for _ in range(rounds):
        try:
            run = RunFolder(out, overwrite=True).open(SETTINGS)
        except RunFolderError as error:
            outcomes.append("busy" if "another rnnkit run is writing it now" in str(error) else str(error))
            continue
        except Exception as error:  # noqa: BLE001 -- reported to the test, which fails on it
            outcomes.append(f"crashed: {error!r}")
            continue
        outcomes.append("opened" if (run.path / SETTINGS_FILE).is_file() else "lost its settings")
        run.discard()
    results.put((name, outcomes))


def test_two_processes_opening_and_discarding_at_once(tmp_path):
    out = tmp_path / "run"
    results = fork.Queue()
    hammers = [fork.Process(target=_hammer, args=(out, results, name, 150)) for name in ("a", "b")]
    for process in hammers:
        process.start()
    outcome = _outcomes(results, 2)
    for process in hammers:
        process.join(30)
    seen = {o for outcomes in outcome.values() for o in outcomes}
    assert seen <= {"opened", "busy"}, seen
    assert all("opened" in outcomes for outcomes in outcome.values())
    assert not list(tmp_path.glob(".run.staging-*"))  # every run discarded its folder, none left another's
