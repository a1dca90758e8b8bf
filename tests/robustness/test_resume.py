"""Resume: a run killed at a random moment and resumed ends bit-identical to a run never stopped.

The end-to-end tests run the real CLI in a child process (one thread, so every float
sum is reduced in the same order), kill it with a signal at a random moment after its
first training-state checkpoint, resume it with ``--resume`` alone, and compare the
final weights (exactly), the history (timings apart) and the report with those of an
uninterrupted run. The kill points are printed (``pytest -s``) and put in assertion
messages: the seconds after the first checkpoint, and the step of the state resumed from.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torch.nn import functional as F

from rnnkit.training import StepResult, TrainConfig, Trainer
from rnnkit.training.state import load_state
from tests.robustness.run_data import signal_during_step, write_labelled_csv

# Timings differ from run to run; everything else must not.
TIMING_KEYS = {"elapsed", "tokens_per_s", "train_seconds", "train_tokens_per_s"}
CHILD = ("import sys, torch; torch.set_num_threads(1); from rnnkit.cli.main import main; "
         "sys.exit(main(sys.argv[1:]))")
VERSE = ("Shall I compare thee to a summer's day? Thou art more lovely and more temperate: rough winds do shake "
         "the darling buds of May, and summer's lease hath all too short a date.\n")


# -- in-process: the trainer's state round trip ----------------------------------------------------------------
class ShuffledBlobs:
    """Two 2-D blobs; batches drawn from the global torch RNG when an epoch starts, so resume must replay it."""

    monitor, mode = "accuracy", "max"

    def __init__(self):
        generator = torch.Generator().manual_seed(7)
        x = torch.randn(160, 2, generator=generator)
        self.x, self.y = x, (x.sum(1) > 0).long()

    def train_batches(self, epoch):
        order = torch.randperm(128)
        return [order[i:i + 16] for i in range(0, 128, 16)]

    def train_step(self, model, batch):
        logits = model(self.x[batch])
        return StepResult(loss=F.cross_entropy(logits, self.y[batch]), tokens=len(batch), examples=len(batch))

    def evaluate(self, model, split):
        logits = model(self.x[128:])
        return {"accuracy": float((logits.argmax(1) == self.y[128:]).float().mean())}


def _mlp():
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Dropout(0.3), nn.Linear(16, 2))


def _strip(history):
    return [{k: v for k, v in record.items() if k not in TIMING_KEYS} for record in history]


def _saving_each_state(trainer: Trainer, path: Path) -> list[dict]:
    """Make ``trainer`` keep a copy of every training state it writes to ``path``; the list of copies."""
    saved, save = [], trainer._save_state

    def keep_each():
        save()
        saved.append(load_state(path))

    trainer._save_state = keep_each
    return saved


def _resume_identically(model, task, config, state, expected, reference):
    """Resume ``state`` in a fresh trainer; assert it ends with ``expected``'s history and ``reference``'s weights."""
    resumed = Trainer(model, task, config)
    resumed.load_state_dict(state)
    result = resumed.fit()
    at = {key: state["trainer"][key] for key in ("epoch", "batch", "epoch_done", "step")}
    assert _strip(result.history) == _strip(expected.history), at
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values(),
                                                  strict=True)), at
    return result


@pytest.mark.parametrize("every", ["3", "epoch"])
def test_trainer_resumes_from_every_checkpoint_identically(tmp_path, every):
    config = TrainConfig(epochs=3, lr=0.05, eval_every=5, patience=None, progress=False, checkpoint_every=every)
    reference = _mlp()
    expected = Trainer(reference, ShuffledBlobs(), config).fit()

    # Record every checkpoint the run writes, then resume from each one in a fresh trainer.
    trainer = Trainer(_mlp(), ShuffledBlobs(), config, state_path=tmp_path / "state.pt")
    saved = _saving_each_state(trainer, tmp_path / "state.pt")
    trainer.fit()
    assert len(saved) == (8 if every == "3" else 3)
    for state in saved:
        result = _resume_identically(_mlp(), ShuffledBlobs(), config, state, expected, reference)
        assert result.steps == expected.steps == 24


def test_a_resumed_run_can_be_stopped_and_resumed_again(tmp_path):
    config = TrainConfig(epochs=3, lr=0.05, eval_every=5, patience=None, progress=False, checkpoint_every="4")
    reference = _mlp()
    expected = Trainer(reference, ShuffledBlobs(), config).fit()
    first = Trainer(_mlp(), ShuffledBlobs(), config, state_path=tmp_path / "first.pt")
    first_states = _saving_each_state(first, tmp_path / "first.pt")
    first.fit()
    second = Trainer(_mlp(), ShuffledBlobs(), config, state_path=tmp_path / "second.pt")
    second.load_state_dict(first_states[1])  # step 8
    second_states = _saving_each_state(second, tmp_path / "second.pt")
    second.fit()
    assert [state["trainer"]["step"] for state in second_states] == [12, 16, 20, 24]
    model = _mlp()
    third = Trainer(model, ShuffledBlobs(), config)
    third.load_state_dict(second_states[1])  # step 16, written by a resumed run
    result = third.fit()
    assert _strip(result.history) == _strip(expected.history)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values(),
                                                  strict=True))


def test_resume_refuses_other_settings(tmp_path):
    config = TrainConfig(epochs=2, lr=0.05, progress=False)
    trainer = Trainer(_mlp(), ShuffledBlobs(), config, state_path=tmp_path / "state.pt")
    trainer.fit()
    other = Trainer(_mlp(), ShuffledBlobs(), TrainConfig(epochs=2, lr=0.1, progress=False))
    with pytest.raises(ValueError, match=r"lr \(saved 0.05, now 0.1\)"):
        other.load_state(tmp_path / "state.pt")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_in_process_saves_a_state_and_stops(tmp_path, sig):
    task = ShuffledBlobs()
    step = task.train_step
    calls = []

    def signalling_step(model, batch):
        calls.append(1)
        if len(calls) == 11:
            os.kill(os.getpid(), sig)  # handled between steps: this step completes
        return step(model, batch)

    task.train_step = signalling_step
    config = TrainConfig(epochs=3, lr=0.05, progress=False, checkpoint_every="none")
    before = signal.getsignal(sig)
    result = Trainer(_mlp(), task, config, state_path=tmp_path / "state.pt").fit()
    assert result.reason == "interrupted" and result.signal == sig and result.steps == 11
    assert load_state(tmp_path / "state.pt")["trainer"]["step"] == 11
    assert signal.getsignal(sig) == before  # handlers put back


def _tiny_lm():
    """A one-layer LSTM LM (with dropout, so resume must replay the generators) on 360 random ids in 4 streams."""
    from rnnkit.models.config import LanguageModelConfig
    from rnnkit.models.language_model import RNNLanguageModel
    from rnnkit.tasks.language_model import LanguageModelTask

    ids = torch.randint(0, 10, (400,), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    net = RNNLanguageModel(LanguageModelConfig(embedding_dim=8, hidden_size=8, num_layers=1, dropout=0.2), 10, 0)
    return net, LanguageModelTask(ids[:360], ids[360:], 4, 10, random_length=True)


def _signal_in_last_save_of_first_epoch(trainer: Trainer, sig: int) -> None:
    """Send ``sig`` while ``trainer`` saves after the last step of epoch 0: past that step's stop check, so the run
    stops at the epoch's end (the window a Ctrl-C hit in a slow save once fell into)."""
    save = trainer._save_state

    def signalling_save():
        state = trainer._state
        if state.epoch == 0 and state.batch == len(trainer.task.batcher) and not state.epoch_done:
            os.kill(os.getpid(), sig)  # handled at once: only sets the stop request
        save()

    trainer._save_state = signalling_save


