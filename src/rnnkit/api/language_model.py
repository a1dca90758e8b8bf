"""Train a language model on text and sample from it: ``train_language_model(...)``, ``LanguageModel.load(path)``.

A saved language model is a folder like a classifier's: ``model.safetensors`` and
``config.json`` (model config, vocabulary, tokenizer settings, metrics).

This module is the public name (README, docs, tutorials, ``rnnkit.train_language_model``): the training run lives in
``rnnkit.pipelines.language_model``, the saved object in ``rnnkit.saved.language_model``, the corpus config and
readers in ``rnnkit.data.corpus``.
"""

from rnnkit.data.corpus import CorpusConfig, load_corpus, read_text
from rnnkit.pipelines.language_model import train_language_model
from rnnkit.saved.language_model import LanguageModel
from rnnkit.training.defaults import LM_TRAIN_DEFAULTS

__all__ = ["train_language_model", "LanguageModel", "CorpusConfig", "load_corpus", "read_text", "LM_TRAIN_DEFAULTS"]
