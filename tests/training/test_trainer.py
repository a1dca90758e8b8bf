import json
import math

import pytest
import torch
from torch import nn

from rnnkit.training import StepResult, TrainConfig, Trainer, parameter_groups

TIMING_KEYS = {"elapsed", "tokens_per_s"}


def _config(**overrides) -> TrainConfig:
    settings = {"epochs": 4, "lr": 0.02, "progress": False, "patience": None}
    settings.update(overrides)
    return TrainConfig(**settings)


def _equal_states(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_learns_separable_toy_problem(toy_task, mlp):
    result = Trainer(mlp(), toy_task, _config(epochs=5)).fit()
    assert result.reason == "completed" and not result.stopped_early
    assert len(result.history) == 5
    assert result.best["valid_accuracy"] >= 0.95
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.history[-1]["train_accuracy"] > 0.9
    assert [r["step"] for r in result.history] == [8, 16, 24, 32, 40]
    assert toy_task.epochs_started == [0, 1, 2, 3, 4]


def test_modes_are_switched_for_training_and_evaluation(toy_task, mlp):
    model = mlp()
    Trainer(model, toy_task, _config(epochs=2)).fit()
    assert set(toy_task.train_modes) == {(True, True)}
    assert set(toy_task.eval_modes) == {(False, False)}
    assert not model.training  # fit hands back a model ready for inference


def test_early_stopping_with_patience_and_best_weights_restored(scripted_task, mlp):
    task = scripted_task([0.5, 0.8, 0.7, 0.75, 0.79, 0.99])
    model = mlp()
    result = Trainer(model, task, _config(epochs=10, patience=3)).fit()
    assert result.reason == "early_stopping" and result.stopped_early
    assert len(result.history) == 5  # best at eval 2, then 3 without improvement
    assert result.best_epoch == 2 and result.best["valid_accuracy"] == 0.8
    assert [r["improved"] for r in result.history] == [True, True, False, False, False]
    assert _equal_states(model.state_dict(), task.snapshots[1])
    assert not _equal_states(model.state_dict(), task.snapshots[-1])


def test_min_mode_and_nan_never_improves(scripted_task, mlp):
    task = scripted_task([2.0, float("nan"), 1.5, 1.7], monitor="bits_per_char", mode="min")
    result = Trainer(mlp(), task, _config(epochs=4)).fit()
    assert result.best_epoch == 3 and result.best["valid_bits_per_char"] == 1.5
    assert [r["improved"] for r in result.history] == [True, False, True, False]


def test_log_jsonl_and_save_best(tmp_path, scripted_task, mlp):
    task = scripted_task([0.5, 0.6, 0.55])
    saved = []

    def save_best(path):
        saved.append((path, {k: v.clone() for k, v in model.state_dict().items()}))

    model = mlp()
    result = Trainer(model, task, _config(epochs=3), out_dir=tmp_path, save_best=save_best).fit()
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 3
    expected = {"epoch", "step", "train_loss", "train_accuracy", "valid_accuracy", "elapsed", "tokens_per_s", "lr"}
    for record, entry in zip(records, result.history, strict=True):
        assert expected <= record.keys()
        assert {k: v for k, v in record.items() if k not in TIMING_KEYS} == pytest.approx(
            {k: v for k, v in entry.items() if k not in TIMING_KEYS}
        )
    assert [path for path, _ in saved] == [tmp_path / "best"] * 2
    assert _equal_states(saved[-1][1], task.snapshots[1])


def test_max_time_stops_after_current_step_and_still_evaluates(toy_task, mlp):
    result = Trainer(mlp(), toy_task, _config(max_time=1e-9)).fit()
    assert result.reason == "max_time" and result.stopped_early
    assert result.steps == 1
    assert len(result.history) == 1 and result.history[0]["step"] == 1
    assert result.best is not None


def test_same_seed_same_history(toy_task, mlp):
    def run(seed):
        model = mlp(seed=1, dropout=0.2)  # dropout and shuffling draw from the seeded global RNG
        history = Trainer(model, toy_task, _config(epochs=2, seed=seed)).fit().history
        return [{k: v for k, v in record.items() if k not in TIMING_KEYS} for record in history], model

    first, model_a = run(5)
    second, model_b = run(5)
    assert first == second
    assert _equal_states(model_a.state_dict(), model_b.state_dict())
    assert run(6)[0] != first


def test_eval_every_steps(toy_task, mlp):
    result = Trainer(mlp(), toy_task, _config(epochs=2, eval_every=3)).fit()
    # 16 steps: evaluations at 3, 6, ..., 15 and a final one for the last step.
    assert [r["step"] for r in result.history] == [3, 6, 9, 12, 15, 16]
    assert [r["epoch"] for r in result.history] == [1, 1, 2, 2, 2, 2]


def test_keyboard_interrupt_keeps_best_and_log(tmp_path, scripted_task, mlp):
    task = scripted_task([0.9, 0.1])
    original_step = task.train_step
    calls = []

    def interrupting_step(model, batch):
        calls.append(1)
        if len(calls) == 11:  # in the second epoch, after one evaluation
            raise KeyboardInterrupt
        return original_step(model, batch)

    task.train_step = interrupting_step
    model = mlp()
    result = Trainer(model, task, _config(), out_dir=tmp_path).fit()
    assert result.reason == "interrupted" and result.stopped_early
    assert len(result.history) == 1 and result.best_epoch == 1
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 1
    assert _equal_states(model.state_dict(), task.snapshots[0])


def test_non_finite_loss_stops_without_poisoning_weights(toy_task, mlp):
    original_step = toy_task.train_step
    calls = []

    def step(model, batch):
        calls.append(1)
        result = original_step(model, batch)
        if len(calls) == 3:
            result.loss = result.loss * float("nan")
        return result

    toy_task.train_step = step
    model = mlp()
    result = Trainer(model, toy_task, _config()).fit()
    assert result.reason == "non_finite_loss" and result.steps == 2
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_history_lr_follows_warmup(toy_task, mlp):
    result = Trainer(mlp(), toy_task, _config(epochs=1, eval_every=1, warmup=4, lr=0.01)).fit()
    assert [r["lr"] for r in result.history[:4]] == pytest.approx([0.0025, 0.005, 0.0075, 0.01])


def test_summary_line_per_evaluation_on_stderr(toy_task, mlp, capsys):
    Trainer(mlp(), toy_task, _config(epochs=2)).fit()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("epoch 1 step 8") and "valid_accuracy" in lines[0]


def test_task_contract_errors(toy_task, mlp):
    class NoMonitor:
        mode = "max"
        train_batches = train_step = evaluate = staticmethod(lambda *a: None)

    with pytest.raises(TypeError, match="monitor"):
        Trainer(mlp(), NoMonitor(), _config())
    toy_task.mode = "up"
    with pytest.raises(ValueError, match="mode"):
        Trainer(mlp(), toy_task, _config())
    toy_task.mode, toy_task.monitor = "max", "f1"
    with pytest.raises(KeyError, match="f1"):
        Trainer(mlp(), toy_task, _config()).fit()
    with pytest.raises(ValueError, match="out_dir"):
        Trainer(mlp(), toy_task, _config(), save_best=lambda path: None)


def test_step_result_validation(toy_task, mlp):
    toy_task.train_step = lambda model, batch: StepResult(loss=torch.tensor(1.0), tokens=1, examples=1)
    with pytest.raises(ValueError, match="require grad"):
        Trainer(mlp(), toy_task, _config()).fit()


def test_weight_decay_groups_skip_biases_norms_and_embeddings():
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(10, 4)
            self.proj = nn.Linear(4, 4)
            self.norm = nn.LayerNorm(4)
            self.out = nn.Linear(4, 10, bias=False)
            self.out.weight = self.embed.weight  # tied

    model = Tiny()
    groups = {g["name"]: g for g in parameter_groups(model, 0.1)}
    decay = {id(p) for p in groups["decay"]["params"]}
    no_decay = {id(p) for p in groups["no_decay"]["params"]}
    assert decay == {id(model.proj.weight)}
    assert no_decay == {id(p) for p in (model.embed.weight, model.proj.bias, model.norm.weight, model.norm.bias)}
    assert groups["decay"]["weight_decay"] == 0.1 and groups["no_decay"]["weight_decay"] == 0.0


def test_train_loss_is_mean_weighted_by_examples(toy_task, mlp):
    # 250 examples in batches of 32: the last batch holds 26 and must count as such.
    toy_task.train_x, toy_task.train_y = toy_task.train_x[:250], toy_task.train_y[:250]
    result = Trainer(mlp(), toy_task, _config(epochs=1)).fit()
    assert result.steps == 8 and math.isfinite(result.history[0]["train_loss"])


def test_batches_without_len(toy_task, mlp):
    batches = toy_task.train_batches
    toy_task.train_batches = lambda epoch: (batch for batch in batches(epoch))  # a generator: no len()
    with pytest.raises(ValueError, match="whole number of steps"):
        Trainer(mlp(), toy_task, _config(warmup=0.1)).fit()
    result = Trainer(mlp(), toy_task, _config(epochs=2, warmup=3)).fit()
    assert result.steps == 16 and result.history[-1]["lr"] == pytest.approx(0.02)  # no decay without a total