@pytest.mark.parametrize("stop", ["epoch-checkpoints", "SIGINT-in-last-save"])
def test_language_model_resumes_from_an_epoch_end(tmp_path, stop):
    # A state saved at an epoch's end holds the hidden state of its last window, which the next epoch drops: the
    # resumed run once still tried to move that (now None) state to the device and failed with "'NoneType' object
    # is not iterable".
    config = TrainConfig(epochs=3, lr=0.01, eval_every=7, patience=None, progress=False,
                         checkpoint_every="epoch" if stop == "epoch-checkpoints" else "1")
    reference, task = _tiny_lm()
    expected = Trainer(reference, task, config).fit()
    net, task = _tiny_lm()
    trainer = Trainer(net, task, config, state_path=tmp_path / "state.pt")
    saved = _saving_each_state(trainer, tmp_path / "state.pt")
    if stop == "SIGINT-in-last-save":
        _signal_in_last_save_of_first_epoch(trainer, signal.SIGINT)
        assert trainer.fit().reason == "interrupted"
        saved = saved[-1:]
    else:
        trainer.fit()
    assert saved and all(state["trainer"]["epoch_done"] for state in saved)
    assert all(state["task"]["hidden"] is not None for state in saved)
    for state in saved:
        _resume_identically(*_tiny_lm(), config, state, expected, reference)


