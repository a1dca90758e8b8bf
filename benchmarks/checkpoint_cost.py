"""What the resumable training state costs for the default language model: size, save time, share of training.

    .venv/bin/python benchmarks/checkpoint_cost.py            # ≈ 1 min

Trains a few steps of the default `rnnkit train-lm` model (batch 64, bptt 128) on the
bundled Shakespeare and times, in the same process and interleaved, an optimiser step and a
save of the full training state (weights, AdamW moments, best weights, generators, task).
The overhead printed is the save time over the default cadence (`checkpoint_every="5s"`,
which the trainer stretches to 50 times the last save's duration when saving is slow).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from rnnkit.api.language_model import LM_TRAIN_DEFAULTS, CorpusConfig, load_corpus
from rnnkit.data import CharTokenizer, Vocabulary
from rnnkit.models.config import LanguageModelConfig
from rnnkit.models.language_model import RNNLanguageModel
from rnnkit.tasks.language_model import LanguageModelTask
from rnnkit.training import TrainConfig, Trainer


def main(rounds: int = 6) -> None:
    splits = load_corpus(CorpusConfig())
    tokens = CharTokenizer().tokenize(splits.train[:200_000])
    vocab = Vocabulary.build([tokens])
    ids = torch.tensor(vocab.encode(tokens))
    config = TrainConfig(**{**LM_TRAIN_DEFAULTS, "max_time": None, "max_steps": rounds, "eval_every": None,
                            "checkpoint_every": "1", "progress": False})
    task = LanguageModelTask(ids, ids[:5000], config.batch_size, 128, seed=0)
    net = RNNLanguageModel(LanguageModelConfig(), len(vocab), vocab.pad_id)
    path = Path(tempfile.mkdtemp()) / "state.pt"
    trainer = Trainer(net, task, config, state_path=path)
    steps, saves = [], []
    step, save = trainer._step, trainer._save_state

    def timed(store, call):
        def run(*args):
            started = time.perf_counter()
            out = call(*args)
            store.append(time.perf_counter() - started)
            return out
        return run

    # Both wrapped on the one trainer, so steps and saves alternate in the same process.
    trainer._step, trainer._save_state = timed(steps, step), timed(saves, save)
    trainer.fit()
    save_s, step_s = statistics.median(saves), statistics.median(steps[1:])
    print(f"threads {torch.get_num_threads()}, parameters {sum(p.numel() for p in net.parameters()):,}, "
          f"state file {os.path.getsize(path) / 1e6:.1f} MB")
    print(f"median step {step_s * 1000:.0f} ms, median save {save_s * 1000:.0f} ms "
          f"(save/step {save_s / step_s:.2f}); at the default cadence (5 s, and at least 50 saves' time apart): "
          f"{100 * save_s / max(5.0, 50 * save_s):.1f}% of training time")


if __name__ == "__main__":
    main()
