"""Train a text classifier and use it: ``train_classifier(...)`` and ``Classifier.load(path).predict(texts)``.

A saved classifier is a folder holding ``model.safetensors`` and ``config.json``
(model config, vocabulary, labels, tokenizer settings, metrics): everything
``predict`` needs, and nothing is unpickled on load.

This module is the public name of both halves (README, docs, ``rnnkit.train_classifier``): the training run lives in
``rnnkit.pipelines.classifier``, the saved object in ``rnnkit.saved.classifier``.
"""

from rnnkit.pipelines.classifier import build_tokenizer, build_vocabulary, train_classifier
from rnnkit.saved.classifier import Classifier
from rnnkit.training.defaults import CLASSIFIER_TRAIN_DEFAULTS

__all__ = ["train_classifier", "Classifier", "CLASSIFIER_TRAIN_DEFAULTS", "build_tokenizer", "build_vocabulary"]