@pytest.mark.parametrize("every,saves", [("0s", range(1, 25)), ("none", [0]), ("epoch", [3]), ("5", [4])])
def test_checkpoint_every(tmp_path, every, saves):
    config = TrainConfig(epochs=3, lr=0.05, progress=False, checkpoint_every=every)
    trainer = Trainer(_mlp(), ShuffledBlobs(), config, state_path=tmp_path / "state.pt")
    saved = _saving_each_state(trainer, tmp_path / "state.pt")
    trainer.fit()
    # By time: at most one per step (24), spaced by 50 times the save's own duration.
    assert len(saved) in saves


@pytest.mark.parametrize("bad", ["5x", "0", "-1s", "epochs", 5])
def test_checkpoint_every_is_checked(bad):
    with pytest.raises((ValueError, TypeError), match="checkpoint_every"):
        TrainConfig(checkpoint_every=bad)


def test_ensemble_interrupted_in_its_second_member_resumes_identically(tmp_path, monkeypatch):
    from rnnkit.api.classifier import train_classifier
    from rnnkit.data.config import ClassifierDataConfig
    from rnnkit.models.config import ClassifierConfig
    from rnnkit.training.rundir import RunInterrupted

    rng = random.Random(1)
    data = ClassifierDataConfig(data=write_labelled_csv(tmp_path / "train.csv", 64, rng), min_freq=1,
                                valid_data=write_labelled_csv(tmp_path / "valid.csv", 24, rng), embeddings="random")
    model = ClassifierConfig(embedding_dim=8, hidden_size=8, ensemble=2)
    train = TrainConfig(epochs=2, batch_size=16, progress=False, checkpoint_every="3")
    _, expected = train_classifier(data, tmp_path / "reference", model=model, train=train)
    signal_during_step(monkeypatch, call=10)  # member 0 takes 8 steps: this is member 1's second
    with pytest.raises(RunInterrupted, match="interrupted at step 2"):
        train_classifier(data, tmp_path / "run", model=model, train=train)
    monkeypatch.undo()
    _, summary = train_classifier(data, tmp_path / "run", model=model, train=train, resume=True)
    assert {k: v for k, v in summary.items() if k not in TIMING_KEYS} == \
        {k: v for k, v in expected.items() if k not in TIMING_KEYS}
    for member in ("member-0", "member-1"):
        logs = [_strip([json.loads(line) for line in (tmp_path / d / member / "log.jsonl").read_text().splitlines()])
                for d in ("run", "reference")]
        assert logs[0] == logs[1]
    a, b = (load_file(tmp_path / d / "model" / "model.safetensors") for d in ("run", "reference"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def _interrupt(argv: list[str], monkeypatch, capsys) -> None:
    """Run ``rnnkit train argv`` in this process and stop it (SIGTERM) at its 5th step, after a saved state."""
    from rnnkit.cli.main import main

    signal_during_step(monkeypatch, call=5)
    assert main(argv) == 128 + signal.SIGTERM, capsys.readouterr().err
    monkeypatch.undo()


@pytest.mark.parametrize("out", ["g[1]"])
def test_an_out_name_is_a_name_not_a_pattern(tmp_path, monkeypatch, capsys, out):
    from rnnkit.cli.main import main

    data = write_labelled_csv(tmp_path / "train.csv", 64, random.Random(3))
    args = ["train", "--data", data, "--epochs", "2", "--embedding-dim", "8", "--hidden-size", "8", "--embeddings",
            "random", "--batch-size", "16", "--min-freq", "1", "--no-progress", "--checkpoint-every", "2"]
    _interrupt([*args, "--out", str(tmp_path / "g1")], monkeypatch, capsys)
    kept = sorted(p.name for p in tmp_path.iterdir())
    # A run whose name matches g1 as a pattern neither discards g1's interrupted run nor sees it as its own.
    assert main([*args, "--out", str(tmp_path / out), "--overwrite"]) == 0, capsys.readouterr().err
    assert set(kept) <= {p.name for p in tmp_path.iterdir()}
    assert (tmp_path / out / "model").is_dir() and not (tmp_path / "g1").exists()
    # The pattern-like name's own interrupted run is found by --resume.
    shutil.rmtree(tmp_path / out)
    _interrupt([*args, "--out", str(tmp_path / out)], monkeypatch, capsys)
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / out), "--no-progress"]) == 0, capsys.readouterr().err
    assert (tmp_path / out / "model").is_dir()
    assert main(["train", "--resume", str(tmp_path / "g1"), "--no-progress"]) == 0, capsys.readouterr().err
    assert (tmp_path / "g1" / "model").is_dir()


