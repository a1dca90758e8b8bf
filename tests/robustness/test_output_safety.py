"""Output safety: an existing run is never replaced by accident or by halves, a diverged run keeps only validated
weights, and the report always describes the model beside it. The CLI runs in this process (fast, no torch import)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import random
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rnnkit.api.classifier import train_classifier
from rnnkit.cli.main import main
from rnnkit.data.config import ClassifierDataConfig
from rnnkit.models.config import ClassifierConfig
from rnnkit.tasks.classification import ClassificationTask
from rnnkit.training import TrainConfig
from rnnkit.training.rundir import RunDiverged, RunFolder, RunFolderError
from rnnkit.training.state import save_state
from tests.robustness.run_data import signal_during_step, write_labelled_csv


@pytest.fixture
def data(tmp_path):
    rng = random.Random(0)
    return {"train": write_labelled_csv(tmp_path / "train.csv", 64, rng, labels=2),
            "valid": write_labelled_csv(tmp_path / "valid.csv", 24, rng, labels=2)}


def _train_args(data, out, *extra):
    return ["train", "--data", data["train"], "--valid-data", data["valid"], "--min-freq", "1", "--embeddings",
            "random", "--embedding-dim", "8", "--hidden-size", "8", "--epochs", "2", "--batch-size", "16",
            "--no-progress", "--out", str(out), *map(str, extra)]


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _leftovers(out: Path) -> list[Path]:
    return [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def _error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("rnnkit ")]
    assert lines, "no one-line message"
    return lines[-1]


def _report_matches_model(out: Path) -> None:
    summary = json.loads((out / "report" / "metrics.json").read_text())["summary"]
    meta = json.loads((out / "model" / "config.json").read_text())
    assert meta["metrics"] == summary


@pytest.mark.parametrize("verb", ["train", "train-lm"])
def test_existing_run_is_refused_and_untouched(tmp_path, data, capsys, verb):
    out = tmp_path / "run"
    (out / "model").mkdir(parents=True)
    (out / "model" / "config.json").write_text("{}")
    (out / "log.jsonl").write_text("old\n")
    before = _snapshot(out)
    args = _train_args(data, out) if verb == "train" else [verb, "--data", data["train"], "--out", str(out)]
    assert main(args) == 2
    line = _error_line(capsys)
    assert f"--out {out}" in line and "--overwrite" in line
    assert _snapshot(out) == before and not _leftovers(out)


def test_out_that_is_a_file_is_refused(tmp_path, data, capsys):
    out = tmp_path / "run"
    out.write_text("keep me")
    assert main(_train_args(data, out)) == 2
    line = _error_line(capsys)
    # The pre-flight sees it first (before any run folder is opened) and names the path.
    assert str(out) in line and "is a file" in line
    assert out.read_text() == "keep me" and not _leftovers(out)


def test_overwrite_replaces_a_folder_whatever_it_holds(tmp_path, data, capsys):
    # The run is staged beside --out and swapped in whole, so the pre-flight has no business inside --out.
    out = tmp_path / "run"
    (out / "model").mkdir(parents=True)
    (out / "model" / "notes.txt").write_text("not a checkpoint")
    (out / "report").write_text("a file where the run writes a folder")
    (out / "log.jsonl").mkdir()
    assert main(_train_args(data, out)) == 2
    assert "--overwrite" in _error_line(capsys) and (out / "model" / "notes.txt").is_file()
    assert main(_train_args(data, out, "--overwrite")) == 0
    assert not (out / "model" / "notes.txt").exists() and not _leftovers(out)
    _report_matches_model(out)


def test_preflight_probes_the_parent_of_out_where_the_run_writes(tmp_path, data, capsys, monkeypatch):
    import tempfile

    real, probed, read_only = tempfile.mkdtemp, [], set()

    def mkdtemp(*args, dir=None, **kwargs):  # the pre-flight's probe, and the run's staging folder
        probed.append(Path(dir))
        if Path(dir) in read_only:
            raise PermissionError(13, "Permission denied")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    out = tmp_path / "runs" / "run"
    out.mkdir(parents=True)
    read_only.add(out)  # --out itself is never written in place: a read-only old run can still be replaced
    assert main(_train_args(data, out, "--overwrite")) == 0
    assert out.parent in probed and out not in probed
    _report_matches_model(out)
    read_only.add(out.parent)
    assert main(_train_args(data, out, "--overwrite")) == 2
    assert f"out_dir {out} is not writable (written in {out.parent})" in _error_line(capsys)
    read_only.add(tmp_path)  # not there yet: the nearest existing folder is probed
    assert main(_train_args(data, tmp_path / "new" / "deeper" / "run")) == 2
    assert f"deeper/run is not writable (written in {tmp_path})" in _error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs", "train.csv", "valid.csv"]  # no probe left


def test_overwrite_replaces_the_run_only_once_the_new_one_is_complete(tmp_path, data, capsys, monkeypatch):
    out = tmp_path / "run"
    assert main(_train_args(data, out)) == 0
    _report_matches_model(out)
    first = _snapshot(out)

    # Interrupted: the old run is still whole, the new one waits in its staging folder.
    signal_during_step(monkeypatch, call=5)
    assert main(_train_args(data, out, "--overwrite", "--seed", 1)) == 128 + signal.SIGTERM
    line = _error_line(capsys)
    assert "interrupted" in line and f"--resume {out}" in line
    assert _snapshot(out) == first
    monkeypatch.undo()

    # Starting over it without a word is refused; resuming completes it and only then replaces the old run.
    assert main(_train_args(data, out, "--seed", 1)) == 2
    assert "--resume" in _error_line(capsys)
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    assert _snapshot(out) != first and not _leftovers(out)
    assert not (out / "resume").exists() and not (out / "run.json").exists()
    _report_matches_model(out)
    assert json.loads((out / "model" / "config.json").read_text())["train_config"]["seed"] == 1


def test_overwrite_discards_an_interrupted_run(tmp_path, data, capsys, monkeypatch):
    out = tmp_path / "run"
    signal_during_step(monkeypatch, call=3, sig=signal.SIGINT)
    assert main(_train_args(data, out)) == 128 + signal.SIGINT
    assert len(_leftovers(out)) == 1 and not out.exists()
    monkeypatch.undo()
    assert main(_train_args(data, out, "--overwrite")) == 0
    assert not _leftovers(out)
    _report_matches_model(out)


def test_resume_errors_name_the_problem(tmp_path, data, capsys, monkeypatch):
    out = tmp_path / "run"
    assert main(["train", "--resume", str(out)]) == 2
    assert "no interrupted run to resume" in _error_line(capsys)
    signal_during_step(monkeypatch, call=3)
    main(_train_args(data, out))
    monkeypatch.undo()
    assert main(["train", "--resume", str(out), "--lr", "0.5"]) == 2
    line = _error_line(capsys)
    assert "train.lr: saved 0.002, now 0.5" in line
    assert main(["train", "--resume", str(out), "--out", str(tmp_path / "elsewhere")]) == 2
    assert "drop --out" in _error_line(capsys)


def test_a_second_run_into_the_same_out_is_refused(tmp_path, data, capsys):
    out = tmp_path / "run"
    running = RunFolder(out).open({"a": 1})  # holds the lock, as a live run does
    try:
        assert main(_train_args(data, out)) == 2
        assert "another rnnkit run is writing it" in _error_line(capsys)
        assert not out.exists()
    finally:
        running.discard()


@pytest.mark.parametrize("verb", ["train", "train-lm"])
def test_diverged_run_before_validation_saves_nothing(tmp_path, data, capsys, verb):
    out = tmp_path / "run"
    if verb == "train":
        args = _train_args(data, out, "--lr", "1e30")
    else:
        corpus = tmp_path / "corpus.txt"
        corpus.write_text("Shall I compare thee to a summer's day? Thou art more lovely and more temperate.\n" * 20)
        args = [verb, "--data", corpus, "--lr", "1e30", "--epochs", 1, "--embedding-dim", 8, "--hidden-size", 8,
                "--num-layers", 1, "--bptt", 16, "--batch-size", 4, "--eval-every", 5, "--eval-streams", 1,
                "--warmup", 0, "--no-progress", "--out", out]
    assert main([str(a) for a in args]) == 1
    line = _error_line(capsys)
    assert "diverged" in line and "nothing saved" in line
    assert not out.exists() and not _leftovers(out)


def test_diverged_run_keeps_only_the_best_validated_model(tmp_path, data, monkeypatch):
    step, calls = ClassificationTask.train_step, []

    def poisoned(self, model, batch):
        calls.append(1)
        result = step(self, model, batch)
        if len(calls) == 6:  # in the second epoch, after the first validation
            result.loss = result.loss * float("nan")
        return result

    monkeypatch.setattr(ClassificationTask, "train_step", poisoned)
    out = tmp_path / "run"
    config = ClassifierDataConfig(data=data["train"], valid_data=data["valid"], min_freq=1, embeddings="random")
    with pytest.raises(RunDiverged, match=r"step 6; kept the best validated model \(epoch 1\)"):
        train_classifier(config, out, model=ClassifierConfig(embedding_dim=8, hidden_size=8),
                         train=TrainConfig(epochs=3, batch_size=16, progress=False))
    _report_matches_model(out)
    summary = json.loads((out / "report" / "metrics.json").read_text())["summary"]
    assert summary["stopped"] == "non_finite_loss" and summary["best_epoch"] == 1
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(log) == 1 and log[0]["improved"]
    assert all(torch.isfinite(t).all() for t in load_file(out / "model" / "model.safetensors").values())


def test_a_refused_resume_lets_go_of_the_run(tmp_path):
    # The refusal's traceback (kept by a notebook, or here by pytest.raises) must not keep the lock held.
    out = tmp_path / "run"
    first = RunFolder(out).open({"a": 1})
    save_state(first.state_path(), {"x": 1})
    first.release()
    with pytest.raises(RunFolderError, match="a: saved 1, now 2") as refused:
        RunFolder(out, resume=True).open({"a": 2})
    again = RunFolder(out, resume=True).open({"a": 1})
    assert again.path == first.path and refused.value is not None
    again.release()


def test_settings_that_cannot_be_saved_leave_no_staging_folder(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError):
        RunFolder(out).open({"lr": float("nan")})
    assert _leftovers(out) == [] and not out.exists()


def test_ctrl_c_after_training_says_how_to_resume(tmp_path, data, capsys, monkeypatch):
    # The signal handler is the trainer's only while it trains: Ctrl-C in the final scoring is a KeyboardInterrupt.
    import rnnkit.pipelines.classifier as api

    out = tmp_path / "run"
    real = api.write_report

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "write_report", interrupted)
    assert main(_train_args(data, out)) == 128 + signal.SIGINT
    assert f"--resume {out}" in _error_line(capsys)
    assert not out.exists()
    monkeypatch.setattr(api, "write_report", real)
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    _report_matches_model(out)
    assert _leftovers(out) == []


def test_a_run_saved_before_a_model_field_existed_resumes_with_the_value_it_had(tmp_path):
    # A run saved before ngram_lr_scale existed trained with what is now 1.0: resuming it must not be refused
    # for the new field, and a value other than the one it had is still a change.
    out = tmp_path / "run"
    first = RunFolder(out).open({"model": {"ngrams": "none"}})
    save_state(first.state_path(), {"x": 1})
    first.release()
    with pytest.raises(RunFolderError, match="model.ngram_lr_scale: saved 1.0, now 20.0"):
        RunFolder(out, resume=True).open({"model": {"ngrams": "none", "ngram_lr_scale": 20.0}})
    again = RunFolder(out, resume=True).open({"model": {"ngrams": "none", "ngram_lr_scale": 1.0}})
    assert again.path == first.path
    again.release()


# -- a full disk in the middle of a run -------------------------------------------------------------------------


class _FullDisk:
    """A file object whose writes fail as the kernel's do on a full disk: ENOSPC, naming no file."""

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _check_full_disk_ending(code: int, capsys, out: Path, before: dict[str, str]) -> str:
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err, err
    line = _error_line_of(err)
    assert "no space left on device" in line.lower() and str(out.parent) in line, line
    assert _snapshot(out) == before  # the earlier run survives, whole
    return line


