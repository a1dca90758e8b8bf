"""Typed model configurations; the CLI is generated from their fields' metadata."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

from rnnkit.config_fields import help_field as _help
from rnnkit.models.choices import BLOCKS, CELL_HELP, CELLS, WEIGHTINGS, parse_pooling
from rnnkit.validation import (
    check_choice,
    check_nonnegative_int,
    check_nonnegative_number,
    check_positive_int,
    check_positive_number,
    check_probability,
)

NGRAM_PATHS = ("none", "logits", "features")
NGRAM_WEIGHTINGS = ("auto", *WEIGHTINGS)  # "auto" is settled to one of the bag's own before it is built


@dataclass
class RecurrentStackConfig:
    """What every model here has: an embedding and a stack of one cell type, run by a back end."""

    # Fields added after models of this class were first saved, with the value every earlier save was trained
    # with: a saved config that lacks one gets this value, not today's default (which may differ), so old models
    # load and old runs resume as they were (``from_saved``).
    FIELDS_BEFORE: ClassVar[dict[str, object]] = {"cell_form": "plain"}

    cell: str = _help(CELL_HELP, default="gru")
    embedding_dim: int = _help("embedding size (50 with GloVe 6B 50d)", default=50)
    hidden_size: int = _help("hidden units per direction", default=128)
    num_layers: int = _help("stacked recurrent layers", default=1)
    embedding_dropout: float = _help("dropout on the embeddings", default=0.1)
    backend: str = _help("recurrence back end: auto, native, reference, fused, ... (mingru, minlstm: auto, "
                         "reference, scan, log-scan or fused)", default="auto")
    # Added after the minimal cells were first saved; "plain" is what those were trained with (FIELDS_BEFORE), so
    # a saved config without the field loads, and its run resumes, as it was trained.
    cell_form: str = _help("mingru, minlstm: plain (the paper's cells) or log (the log-space form: positive "
                           "candidate and state)", default="plain")

    def __post_init__(self):
        check_choice("cell", self.cell, CELLS)
        for name in ("embedding_dim", "hidden_size", "num_layers"):
            check_positive_int(name, getattr(self, name))
        check_probability("embedding_dropout", self.embedding_dropout)
        # Importing the layers registers every back end, so the name is checked here and not at the first batch.
        from rnnkit.models.cell_kinds import check_options

        check_options(self.cell, self.backend, self.cell_form)


@dataclass
class EncoderConfig(RecurrentStackConfig):
    """Embedding → recurrent stack, both directions by default: the classifier's reader."""

    bidirectional: bool = _help("add a second recurrence from the end to the start", default=True)
    layer_dropout: float = _help("dropout between stacked recurrent layers", default=0.0)
    freeze_pretrained: bool = _help("keep pretrained (GloVe) vectors fixed; only words without one learn theirs",
                                    default=False)

    def __post_init__(self):
        super().__post_init__()
        check_probability("layer_dropout", self.layer_dropout)


@dataclass
class ClassifierConfig(EncoderConfig):
    """Embedding → recurrent stack → pooling over valid steps → dropout → Linear."""

    FIELDS_BEFORE: ClassVar[dict[str, object]] = {
        **RecurrentStackConfig.FIELDS_BEFORE, "ngrams": "none", "ngram_lr_scale": 1.0, "ngram_weighting": "count",
        "ngram_dropout": 0.0, "ngram_aux_loss": 0.0}

    pooling: str = _help("pooling over valid steps: last, mean, max, or several joined by '+'", default="max+mean")
    dropout: float = _help("dropout before the classifier layer", default=0.3)
    pool_embeddings: bool = _help("pool each token's embedding next to its recurrent state (a direct bag-of-words "
                                  "path beside the recurrence, as in Lai et al.'s RCNN)", default=False)
    # The n-gram defaults ('logits' at 20x the rate) were chosen on validation only, over four data sets and two or
    # three seeds (benchmarks/results/ngram_validation.md): ahead of the plain GRU on 20 Newsgroups, Rotten
    # Tomatoes and health tweets, level on BBC News; at 1x the rate it went both ways ('features' ran on two sets only).
    # ngram_weighting 'auto' (idf for documents, count for sentences) was chosen the same way in a second round:
    # ahead on 20 Newsgroups, level on BBC News (idf there), the same as before on Rotten Tomatoes and tweets
    # (count there); idf everywhere lost a little on the sentence sets, n-gram dropout and label smoothing lost.
    # ngram_aux_loss 0.5 was chosen in a third round on top of 'auto': ahead or level on all four sets (tweets +20
    # of 6,267 examples, 20 Newsgroups +5.3 of 1,857, Rotten Tomatoes +1.5, BBC News +0.3; 2-3 seeds).
    ngrams: str = _help("a bag of word unigrams and hashed bigrams beside the recurrence (fastText-style): 'logits' "
                        "adds a linear n-gram score to each class's logit, 'features' joins a learned n-gram "
                        "vector to the pooled states before the classifier layer; 'none' leaves it out",
                        default="logits")
    ngram_buckets: int = _help("hash buckets for the bigrams of the n-gram path", default=262144)
    ngram_weighting: str = _help("weight of each n-gram in the bag: 'count' (every occurrence 1), 'idf' (its "
                                 "inverse document frequency over the training texts, as TF-IDF weighs it), or "
                                 "'auto': idf when the median training text has 100 tokens or more, else count "
                                 "(the saved model records which)", default="auto")
    ngram_dropout: float = _help("in training, drop each n-gram of the bag with this probability (feature dropout: "
                                 "keeps the table from learning the training texts by heart)", default=0.0)
    ngram_aux_loss: float = _help("with ngrams=logits, add this weight times two more training losses: the "
                                  "recurrence's logits alone and the n-gram score alone must each predict the label "
                                  "(the recurrence keeps learning after the table has fitted the training texts)",
                                  default=0.5)
    ngram_dim: int = _help("size of the n-gram vector with ngrams=features", default=32)
    ngram_lr_scale: float = _help("learning rate of the n-gram table as a multiple of --lr (its rows are updated "
                                  "lazily, only at the steps whose batch holds their n-gram)", default=20.0)
    ensemble: int = _help("train this many models with successive seeds and average their probabilities",
                          default=1)
    cross_fit: bool = _help("with ensemble N >= 2: pool the training and validation data and cut them into N "
                            "folds; member i trains on the others and stops early on fold i. Validation "
                            "figures are then out-of-fold over every pooled example", default=False)

    def __post_init__(self):
        super().__post_init__()
        parse_pooling(self.pooling)
        check_probability("dropout", self.dropout)
        check_positive_int("ensemble", self.ensemble)
        check_choice("ngrams", self.ngrams, NGRAM_PATHS)
        check_positive_int("ngram_buckets", self.ngram_buckets)
        check_choice("ngram_weighting", self.ngram_weighting, NGRAM_WEIGHTINGS)
        check_probability("ngram_dropout", self.ngram_dropout)
        check_nonnegative_number("ngram_aux_loss", self.ngram_aux_loss)
        check_positive_int("ngram_dim", self.ngram_dim)
        check_positive_number("ngram_lr_scale", self.ngram_lr_scale)
        if self.cross_fit and self.ensemble < 2:
            raise ValueError(f"cross_fit needs ensemble >= 2 (one member per fold), got ensemble={self.ensemble}")


