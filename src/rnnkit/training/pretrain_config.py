"""Language-model pre-training of a classifier's encoder and its ULMFiT fine-tuning: the typed settings.

Torch-free, so the command line is generated from it without loading torch; the fine-tuning itself is
``training.ulmfit``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rnnkit.config_fields import help_field as _help
from rnnkit.training.config import SCHEDULES
from rnnkit.validation import (
    check_choice,
    check_nonnegative_int,
    check_positive_int,
    check_positive_number,
    check_probability,
)


@dataclass
class PretrainConfig:
    """Language-model pre-training of the classifier's encoder, a pre-trained encoder to start from, and how the
    classifier is then fine-tuned."""

    pretrain_lm: bool = _help("first train the classifier's embedding and recurrent encoder as a word language model "
                              "(forward, and backward when bidirectional) on the training texts and --unlabeled, "
                              "then fine-tune it ULMFiT-style; the encoder is saved in RUN/encoder", default=False)
    unlabeled: str | None = _help("more text for --pretrain-lm: a plain text file or a folder of .txt files (UTF-8); "
                                  "its words also join the vocabulary", default=None)
    encoder: str | None = _help("start from a pre-trained encoder: a run folder or its encoder/ folder, a saved "
                                "classifier, or a word-level `rnnkit train-lm` model; its vocabulary and tokenizer "
                                "are kept and its sizes must match the model options", default=None)
    pretrain_epochs: int = _help("passes of language-model pre-training over the text, per direction", default=3)
    pretrain_max_time: float | None = _help("seconds of pre-training in all (shared by the directions); None: no "
                                            "limit", default=None)
    pretrain_lr: float = _help("peak learning rate of pre-training (slanted triangular schedule)", default=3e-3)
    pretrain_batch_size: int = _help("parallel text streams in pre-training", default=32)
    pretrain_bptt: int = _help("tokens per truncated-BPTT window in pre-training", default=70)
    pretrain_samples: int = _help("train the language model's output with a sampled softmax over this many words "
                                  "drawn per step (the full softmax costs ~95%% of a step with a 17k-word vocabulary); "
                                  "0 or more than the vocabulary: the full softmax. The perplexity is always exact",
                                  default=1024)
    pretrain_dropout: float = _help("dropout on the recurrent outputs before the language-model head", default=0.1)
    lm_valid_fraction: float = _help("share of the training texts (whole texts, never validation or test ones) held "
                                     "out to report the language model's perplexity", default=0.05)
    # The fine-tuning defaults are the plain ones (one rate, everything trained from the first step, cosine): on the
    # validation splits of BBC News and Rotten Tomatoes a pre-trained encoder fine-tuned so reached 0.991 and 0.789,
    # fine-tuned with ULMFiT's three devices (2.6, gradual unfreezing, stlr) 0.972 and 0.743 (the issue notes).
    lr_decay: float = _help("fine-tuning a pre-trained encoder: each layer group below the classifier layer learns at "
                            "the rate of the group above divided by this (ULMFiT: 2.6; 1: one rate for all)",
                            default=1.0)
    gradual_unfreezing: bool = _help("fine-tuning a pre-trained encoder: train the classifier layer alone in the first "
                                     "epoch, then unfreeze one layer group more (top down) each epoch (ULMFiT)",
                                     default=False)
    finetune_schedule: str = _help("learning-rate schedule when fine-tuning a pre-trained encoder (replaces "
                                   "--schedule then; stlr: ULMFiT's slanted triangle)", default="cosine")

    def __post_init__(self):
        for name in ("pretrain_epochs", "pretrain_batch_size", "pretrain_bptt"):
            check_positive_int(name, getattr(self, name))
        check_nonnegative_int("pretrain_samples", self.pretrain_samples)
        for name in ("pretrain_lr", "lr_decay") + (("pretrain_max_time",) if self.pretrain_max_time is not None
                                                   else ()):
            check_positive_number(name, getattr(self, name))
        if self.lr_decay < 1:
            raise ValueError(f"lr_decay must be >= 1 (lower layers learn no faster than upper ones), got "
                             f"{self.lr_decay!r}")
        check_probability("pretrain_dropout", self.pretrain_dropout)
        check_probability("lm_valid_fraction", self.lm_valid_fraction)
        if not 0 < self.lm_valid_fraction < 1:
            raise ValueError(f"lm_valid_fraction must be in (0, 1), got {self.lm_valid_fraction!r}")
        check_choice("finetune_schedule", self.finetune_schedule, SCHEDULES)
        for name in ("unlabeled", "encoder"):
            value = getattr(self, name)
            if value is not None and not str(value).strip():
                raise ValueError(f"{name} is empty: give a path or leave it out")
        if self.unlabeled is not None and not self.pretrain_lm:
            raise ValueError("unlabeled text is only read by language-model pre-training: add --pretrain-lm")

    @property
    def pretrained(self) -> bool:
        """The classifier starts from a pre-trained encoder (and is fine-tuned ULMFiT-style)."""
        return self.pretrain_lm or self.encoder is not None


# ULMFiT's fine-tuning, as in the paper: PretrainConfig(pretrain_lm=True, **ULMFIT), or on the command line
# --lr-decay 2.6 --gradual-unfreezing --finetune-schedule stlr.
ULMFIT = {"lr_decay": 2.6, "gradual_unfreezing": True, "finetune_schedule": "stlr"}
