"""Pre-trained encoders on disk: ``RUN/encoder/`` as ``--pretrain-lm`` writes it, and what ``--encoder`` accepts.

An encoder folder is a checkpoint like a model's (``model.safetensors`` + ``config.json``) of kind ``"encoder"``: the
embedding and recurrent weights under ``encoder.``, each pre-trained direction's language-model head under
``head_<direction>.``, and in ``config.json`` the encoder's sizes, vocabulary, tokenizer and the directions trained.

``--encoder`` also takes a saved classifier (its encoder, the first member's for an ensemble) and a word-level
``rnnkit train-lm`` model (its embedding and recurrent layers as the forward direction; a bidirectional classifier's
backward direction then starts untrained). The new classifier keeps the source's vocabulary and tokenizer, so every
pre-trained row keeps its meaning; its sizes must match the source's, field by field.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from torch import Tensor

from rnnkit.data import DataError, Vocabulary, tokenizer_from_config
from rnnkit.models.config import EncoderConfig, RecurrentStackConfig
from rnnkit.models.encoder import Encoder
from rnnkit.saved.kinds import CLASSIFIER, ENCODER, LANGUAGE_MODEL
from rnnkit.training.checkpoint import CONFIG_FILE, load_checkpoint, read_meta, save_checkpoint, verify_weights

KIND = ENCODER  # the old name, kept for importers of rnnkit.pipelines.encoders.KIND
ENCODER_DIR = "encoder"
# The fields that decide the encoder's tensor shapes (and meaning): they must match to load one.
SHAPE_FIELDS = ("cell", "embedding_dim", "hidden_size", "num_layers", "bidirectional")


def encoder_config(config: RecurrentStackConfig) -> EncoderConfig:
    """The encoder part of a classifier (or encoder) config."""
    names = EncoderConfig.__dataclass_fields__
    return EncoderConfig(**{name: value for name, value in asdict(config).items() if name in names})


def save_encoder(path: str | Path, encoder: Encoder, heads: dict, vocab: Vocabulary, tokenizer, **meta) -> Path:
    """Write ``encoder`` (and the LM heads by direction) to the folder ``path``."""
    state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    for direction, head in heads.items():
        state.update({f"head_{direction}.{k}": v for k, v in head.state_dict().items()})
    info = {"kind": KIND, "model_config": asdict(encoder_config(encoder.config)), "vocab": vocab.to_dict(),
            "tokenizer": tokenizer.to_config(), "directions": list(heads), **meta}
    return save_checkpoint(path, state, info)


@dataclass
class EncoderSource:
    """Where ``--encoder`` points, read and checked: the folder, its kind, config, and what it supplies."""

    folder: Path
    kind: str
    meta: dict
    directions: tuple[str, ...]  # the directions it holds weights for

    def describe(self) -> str:
        return f"{self.kind} {self.folder} ({', '.join(self.directions)})"


def find_encoder(path: str | Path, model: RecurrentStackConfig) -> EncoderSource:
    """Read only ``config.json`` and check it against ``model``: the pre-flight part of ``load_encoder``."""
    given = Path(path)
    if not given.exists():
        raise DataError(str(path), message="no such file or folder, given as encoder")
    folder = next((f for f in (given / ENCODER_DIR, given / "model", given) if (f / CONFIG_FILE).is_file()), None)
    if folder is None:
        raise DataError(str(path), message="encoder: no config.json there, nor in its encoder/ or model/ folder "
                        "(give a run folder, an encoder folder, a saved classifier or a word-level language model)")
    meta = read_meta(folder)
    kind = meta.get("kind")
    saved = meta.get("model_config") or {}
    if kind == LANGUAGE_MODEL:
        if (meta.get("tokenizer") or {}).get("type") != "word":
            raise ValueError(f"encoder {folder} is a character-level language model; a classifier's encoder reads "
                             "words: train one with `rnnkit train-lm --tokenizer word`")
        saved = {**saved, "bidirectional": False}
        directions = ("forward",)
    elif kind == CLASSIFIER:
        directions = ("forward", "backward") if saved.get("bidirectional") else ("forward",)
    elif kind == KIND:
        directions = tuple(meta.get("directions") or ("forward",))
    else:
        raise ValueError(f"encoder {folder} holds a {kind!r} model; an encoder comes from --pretrain-lm, a "
                         "classifier or a word-level language model")
    ours = asdict(model)
    for name in SHAPE_FIELDS:
        theirs = saved.get(name)
        if name == "bidirectional" and kind == LANGUAGE_MODEL:
            if ours["bidirectional"] and ours["num_layers"] > 1:
                raise ValueError(f"encoder {folder} is a one-direction language model of {ours['num_layers']} "
                                 "layers: a bidirectional classifier's upper layers read both directions, so their "
                                 "shapes differ; use --no-bidirectional (or num_layers=1)")
            continue
        if theirs != ours[name]:
            flag = f"--{name.replace('_', '-')}"
            value = (flag if theirs else f"--no-{name}") if isinstance(theirs, bool) else f"{flag} {theirs}"
            raise ValueError(f"encoder {folder}: its {name} is {theirs!r} but this classifier's is {ours[name]!r}; "
                             f"give {value} to use it")
    verify_weights(folder)  # a damaged encoder is refused now, not after the data is read
    return EncoderSource(folder, kind, meta, directions)


@dataclass
class PretrainedEncoder:
    """The weights, vocabulary and tokenizer ``--encoder`` gives a new classifier."""

    source: EncoderSource
    state: dict[str, Tensor]  # keys as in Encoder.state_dict(); a missing direction is left out
    vocab: Vocabulary
    tokenizer: object

    def load_into(self, encoder: Encoder) -> None:
        """Copy the weights into ``encoder``; only a direction the source lacks may keep its own."""
        missing, unexpected = encoder.load_state_dict(self.state, strict=False)
        bad = [k for k in missing if not (k.endswith("_reverse") and "backward" not in self.source.directions)]
        if bad or unexpected:
            raise ValueError(f"encoder {self.source.folder}: weights do not fit (missing {bad}, unexpected "
                             f"{unexpected})")


def load_encoder(path: str | Path, model: RecurrentStackConfig) -> PretrainedEncoder:
    source = find_encoder(path, model)
    weights, meta = load_checkpoint(source.folder)
    if source.kind == KIND:
        state = strip_prefix(weights, "encoder.")
    elif source.kind == CLASSIFIER:
        prefix = "encoder." if "encoder.embedding.weight" in weights else "members.0.encoder."
        state = strip_prefix(weights, prefix)
    else:  # a language model: layer k of its ModuleList is layer k of the encoder's forward direction
        state = {"embedding.weight": weights["embedding.weight"]}
        for key, value in weights.items():
            parts = key.split(".")
            if parts[0] == "layers" and len(parts) == 3 and parts[2].endswith("_l0"):
                state[f"rnn.{parts[2][:-1]}{parts[1]}"] = value
    return PretrainedEncoder(source, state, Vocabulary.from_dict(meta["vocab"]),
                             tokenizer_from_config(meta["tokenizer"]))


def strip_prefix(weights: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}


__all__ = ["save_encoder", "load_encoder", "find_encoder", "PretrainedEncoder", "EncoderSource", "encoder_config",
           "SHAPE_FIELDS", "ENCODER_DIR"]
