"""BBC News with the default classifier: test accuracy, training time, and bucketed vs random batching.

    .venv/bin/python benchmarks/classify_bbc.py accuracy      # a bare `rnnkit train` run, timed (≈ 10 min)
    .venv/bin/python benchmarks/classify_bbc.py batching      # tokens/s: length buckets vs random batches (≈ 2 min)

`accuracy` trains exactly what `rnnkit train` trains (every choice made on the validation
split) and prints the test accuracy, which is read only once, at the end, beside a TF-IDF +
linear SVM's on the same split (benchmarks/linear_baseline.py; C chosen on validation). `batching`
times training steps of the default model on length-bucketed batches and on random
batches of the same examples, interleaved in one process, counting real (non-pad) tokens.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
from linear_baseline import compare, summary_row, svm_baseline

from rnnkit.api.classifier import CLASSIFIER_TRAIN_DEFAULTS, build_tokenizer, train_classifier
from rnnkit.data import BucketBatchSampler, EncodedDataset, Vocabulary, pad_batch, padding_fraction
from rnnkit.data.config import ClassifierDataConfig, load_classification_data
from rnnkit.models.classifier import RNNClassifier
from rnnkit.models.config import ClassifierConfig
from rnnkit.training import TrainConfig, make_optimizer


def accuracy(out: str) -> None:
    start = time.monotonic()
    _, summary = train_classifier(ClassifierDataConfig(), out, overwrite=True)  # a benchmark is rerun
    summary["wall_seconds"] = round(time.monotonic() - start, 1)
    print(json.dumps(summary, indent=2))
    # The linear baseline on the same split, in the same run (its C chosen on validation).
    splits, _ = load_classification_data(ClassifierDataConfig())
    parts = {part: [(e.text, e.label) for e in getattr(splits, part)] for part in ("train", "valid", "test")}
    svm = svm_baseline(parts)
    print(f"TF-IDF + LinearSVC (C={svm['C']}): valid {svm['valid']:.3f}, test {svm['test']:.3f}")
    print(f"rnnkit: valid {summary['valid_accuracy']:.3f}, test {summary['test_accuracy']:.3f}; "
          f"{summary_row([compare(summary['test_accuracy'], svm['test'], len(splits.test))])} (test)")


def batching(steps: int) -> None:
    data_config, model_config = ClassifierDataConfig(), ClassifierConfig()
    train_config = TrainConfig(**CLASSIFIER_TRAIN_DEFAULTS)
    splits, _ = load_classification_data(data_config)
    tokenizer = build_tokenizer(data_config)
    vocab = Vocabulary.build((tokenizer.tokenize(e.text) for e in splits.train), min_freq=data_config.min_freq,
                             max_size=data_config.max_vocab)
    data = EncodedDataset.from_examples(splits.train, tokenizer, vocab, splits.labels)
    lengths = [min(len(s), data_config.max_length or len(s)) for s in data.ids]
    bs = train_config.batch_size
    buckets = BucketBatchSampler(lengths, bs, seed=0).batches()
    order = np.random.default_rng(0).permutation(len(lengths)).tolist()
    random_batches = [order[i:i + bs] for i in range(0, len(order), bs)]
    torch.manual_seed(0)
    model = RNNClassifier(model_config, len(vocab), len(splits.labels))
    opt = make_optimizer(model, train_config)  # AdamW, and SparseAdam for the n-gram table's sparse gradient

    def step(batch) -> float:
        ids, lens = pad_batch([data.ids[i] for i in batch], 0, data_config.max_length)
        labels = torch.tensor([data.label_ids[i] for i in batch])
        t = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(ids, lens), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return int(lens.sum()) / (time.perf_counter() - t)

    rates = {"buckets": [], "random": []}
    for i in range(steps):
        rates["buckets"].append(step(buckets[i % len(buckets)]))
        rates["random"].append(step(random_batches[i % len(random_batches)]))
    b, r = statistics.median(rates["buckets"]), statistics.median(rates["random"])
    print(f"default model: {model_config}")
    print(f"padding fraction: buckets {padding_fraction(lengths, buckets):.3f}, "
          f"random {padding_fraction(lengths, random_batches):.3f}")
    print(f"real tokens/s (median of {steps} interleaved steps): buckets {b:.0f}, random {r:.0f}, ratio {b / r:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["accuracy", "batching"])
    parser.add_argument("--out", default="runs/benchmark-bbc")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    accuracy(args.out) if args.what == "accuracy" else batching(args.steps)


if __name__ == "__main__":
    main()