def from_dict(cls, data: dict):
    """Build a config from JSON, naming any field this version does not know."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {unknown}")
    return cls(**data)


def from_saved(cls, data: dict):
    """A config of ``cls`` from saved JSON, a field the save predates taking ``cls.FIELDS_BEFORE``'s value."""
    return from_dict(cls, {**getattr(cls, "FIELDS_BEFORE", {}), **data})


def classifier_config_from_saved(data: dict) -> ClassifierConfig:
    return from_saved(ClassifierConfig, data)


@dataclass
class LanguageModelConfig(RecurrentStackConfig):
    """Embedding → recurrent stack (one direction) → locked dropout → Linear, optionally tied; with
    block="residual", pre-norm residual blocks with an MLP each (rnnkit.models.residual)."""

    # Every language model saved before these fields existed stacked its layers plainly (and had no MLP).
    FIELDS_BEFORE: ClassVar[dict[str, object]] = {**RecurrentStackConfig.FIELDS_BEFORE, "block": "plain",
                                                  "mlp_ratio": 0}

    # GRU by default: on the bundled Shakespeare split a 2 x 384 GRU (fused engine, then ~15k tokens/s on 2 cores)
    # reached a lower validation bits/char in 15 minutes than the 2 x 384 LSTM (~10k tokens/s) did in 30.
    # And over MinGRU: at 30 minutes on 2 threads the best screened MinGRU stack (3 x 384, lr 5e-3; 2.3x the
    # GRU's tokens/s) ended at 2.196 bits/char against the GRU's 2.073 (docs/benchmarks.md).
    cell: str = _help(CELL_HELP, default="gru")
    embedding_dim: int = _help("embedding size", default=128)
    hidden_size: int = _help("hidden units per layer", default=384)
    num_layers: int = _help("stacked recurrent layers", default=2)
    embedding_dropout: float = _help("drop whole tokens from the embedding (one mask per sequence)", default=0.0)
    # 0.1 on validation: at the 30-minute run's 3,168 steps a GRU 2 x 384 reached 2.013 bits/char against 2.024
    # without (runs side by side, step for step); more hurt the LSTM mid-run, a higher rate hurt the GRU.
    dropout: float = _help("dropout on each layer's outputs, one mask for all time steps", default=0.1)
    tie_weights: bool = _help("share the embedding and output matrices (adds a projection if sizes differ)",
                              default=False)
    block: str = _help("how layers stack: plain (layer → dropout → layer ...) or residual (pre-norm residual "
                       "blocks as in Feng et al. 2024: x + RNN(LayerNorm(x)), then x + MLP(LayerNorm(x)), a final "
                       "LayerNorm)", default="plain")
    # 4: the Transformer block's MLP expansion (nanoGPT's, the baseline of the paper's Shakespeare runs), which
    # this block copies; the paper's own figure could not be checked offline. 2 halves the MLP's cost per token.
    mlp_ratio: int = _help("block=residual: the MLP's hidden width as a multiple of hidden_size (0: no MLP)",
                           default=4)

    def __post_init__(self):
        super().__post_init__()
        check_probability("dropout", self.dropout)
        check_choice("block", self.block, BLOCKS)
        check_nonnegative_int("mlp_ratio", self.mlp_ratio)
