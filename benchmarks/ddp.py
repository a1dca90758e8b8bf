"""Training tokens/s: 1 process × 1 thread, 2 processes × 1 thread (DDP on gloo), 1 process × 2 threads.

    .venv/bin/python benchmarks/ddp.py                     # both tasks, default step counts (≈ 5 min)
    .venv/bin/python benchmarks/ddp.py --tasks lm --steps 30

Each task trains its default model (``rnnkit train-lm`` on bundled Shakespeare: GRU 2 × 384, 64 streams ×
128 steps; ``rnnkit train`` on BBC News: bidirectional GRU, batch 32) with the same global batch in each
layout, through the real Trainer (DDP, loss scaling, sharded batches). The first ``--warmup`` steps are not
timed, the next ``--steps`` are. Tokens are the global batches' (all ranks, padding excluded),
seconds are a rank's step time, so 2 processes at perfect scaling read 2× one. Validation is skipped (a
stand-in metric): it is not what is compared.

Workers are this script started with torchrun's variables (RANK, WORLD_SIZE, ...), one launch per layout.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import torch

LAYOUTS = [("1 proc × 1 thread", 1, 1), ("2 procs × 1 thread", 2, 1), ("1 proc × 2 threads", 1, 2)]


class _Timed:
    """A task whose steps after the first ``warmup`` are timed and counted; evaluation is a constant stand-in."""

    def __init__(self, task, warmup: int):
        self.task, self.monitor, self.mode, self.warmup = task, task.monitor, task.mode, warmup
        self.train_batches = task.train_batches
        if hasattr(task, "on_epoch_start"):
            self.on_epoch_start = task.on_epoch_start
        self.steps, self.tokens, self.start = 0, 0, None

    def train_step(self, model, batch):
        if self.steps == self.warmup:
            self.start = time.perf_counter()
        result = self.task.train_step(model, batch)
        self.steps += 1
        if self.start is not None and not getattr(batch, "padding", False):
            self.tokens += result.tokens
        return result

    def evaluate(self, model, split):
        return {self.monitor: 0.0}


def _lm(world, batch_size: int):
    from rnnkit.api.language_model import LM_TRAIN_DEFAULTS, CorpusConfig
    from rnnkit.data import CharTokenizer, Vocabulary, load_bundled
    from rnnkit.models.config import LanguageModelConfig
    from rnnkit.models.language_model import RNNLanguageModel
    from rnnkit.tasks.language_model import LanguageModelTask

    corpus = CorpusConfig()
    splits = load_bundled(corpus.data)
    tokens = CharTokenizer().tokenize(splits.train)
    vocab = Vocabulary.build([tokens])
    ids = torch.tensor(vocab.encode(tokens), dtype=torch.long)
    torch.manual_seed(0)
    net = RNNLanguageModel(LanguageModelConfig(), len(vocab), vocab.pad_id)
    batch = batch_size or LM_TRAIN_DEFAULTS["batch_size"]
    task = LanguageModelTask(ids, ids[:2000], batch, corpus.bptt, seed=0, world=world)
    return net, task, {**LM_TRAIN_DEFAULTS, "batch_size": batch}


def _bbc(world, batch_size: int):
    from rnnkit.api.classifier import CLASSIFIER_TRAIN_DEFAULTS, build_tokenizer, build_vocabulary
    from rnnkit.data import EncodedDataset
    from rnnkit.data.config import ClassifierDataConfig, load_classification_data
    from rnnkit.models.classifier import RNNClassifier
    from rnnkit.models.config import ClassifierConfig
    from rnnkit.tasks.classification import ClassificationTask

    data_config = ClassifierDataConfig(embeddings="random")
    splits, _ = load_classification_data(data_config)
    tokenizer = build_tokenizer(data_config)
    vocab = build_vocabulary(splits.train, tokenizer, data_config, use_glove=False)
    train = EncodedDataset.from_examples(splits.train, tokenizer, vocab, splits.labels)
    torch.manual_seed(0)
    net = RNNClassifier(ClassifierConfig(), len(vocab), len(splits.labels), vocab.pad_id)
    batch = batch_size or 32
    task = ClassificationTask(train, train.subset([0]), splits.labels, batch, data_config.max_length,
                              pad_id=vocab.pad_id, world=world)
    return net, task, {**CLASSIFIER_TRAIN_DEFAULTS, "batch_size": batch}


def worker(task_name: str, warmup: int, steps: int, batch_size: int, out: str) -> None:
    from rnnkit.training import TrainConfig, Trainer
    from rnnkit.training.distributed import setup_world, shutdown_world

    world = setup_world("cpu")
    net, task, defaults = (_lm if task_name == "lm" else _bbc)(world, batch_size)
    config = TrainConfig(**{**defaults, "epochs": 1, "max_steps": warmup + steps, "eval_every": None,
                            "max_time": None, "patience": None, "progress": False})
    timed = _Timed(task, warmup)
    result = Trainer(net, timed, config, world=world).fit()
    seconds = time.perf_counter() - timed.start  # the last step's update and a stand-in evaluation: negligible
    (tokens,) = world.all_sum([timed.tokens])  # the global batches' tokens
    if world.is_main:
        Path(out).write_text(json.dumps({"tokens_per_s": tokens / seconds, "steps": result.steps,
                                         "threads": torch.get_num_threads()}))
    shutdown_world()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(task_name: str, processes: int, threads: int, args) -> dict:
    out = Path(args.scratch) / f"{task_name}-{processes}x{threads}.json"
    port = _free_port()
    command = [sys.executable, __file__, "--worker", task_name, "--warmup", str(args.warmup), "--steps",
               str(args.steps), "--batch-size", str(args.batch_size), "--result", str(out)]
    workers = []
    for rank in range(processes):
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        if processes > 1:
            env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(processes), MASTER_ADDR="127.0.0.1",
                       MASTER_PORT=str(port))
        workers.append(subprocess.Popen(command, env=env))
    for w in workers:
        if w.wait() != 0:
            raise SystemExit(f"a {task_name} worker failed ({processes} × {threads})")
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="lm,bbc", help="comma-separated: lm, bbc")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--batch-size", type=int, default=0, help="global batch (0: the task's default)")
    parser.add_argument("--scratch", default="/tmp/rnnkit-ddp-benchmark")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.warmup, args.steps, args.batch_size, args.result)
        return
    Path(args.scratch).mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start")
    print(f"{'task':5} {'layout':20} {'tokens/s':>10} {'× 1 proc':>9} {'wall s':>7}")
    for task_name in args.tasks.split(","):
        base = None
        for label, processes, threads in LAYOUTS:
            start = time.monotonic()
            result = launch(task_name, processes, threads, args)
            rate = result["tokens_per_s"]
            base = base or rate
            print(f"{task_name:5} {label:20} {rate:10.0f} {rate / base:9.2f} {time.monotonic() - start:7.0f}",
                  flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
