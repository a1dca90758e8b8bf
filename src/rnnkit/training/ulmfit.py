"""ULMFiT-style fine-tuning of a classifier whose encoder was pre-trained (its settings: ``pretrain_config``).

Howard & Ruder (2018) fine-tune a pre-trained encoder with three devices, all here (``ULMFIT`` turns them on; the
defaults leave them off, which validation preferred, see ``PretrainConfig``):

* discriminative learning rates: the network is cut into layer groups, the classifier layer first, then each
  recurrent layer from the top, then the embedding; group k learns at ``lr / lr_decay**k`` (2.6 in the paper);
* the slanted triangular schedule (``schedule="stlr"``, see ``training.schedule``);
* gradual unfreezing: the first epoch trains the classifier layer alone, each later epoch unfreezes the next group
  down, so the randomly initialised head does not wreck the pre-trained features before it has learned to read them.

Frozen parameters have ``requires_grad=False``: their gradient stays None, AdamW skips them (no update, no weight
decay) and back-propagation stops above them, so the early epochs are also the cheap ones. The plan is a function of
the epoch number alone, so a resumed run freezes exactly as the uninterrupted one did.
"""

from __future__ import annotations

from torch import nn

from rnnkit.training.optim import discriminative_groups
from rnnkit.training.pretrain_config import PretrainConfig


def layer_groups(model: nn.Module) -> list[list[nn.Parameter]]:
    """An ``RNNClassifier``'s parameters cut into ULMFiT's layer groups, the top one first.

    [everything outside the encoder (classifier layer, n-gram path), recurrent layer L-1 (both directions), ...,
    recurrent layer 0, the embedding].
    """
    encoder = model.encoder
    inside = {id(p) for p in encoder.parameters()}
    groups = [[p for p in model.parameters() if id(p) not in inside]]
    named = dict(encoder.rnn.named_parameters())
    for k in reversed(range(encoder.config.num_layers)):
        groups.append([p for name, p in named.items() if name.endswith(f"_l{k}") or name.endswith(f"_l{k}_reverse")])
    groups.append([encoder.embedding.weight])
    return groups


class Finetuning:
    """The optimiser groups and the unfreezing plan of one classifier; ``release()`` when training ends."""

    def __init__(self, model: nn.Module, config: PretrainConfig, lr: float, weight_decay: float):
        self.model, self.config, self.lr, self.weight_decay = model, config, lr, weight_decay
        self.groups = layer_groups(model)

    def param_groups(self, model: nn.Module) -> list[dict]:
        """For ``Trainer(param_groups=...)``: built while every group is trainable, so each has its AdamW state."""
        self.release()
        return discriminative_groups(model, self.groups, self.lr, self.weight_decay, self.config.lr_decay)

    def on_epoch_start(self, model: nn.Module, epoch: int) -> None:
        """Epoch e (0-based) trains groups 0..e; the rest keep their weights."""
        for depth, group in enumerate(self.groups):
            trainable = not self.config.gradual_unfreezing or depth <= epoch
            for parameter in group:
                parameter.requires_grad_(trainable)

    def release(self) -> None:
        for group in self.groups:
            for parameter in group:
                parameter.requires_grad_(True)


__all__ = ["Finetuning", "layer_groups"]