# -- end to end, in child processes ----------------------------------------------------------------------------
def _env():
    # RNNKIT_DEBUG: a child that fails shows its traceback (kept in the assertion messages), not a one-line error.
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", RNNKIT_DEBUG="1")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2] / "src"),
                                         env.get("PYTHONPATH", "")])
    return env


def _main(args):
    """The CLI in this process on one thread (as the children run), which spares a torch import per run.

    With RNNKIT_DEBUG set, an error raises with its traceback instead of ending as a one-line message and exit 2,
    so a rare failure (e.g. of a resume from an unusual kill point) can be diagnosed from the test report."""
    from rnnkit.cli.main import DEBUG_ENV, main

    threads, debug = torch.get_num_threads(), os.environ.get(DEBUG_ENV)
    torch.set_num_threads(1)
    os.environ[DEBUG_ENV] = "1"
    try:
        assert main([str(a) for a in args]) == 0
    finally:
        torch.set_num_threads(threads)
        if debug is None:
            del os.environ[DEBUG_ENV]
        else:
            os.environ[DEBUG_ENV] = debug


def _states(out: Path):
    return sorted(out.parent.glob(f".{out.name}.staging-*/resume/*.pt"))


def _kill_and_resume(verb, args, out: Path, sig, seconds: float, rng: random.Random):
    """Start the run in a child, kill it with ``sig`` a random time after its first checkpoint, resume it here;
    return the kill point."""
    for attempt in range(4):
        child = subprocess.Popen([sys.executable, "-c", CHILD, verb, *map(str, args), "--out", out],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
        while not _states(out) and child.poll() is None:
            time.sleep(0.002)
        delay = rng.uniform(0.0, seconds * 0.7 / (attempt + 1))
        time.sleep(delay)
        killed = child.poll() is None
        if killed:
            child.send_signal(sig)
        _, stderr = child.communicate(timeout=60)
        if killed:
            break
        # The run finished before the signal: start again with a shorter delay.
        assert child.returncode == 0, stderr[-4000:]
        subprocess.run(["rm", "-rf", str(out)], check=True)
    else:
        pytest.fail("the run always finished before it could be killed")
    if sig == signal.SIGKILL:
        assert child.returncode == -signal.SIGKILL
    else:
        assert child.returncode == 128 + sig, stderr[-4000:]
        assert "interrupted" in stderr and f"--resume {out}" in stderr, stderr[-2000:]
    assert not out.exists()  # nothing published by a killed run
    states = _states(out)
    assert states, "no training state to resume from"
    step = load_state(states[-1])["trainer"]["step"]
    point = {"signal": signal.Signals(sig).name, "seconds_after_first_checkpoint": round(delay, 3),
             "resumed_from_step": step, "attempt": attempt + 1}
    print(f"\n{verb} kill point: {point}")
    _main([verb, "--resume", out, "--no-progress"])
    return point


def _assert_same_run(out: Path, reference: Path, point):
    assert not _states(out), "the resume state must be gone once the run is published"
    assert not (out / "resume").exists() and not list(out.parent.glob(f".{out.name}.staging-*"))
    a, b = load_file(out / "model" / "model.safetensors"), load_file(reference / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), f"weights differ after resuming at {point}"
    logs = [_strip([json.loads(line) for line in (d / "log.jsonl").read_text().splitlines()]) for d in (out, reference)]
    assert logs[0] == logs[1], f"history differs after resuming at {point}"
    reports = [json.loads((d / "report" / "metrics.json").read_text()) for d in (out, reference)]
    for report in reports:
        report["summary"] = {k: v for k, v in report["summary"].items() if k not in TIMING_KEYS}
    assert reports[0] == reports[1], f"report differs after resuming at {point}"


def _classifier_args(tmp: Path):
    rng = random.Random(0)
    files = [write_labelled_csv(tmp / f"{name}.csv", n, rng) for name, n in (("train", 160), ("valid", 40),
                                                                                ("test", 40))]
    return ["--data", files[0], "--valid-data", files[1], "--test-data", files[2], "--min-freq", 1, "--embeddings",
            "random", "--embedding-dim", 12, "--hidden-size", 12, "--epochs", 3, "--batch-size", 8, "--lr", 0.01,
            "--patience", "None", "--checkpoint-every", 3, "--no-progress"]


def _lm_args(tmp: Path):
    (tmp / "corpus.txt").write_text(VERSE * 12, encoding="utf-8")
    (tmp / "test.txt").write_text(VERSE, encoding="utf-8")
    return ["--data", tmp / "corpus.txt", "--test-data", tmp / "test.txt", "--valid-fraction", 0.1, "--eval-streams",
            1, "--embedding-dim", 8, "--hidden-size", 16, "--num-layers", 1, "--dropout", 0.1, "--bptt", 12,
            "--random-length", "--batch-size", 4, "--epochs", 3, "--max-time", "None", "--eval-every", 8,
            "--warmup", 5, "--checkpoint-every", 2, "--no-progress"]


PIPELINES = {"train": _classifier_args, "train-lm": _lm_args}


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """Per verb: (its arguments, an uninterrupted run's folder, that run's training seconds)."""
    made = {}
    for verb, make in PIPELINES.items():
        tmp = tmp_path_factory.mktemp(verb)
        args = make(tmp)
        _main([verb, *args, "--out", tmp / "reference"])
        history = [json.loads(line) for line in (tmp / "reference" / "log.jsonl").read_text().splitlines()]
        made[verb] = (args, tmp / "reference", history[-1]["elapsed"])
    return made


@pytest.mark.parametrize("verb,sig", [("train", signal.SIGKILL), ("train-lm", signal.SIGKILL),
                                      ("train-lm", signal.SIGINT)], ids=["train-SIGKILL", "train-lm-SIGKILL",
                                                                         "train-lm-SIGINT"])
def test_killed_run_resumes_bit_identical(references, tmp_path, verb, sig):
    args, reference, seconds = references[verb]
    rng = random.Random()  # a fresh kill point each time; it is printed and in every failure message
    point = _kill_and_resume(verb, args, tmp_path / "run", sig, seconds, rng)
    _assert_same_run(tmp_path / "run", reference, point)