def _error_line_of(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("rnnkit ")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("after_steps", [0, 3])  # the first training state's write; the model's write
def test_a_full_disk_during_an_overwrite_is_one_line_and_keeps_the_earlier_run(tmp_path, data, capsys, monkeypatch,
                                                                                after_steps):
    import rnnkit.training.checkpoint

    out = tmp_path / "run"
    assert main(_train_args(data, out)) == 0
    before = _snapshot(out)
    capsys.readouterr()
    writes = []

    def opener(path, mode="r", *args, **kwargs):  # the writer of checkpoints and training states
        writes.append(path)
        return _FullDisk() if len(writes) > after_steps else open(path, mode, *args, **kwargs)

    monkeypatch.setattr(rnnkit.training.checkpoint, "open", opener, raising=False)
    code = main(_train_args(data, out, "--overwrite", "--checkpoint-every", "1", "--hidden-size", "12"))
    line = _check_full_disk_ending(code, capsys, out, before)
    assert str(writes[-1]) in line  # the file that could not be written
    if after_steps:  # a training state was saved before the disk filled: the run can go on
        assert f"--resume {out}" in line
    else:
        assert _leftovers(out) == []


def test_a_real_full_disk_on_a_small_tmpfs(tmp_path, data, capsys, monkeypatch):
    """The same on a real file system that fills up (needs root and mount; skipped where either is missing)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        out, small = disk / "run", ("--ngrams", "none", "--max-vocab", "100")  # fits the disk, by the pre-flight too
        assert main(_train_args(data, out, *small)) == 0
        before = _snapshot(out)
        capsys.readouterr()
        step = ClassificationTask.train_step

        def filling(self, model, batch):  # once training runs (the pre-flight has passed), the disk fills up
            with open(disk / "filler", "ab") as filler, contextlib.suppress(OSError):
                while True:
                    filler.write(b"\0" * 65536)
                    filler.flush()
            return step(self, model, batch)

        monkeypatch.setattr(ClassificationTask, "train_step", filling)
        code = main(_train_args(data, out, *small, "--overwrite", "--checkpoint-every", "1"))
        monkeypatch.undo()
        _check_full_disk_ending(code, capsys, out, before)
    finally:
        subprocess.run(["umount", str(disk)], check=True)


# -- --resume: what it cannot continue is said first, in one line --------------------------------------------------


@pytest.mark.parametrize("damage", ["truncated", "garbled"])
def test_a_damaged_training_state_is_refused_before_anything_else(tmp_path, data, capsys, monkeypatch, damage):
    out = tmp_path / "run"
    signal_during_step(monkeypatch, call=3)
    assert main(_train_args(data, out, "--checkpoint-every", "1")) == 128 + signal.SIGTERM
    monkeypatch.undo()
    state = next(_leftovers(out)[0].glob("resume/*.pt"))
    raw = bytearray(state.read_bytes())
    if damage == "truncated":
        raw = raw[: len(raw) // 2]
    else:
        middle = len(raw) // 2
        raw[middle:middle + 64] = bytes(b ^ 0xFF for b in raw[middle:middle + 64])
    state.write_bytes(bytes(raw))
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err  # no "data ..." line first
    assert str(state) in err and "--overwrite" in err
    assert state.read_bytes() == bytes(raw) and not out.exists()  # left as it was


@pytest.mark.parametrize("verb", ["train", "train-lm"])
def test_resume_of_a_finished_run_says_it_is_finished(tmp_path, data, capsys, verb):
    out = tmp_path / "run"
    args = _train_args(data, out) if verb == "train" else \
        ["train-lm", "--data", data["train"], "--out", str(out), "--epochs", "1", "--embedding-dim", "8",
         "--hidden-size", "8", "--num-layers", "1", "--batch-size", "4", "--bptt", "16", "--no-progress"]
    assert main(args) == 0
    capsys.readouterr()
    assert main([verb, "--resume", str(out)]) == 2
    line = _error_line(capsys)
    assert "finished" in line and "--overwrite" in line, line


def test_resume_with_another_number_of_processes_is_refused_when_the_folder_opens(tmp_path, data, capsys,
                                                                                  monkeypatch):
    """`torchrun ... train --resume RUN` of a one-process run: refused by rank 0 before the data is read."""
    out = tmp_path / "run"
    signal_during_step(monkeypatch, call=3)
    assert main(_train_args(data, out, "--checkpoint-every", "1")) == 128 + signal.SIGTERM
    monkeypatch.undo()
    settings = json.loads(next(_leftovers(out)[0].glob("run.json")).read_text())
    with pytest.raises(RunFolderError, match=r"trained by 1 process\(es\), this is 2; resume it without torchrun"):
        RunFolder(out, resume=True).open(settings, world_size=2)
    RunFolder(out, resume=True).open(settings, world_size=1).release()  # still resumable as it was saved


def test_the_other_ranks_leave_rank_0s_error_to_rank_0(tmp_path, capsys, monkeypatch):
    import rnnkit.cli.classify_verbs
    from rnnkit.training.distributed import RankZeroFailed

    def echo(args):
        raise RankZeroFailed("rank 0 failed: no such file")

    monkeypatch.setattr(rnnkit.cli.classify_verbs, "run_train", echo)
    assert main(["train", "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err == ""
