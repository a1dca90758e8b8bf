"""Sequence classification as a trainer ``Task``: length-bucketed batches, cross-entropy, accuracy."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from rnnkit.data import BucketBatchSampler, EncodedDataset, pad_batch
from rnnkit.data.distributed import ShardedBatches
from rnnkit.evaluation import classification_report
from rnnkit.training import StepResult


class ClassificationTask:
    monitor = "accuracy"
    mode = "max"

    def __init__(self, train: EncodedDataset, valid: EncodedDataset | None, labels: list[str], batch_size: int,
                 max_length: int | None, seed: int = 0, pad_id: int = 0, label_smoothing: float = 0.0,
                 eval_batch_size: int = 64, world=None, epoch_hook=None, aux_loss: float = 0.0):
        self.train, self.valid, self.labels = train, valid, labels
        self.max_length, self.pad_id = max_length, pad_id
        self.eval_batch_size = eval_batch_size
        lengths = [min(len(s), max_length or len(s)) for s in train.ids]
        self.sampler = BucketBatchSampler(lengths, batch_size, shuffle=True, seed=seed)
        if world is not None and world.distributed:
            # batch_size is the global batch: this process trains on its share of each (rnnkit.data.distributed).
            self.sampler = ShardedBatches(self.sampler, world.rank, world.size)
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.splits = {"valid": valid}
        self.epoch_hook = epoch_hook  # e.g. gradual unfreezing (training.ulmfit.Finetuning.on_epoch_start)
        # > 0: the model returns (logits, recurrence's, n-gram bag's) and each part is also trained on its own.
        self.aux_loss = aux_loss

    def on_epoch_start(self, model, epoch: int) -> None:
        if self.epoch_hook is not None:
            self.epoch_hook(model, epoch)

    def train_batches(self, epoch: int):
        self.sampler.set_epoch(epoch)
        return self.sampler

    def state_dict(self) -> dict:
        """The sampler's state: the trainer keeps the position inside the epoch, and nothing else is carried."""
        return {"sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state["sampler"])

    def _tensors(self, data: EncodedDataset, indices, device):
        ids, lengths = pad_batch([data.ids[i] for i in indices], self.pad_id, self.max_length)
        labels = None if data.label_ids is None else torch.tensor([data.label_ids[i] for i in indices])
        return ids.to(device), lengths, (None if labels is None else labels.to(device))

    def train_step(self, model, batch) -> StepResult:
        device = next(model.parameters()).device
        ids, lengths, labels = self._tensors(self.train, batch, device)
        if self.aux_loss:
            logits, recurrent, bag = model(ids, lengths, parts=True)
            loss = self.loss_fn(logits, labels) + self.aux_loss * (self.loss_fn(recurrent, labels)
                                                                   + self.loss_fn(bag, labels))
        else:
            logits = model(ids, lengths)
            loss = self.loss_fn(logits, labels)
        correct = int((logits.argmax(1) == labels).sum())
        return StepResult(loss=loss, tokens=int(lengths.sum()), examples=len(batch), correct=correct)

    @torch.no_grad()
    def predict_proba(self, model, data: EncodedDataset) -> np.ndarray:
        """(N, C) class probabilities, in the data's order; batches sorted by length for speed."""
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        order = np.argsort([len(s) for s in data.ids], kind="stable")
        probs = np.zeros((len(data.ids), len(self.labels)), dtype=np.float64)
        for start in range(0, len(order), self.eval_batch_size):
            chunk = order[start:start + self.eval_batch_size].tolist()
            ids, lengths, _ = self._tensors(data, chunk, device)
            probs[chunk] = model(ids, lengths).softmax(1).double().cpu().numpy()
        model.train(was_training)
        return probs

    def report(self, model, data: EncodedDataset) -> dict:
        predicted = self.predict_proba(model, data).argmax(1).tolist()
        return classification_report(data.label_ids, predicted, self.labels)

    def evaluate(self, model, split: str) -> dict[str, float]:
        data = self.splits.get(split)
        if data is None:
            raise ValueError(f"no {split!r} split to evaluate on")
        probs = self.predict_proba(model, data)
        report = classification_report(data.label_ids, probs.argmax(1).tolist(), self.labels)
        picked = probs[np.arange(len(probs)), data.label_ids]
        loss = float(-np.log(np.clip(picked, 1e-12, None)).mean())
        return {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"], "loss": loss}
