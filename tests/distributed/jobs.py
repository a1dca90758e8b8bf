"""Tiny training jobs run the same way in one process and in several (``python -m tests.distributed.jobs``).

As a module: ``run_job(spec, world)`` trains a float64 model from a spec and returns what the test compares.
As a script: one rank of a multi-process run; it reads torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT) through ``setup_world`` exactly as ``torchrun -m rnnkit`` does, runs every job
in the JSON file given, and saves its results to ``<out>/rank<r>.pt``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import torch

from rnnkit.data import EncodedDataset
from rnnkit.models.classifier import RNNClassifier
from rnnkit.models.config import ClassifierConfig, LanguageModelConfig
from rnnkit.models.language_model import RNNLanguageModel
from rnnkit.tasks.classification import ClassificationTask
from rnnkit.tasks.language_model import LanguageModelTask
from rnnkit.training import TrainConfig, Trainer
from rnnkit.training.distributed import SINGLE, World, setup_world, shutdown_world

VOCAB = 16


def _classifier_job(spec: dict, world: World):
    g = torch.Generator().manual_seed(spec["seed"])
    n, labels = spec["examples"], ["a", "b", "c"]
    ids = [torch.randint(2, VOCAB, (int(torch.randint(1, 12, (1,), generator=g)),), generator=g).tolist()
           for _ in range(n + 6)]
    label_ids = torch.randint(0, 3, (n + 6,), generator=g).tolist()
    train = EncodedDataset(ids[:n], label_ids[:n], labels)
    valid = EncodedDataset(ids[n:], label_ids[n:], labels)
    if spec.get("unsharded_size"):
        # Deliberately not sharded, and a different size per rank: the trainer must refuse, not hang.
        size = spec["unsharded_size"] * (world.rank + 1)
        train = EncodedDataset(ids[:size], label_ids[:size], labels)
        world_for_task = None
    else:
        world_for_task = world
    config = ClassifierConfig(cell=spec["cell"], embedding_dim=6, hidden_size=5, bidirectional=True, dropout=0.0,
                              embedding_dropout=0.0, backend=spec["backend"], pooling="max+mean",
                              ngrams=spec.get("ngrams", "none"), ngram_buckets=64)
    torch.manual_seed(spec["seed"])
    net = RNNClassifier(config, VOCAB, len(labels), 0).double()
    task = ClassificationTask(train, valid, labels, spec["batch_size"], None, seed=spec["seed"], world=world_for_task)
    return net, task


def _lm_job(spec: dict, world: World):
    g = torch.Generator().manual_seed(spec["seed"])
    ids = torch.randint(2, VOCAB, (spec["tokens"],), generator=g)
    config = LanguageModelConfig(cell=spec["cell"], embedding_dim=6, hidden_size=5, num_layers=2,
                                 dropout=spec.get("dropout", 0.0), backend=spec["backend"])
    torch.manual_seed(spec["seed"])
    net = RNNLanguageModel(config, VOCAB, 0).double()
    task = LanguageModelTask(ids[:-60], ids[-60:], spec["batch_size"], spec["bptt"], random_length=True,
                             seed=spec["seed"], unit="word", eval_streams=2, world=world)
    return net, task


def _signal_at(task, step: int) -> None:
    """This process sends itself SIGTERM during its ``step``-th training step (as torchrun forwards one)."""
    train_step, taken = task.train_step, [0]

    def step_then_signal(model, batch):
        taken[0] += 1
        if taken[0] == step:
            os.kill(os.getpid(), signal.SIGTERM)
        return train_step(model, batch)

    task.train_step = step_then_signal


def _count_reductions(world: World) -> list[int]:
    """Count this world's all-reduces (rnnkit's own World methods, wrapped on this instance only)."""
    count = [0]
    for name in ("all_sum", "all_max", "all_sum_max"):
        method = getattr(world, name)

        def counted(*args, _method=method, **kw):
            count[0] += 1
            return _method(*args, **kw)

        object.__setattr__(world, name, counted)
    return count


def run_job(spec: dict, world: World = SINGLE) -> dict:
    """Train one spec; return the final weights, the history and the reason the run ended.

    Resume specs: ``state_path`` (where the training state is saved), ``signal_at`` + ``signal_rank`` (that
    rank alone is sent SIGTERM during that step), ``resume`` (continue from ``state_path``).
    """
    net, task = (_classifier_job if spec["kind"] == "classifier" else _lm_job)(spec, world)
    config = TrainConfig(epochs=spec.get("epochs", 2), batch_size=spec["batch_size"], lr=0.02, warmup=0.2,
                         patience=None, eval_every=spec.get("eval_every"), progress=False, seed=spec["seed"],
                         max_time=spec.get("max_time"), checkpoint_every=spec.get("checkpoint_every", "epoch"))
    if spec.get("signal_at") and world.rank == spec.get("signal_rank", 0):
        _signal_at(task, spec["signal_at"])
    reductions = _count_reductions(world) if world.distributed else [0]
    trainer = Trainer(net, task, config, world=world, state_path=spec.get("state_path"))
    if spec.get("resume"):
        trainer.load_state(spec["state_path"])
    result = trainer.fit()
    return {"state": {k: v.clone() for k, v in net.state_dict().items()}, "history": result.history,
            "steps": result.steps, "reason": result.reason, "signal": result.signal, "reductions": reductions[0]}


def main(spec_file: str, out: str) -> int:
    torch.set_num_threads(1)
    world = setup_world("cpu")
    results = {}
    for name, spec in json.loads(Path(spec_file).read_text()).items():
        try:
            results[name] = run_job(spec, world)
        except ValueError as error:
            results[name] = {"error": str(error)}
    torch.save(results, Path(out) / f"rank{world.rank}.pt")
    shutdown_world()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
