"""The models a server holds: each saved folder loaded once, under a name, with what ``/v1/models`` tells."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rnnkit.saved.classifier import Classifier
from rnnkit.saved.folders import resolve_model_path
from rnnkit.saved.kinds import CLASSIFIER
from rnnkit.saved.language_model import LanguageModel
from rnnkit.saved.loader import load_saved_model
from rnnkit.serve.errors import ServeError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


@dataclass
class ServedModel:
    name: str
    kind: str  # CLASSIFIER or LANGUAGE_MODEL
    model: Classifier | LanguageModel
    path: str

    @property
    def tokenizer(self):
        return self.model.tokenizer

    def describe(self) -> dict:
        m = self.model
        net_config = m.model.config
        # No filesystem path here: the answer may reach machines other than the server's.
        info = {"name": self.name, "kind": self.kind, "cell": net_config.cell,
                "embedding_dim": net_config.embedding_dim, "hidden_size": net_config.hidden_size,
                "num_layers": net_config.num_layers, "bidirectional": bool(getattr(net_config, "bidirectional", False)),
                "tokenizer": m.tokenizer.to_config(), "vocab_size": len(m.vocab),
                "metrics": m.meta.get("metrics")}
        if self.kind == CLASSIFIER:
            info.update(labels=list(m.labels), max_length=m.max_length,
                        ensemble=int(getattr(net_config, "ensemble", 1)))
        return info


def load_model(path: str | Path, name: str | None = None) -> ServedModel:
    """A classifier or language model folder (or a run folder holding ``model/``), whichever it holds."""
    folder = resolve_model_path(path)
    kind, model = load_saved_model(folder)
    # A run folder's checkpoint lives in run/model/: name it after the run, not "model".
    default = folder.resolve().name if folder.resolve().name != "model" else folder.resolve().parent.name
    return ServedModel(name or default, kind, model, str(folder))


def parse_model_spec(spec: str) -> tuple[str | None, str]:
    """``NAME=PATH`` or plain ``PATH`` (named after its folder)."""
    if "=" in spec and _NAME.match(spec.split("=", 1)[0]):
        name, path = spec.split("=", 1)
        return name, path
    return None, spec


class ModelRegistry:
    """Served models by name; the first of each kind is the default for requests that name none."""

    def __init__(self, models: list[ServedModel]):
        if not models:
            raise ValueError("no model to serve: give at least one classifier or language model folder")
        self.models: dict[str, ServedModel] = {}
        for served in models:
            if not _NAME.match(served.name):
                raise ValueError(f"model name {served.name!r} must be 1-64 letters, digits, '_', '-' or '.'")
            if served.name in self.models:
                raise ValueError(f"two models are named {served.name!r}; name them with NAME=PATH")
            self.models[served.name] = served

    @classmethod
    def from_specs(cls, specs: list[str]) -> ModelRegistry:
        return cls([load_model(path, name) for name, path in map(parse_model_spec, specs)])

    @classmethod
    def of(cls, models) -> ModelRegistry:
        """From a registry, a list of ServedModel / paths, or a dict name → Classifier / LanguageModel / path."""
        if isinstance(models, ModelRegistry):
            return models
        if isinstance(models, dict):
            return cls([_wrap(name, m) for name, m in models.items()])
        if isinstance(models, str | Path):
            models = [models]
        return cls([m if isinstance(m, ServedModel) else load_model(m) for m in models])

    def get(self, name: str | None, kind: str) -> ServedModel:
        if name is None:
            for served in self.models.values():
                if served.kind == kind:
                    return served
            raise ServeError(404, "model_not_found", f"no {kind.replace('_', ' ')} is served here",
                             field="model")
        served = self.models.get(name)
        if served is None:
            raise ServeError(404, "model_not_found", f"no model named {name!r}; served: {sorted(self.models)}",
                             field="model")
        if served.kind != kind:
            raise ServeError(400, "wrong_model_kind",
                             f"model {name!r} is a {served.kind.replace('_', ' ')}, not a {kind.replace('_', ' ')}",
                             field="model")
        return served

    def any(self, name: str | None) -> ServedModel:
        """The named model of either kind, or the first one served."""
        if name is None:
            return next(iter(self.models.values()))
        if name not in self.models:
            raise ServeError(404, "model_not_found", f"no model named {name!r}; served: {sorted(self.models)}",
                             field="model")
        return self.models[name]

    def __iter__(self):
        return iter(self.models.values())


def _wrap(name: str, model) -> ServedModel:
    if isinstance(model, ServedModel):
        model.name = name
        return model
    if isinstance(model, (Classifier, LanguageModel)):
        return ServedModel(name, model.kind, model, "<in memory>")
    return load_model(model, name)
