"""Train a text classifier: ``train_classifier(...)`` (the saved object it returns is ``saved.classifier``).

A saved classifier is a folder holding ``model.safetensors`` and ``config.json``
(model config, vocabulary, labels, tokenizer settings, metrics): everything
``predict`` needs, and nothing is unpickled on load.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from rnnkit.data import ClassificationSplits, EncodedDataset, Example, Vocabulary, stratified_folds
from rnnkit.data.config import ClassifierDataConfig, load_classification_data
from rnnkit.data.tokenizers import make_tokenizer
from rnnkit.evaluation import classification_report, format_report, write_report
from rnnkit.models.classifier import EnsembleClassifier, RNNClassifier
from rnnkit.models.config import ClassifierConfig
from rnnkit.models.encoder import Encoder
from rnnkit.models.ngrams import AUTO_IDF_MEDIAN_TOKENS, auto_weighting
from rnnkit.models.pretrained import glove_words, init_embedding_from_glove, wants_glove
from rnnkit.pipelines.encoders import PretrainedEncoder, load_encoder
from rnnkit.pipelines.preflight import check_classifier_run, check_classifier_sizes, check_cross_fit
from rnnkit.pipelines.pretraining import pretrain_encoder, read_unlabeled
from rnnkit.saved.classifier import Classifier
from rnnkit.tasks.classification import ClassificationTask
from rnnkit.training import TrainConfig, Trainer
from rnnkit.training.defaults import CLASSIFIER_TRAIN_DEFAULTS
from rnnkit.training.distributed import World, current_world, setup_world
from rnnkit.training.pretrain_config import PretrainConfig
from rnnkit.training.rundir import RunDiverged, RunFolder, abandon, check_result
from rnnkit.training.ulmfit import Finetuning


def _log(message: str) -> None:
    if current_world().is_main:  # under torchrun, rank 0 speaks for all
        print(message, file=sys.stderr, flush=True)


def build_tokenizer(config: ClassifierDataConfig):
    return make_tokenizer(config.tokenizer, config.lowercase)


def build_vocabulary(train: list[Example], tokenizer, config: ClassifierDataConfig, use_glove: bool,
                     unlabeled: str = "") -> Vocabulary:
    """Training tokens (and those of ``unlabeled`` text) by min_freq and max_vocab, plus GloVe's most frequent words
    if asked for."""
    counts = Counter(t for e in train for t in tokenizer.tokenize(e.text))
    counts.update(tokenizer.tokenize(unlabeled) if unlabeled else ())
    vocab = Vocabulary.build(counts, min_freq=config.min_freq, max_size=config.max_vocab)
    if use_glove and config.glove_words:
        extra = [w for w in glove_words(config.glove_words) if w not in vocab]
        vocab = Vocabulary(vocab.tokens + extra)
    return vocab


def train_classifier(data: str | ClassifierDataConfig = "bbc-news", out_dir: str | Path = "runs/classifier",
                     model: ClassifierConfig | None = None, train: TrainConfig | None = None,
                     label_smoothing: float = 0.0, device: str = "cpu", autocast: str | None = None,
                     overwrite: bool = False, resume: bool = False, pretrain: PretrainConfig | None = None,
                     **data_options) -> tuple[Classifier, dict]:
    """Train, keep the best model by validation accuracy, report on test; return (classifier, summary).

    ``data`` is a bundled name, a path, or a full ``ClassifierDataConfig``; ``data_options``
    set its other fields (e.g. ``text_columns="title,description"``).

    The run is written to a staging folder beside ``out_dir`` and moved there when complete
    (see ``training.rundir``); an existing ``out_dir`` is refused unless ``overwrite``. ``resume``
    continues the interrupted run of ``out_dir`` (same settings) from its last training state.
    Raises ``RunInterrupted`` on SIGINT/SIGTERM (the state is saved) and ``RunDiverged`` on a
    non-finite loss (after publishing the best validated model, if there is one).

    Under torchrun every process calls this; ``train.batch_size`` is the global batch and rank 0 alone
    writes and reports (the other ranks return an empty summary). A run saved by N processes resumes
    with N processes.

    ``pretrain`` (``training.pretrain_config.PretrainConfig``): pre-train the encoder as a language model first
    (``pretrain_lm``), or start from a saved one (``encoder``); either way the classifier is then fine-tuned,
    ULMFiT-style if asked (discriminative rates, slanted triangular schedule, gradual unfreezing).
    """
    data_config = data if isinstance(data, ClassifierDataConfig) else ClassifierDataConfig(data=data, **data_options)
    model_config = model or ClassifierConfig()
    train_config = train or TrainConfig(**CLASSIFIER_TRAIN_DEFAULTS)
    pretrain = pretrain or PretrainConfig()
    # Pre-flight first (cheap, nothing joined yet), then the world: the order train_language_model uses too.
    check_classifier_run(data_config, model_config, out_dir, label_smoothing, pretrain)
    world = setup_world(device, autocast)
    if pretrain.pretrained and world.distributed:
        raise ValueError("pretrain_lm and encoder are not supported under torchrun yet (gradual unfreezing changes "
                         "which parameters train); run them in one process")
    settings = {"data": asdict(data_config), "model": asdict(model_config), "train": asdict(train_config),
                "label_smoothing": label_smoothing}
    if pretrain != PretrainConfig():  # absent otherwise, so runs saved before these options existed still resume
        settings["pretrain"] = asdict(pretrain)
    run = RunFolder(out_dir, overwrite=overwrite, resume=resume, command="rnnkit train").open_in(world, settings)
    try:
        return _train_classifier(run, data_config, model_config, train_config, label_smoothing, world, pretrain)
    except BaseException as error:
        abandon(run, error)
        raise


@dataclass
class _Inputs:
    """What the data steps hand the training steps: the texts encoded, and how the members split them."""

    splits: ClassificationSplits
    source: PretrainedEncoder | None  # --encoder's weights, vocabulary and tokenizer
    tokenizer: object
    use_glove: bool
    unlabeled: str  # --unlabeled text, for the vocabulary and pre-training
    vocab: Vocabulary
    train: EncodedDataset  # training examples (pooled with validation when cross-fitting)
    valid: EncodedDataset
    plan: list[tuple[EncodedDataset, EncodedDataset]]  # (training, early-stopping) data per member


@dataclass
class _Members:
    nets: list[RNNClassifier]
    results: list
    histories: list[dict]
    held_out: list[tuple[list[int], list[int]]]  # (truth, prediction) per member's held-out fold, cross-fitting
    diverged: str | None
    task: ClassificationTask  # the last member's: it scores the validation split for the report


def _train_classifier(run: RunFolder, data_config: ClassifierDataConfig, model_config: ClassifierConfig,
                      train_config: TrainConfig, label_smoothing: float, world: World,
                      pretrain: PretrainConfig) -> tuple[Classifier, dict]:
    """The run's steps: data, vocabulary, encoding, pre-training, members, report, publish."""
    start = time.monotonic()
    splits, source, tokenizer, use_glove, unlabeled = _read_data(run, data_config, model_config, pretrain,
                                                                 train_config.seed)
    vocab = _vocabulary(run, splits, source, tokenizer, data_config, model_config, use_glove, unlabeled)
    inputs, model_config = _encode(splits, source, tokenizer, use_glove, unlabeled, vocab, data_config, model_config,
                                   train_config.seed)
    encoder_state, pretraining = _pretrained_encoder(run, model_config, pretrain, train_config, splits.train,
                                                     unlabeled, tokenizer, vocab, source, use_glove, world)
    train_config = _finetuning_schedule(train_config, pretrain)
    members = _train_members(run, inputs, data_config, model_config, train_config, label_smoothing, world, pretrain,
                             encoder_state)
    classifier = _assemble(members, inputs, data_config, train_config, pretrain)
    train_seconds = time.monotonic() - start
    if not world.is_main:
        return classifier, {}
    report, summary = _report(classifier, members, inputs, model_config, train_seconds, pretraining)
    _publish(run, classifier, report, summary, members.histories)
    if members.diverged:
        raise RunDiverged(members.diverged)
    return classifier, summary


def _read_data(run: RunFolder, data_config: ClassifierDataConfig, model_config: ClassifierConfig,
               pretrain: PretrainConfig, seed: int):
    """(splits, encoder source, tokenizer, use GloVe?, unlabeled text): every file read, every label checked."""
    splits, skipped = load_classification_data(data_config, seed=seed)
    check_cross_fit(model_config, len(splits.train) + len(splits.valid), data_config.data)
    if skipped:
        _log(f"skipped {skipped} malformed records (on_error=skip)")
    for note in splits.notes:
        _log(note)
    source = load_encoder(pretrain.encoder, model_config) if pretrain.encoder else None
    tokenizer = source.tokenizer if source else build_tokenizer(data_config)
    # A pre-trained encoder brings its own embedding: GloVe would only be overwritten.
    use_glove = source is None and wants_glove(data_config.embeddings, model_config.embedding_dim,
                                               data_config.tokenizer)
    unlabeled = read_unlabeled(run, pretrain.unlabeled, tokenizer, pretrain.pretrain_max_time) \
        if pretrain.unlabeled else ""
    return splits, source, tokenizer, use_glove, unlabeled


def _pooled(splits: ClassificationSplits, model_config: ClassifierConfig) -> list[Example]:
    """The examples members train on: validation joins training when cross-fitting (each member holds a fold out)."""
    return splits.train + splits.valid if model_config.cross_fit else splits.train


def _vocabulary(run: RunFolder, splits: ClassificationSplits, source, tokenizer, data_config: ClassifierDataConfig,
                model_config: ClassifierConfig, use_glove: bool, unlabeled: str) -> Vocabulary:
    """The encoder's vocabulary, or one built from the training texts; its size checked against the model's."""
    vocab = source.vocab if source else build_vocabulary(_pooled(splits, model_config), tokenizer, data_config,
                                                         use_glove, unlabeled)
    if source:
        _log(f"encoder: {source.source.describe()}, its vocabulary ({len(vocab)}) and tokenizer kept")
    check_classifier_sizes(model_config, len(vocab), len(splits.labels), run.out)
    return vocab


def _encode(splits: ClassificationSplits, source, tokenizer, use_glove: bool, unlabeled: str, vocab: Vocabulary,
            data_config: ClassifierDataConfig, model_config: ClassifierConfig, seed: int
            ) -> tuple[_Inputs, ClassifierConfig]:
    """Texts to ids, the members' split of them, and the n-gram weighting ``auto`` resolves to."""
    labels = splits.labels
    train_data = EncodedDataset.from_examples(_pooled(splits, model_config), tokenizer, vocab, labels)
    valid_data = EncodedDataset.from_examples(splits.valid, tokenizer, vocab, labels)
    _log(f"data {splits.name}: {len(splits.train)} train / {len(splits.valid)} valid / {len(splits.test)} test, "
         f"{len(labels)} classes, vocabulary {len(vocab)}")
    plan = _member_data(train_data, valid_data, model_config, seed)
    if model_config.ngrams != "none" and model_config.ngram_weighting == "auto":
        weighting = auto_weighting([len(ids) for ids in train_data.ids], data_config.max_length)
        model_config = replace(model_config, ngram_weighting=weighting)
        _log(f"n-gram weighting: {weighting} (auto: idf when the median training text has >= "
             f"{AUTO_IDF_MEDIAN_TOKENS} tokens)")
    if model_config.cross_fit:
        _log(f"cross-fitting {len(plan)} members on {len(train_data)} pooled examples "
             f"({len(plan[0][0])} train / {len(plan[0][1])} held out each)")
    inputs = _Inputs(splits, source, tokenizer, use_glove, unlabeled, vocab, train_data, valid_data, plan)
    return inputs, model_config


def _finetuning_schedule(train_config: TrainConfig, pretrain: PretrainConfig) -> TrainConfig:
    if not pretrain.pretrained:
        return train_config
    train_config = replace(train_config, schedule=pretrain.finetune_schedule)
    _log(f"fine-tuning the pre-trained encoder: {train_config.schedule} schedule"
         + (f", learning rate / {pretrain.lr_decay} per layer group down" if pretrain.lr_decay != 1 else "")
         + (", gradual unfreezing" if pretrain.gradual_unfreezing else ""))
    return train_config


def _train_members(run: RunFolder, inputs: _Inputs, data_config: ClassifierDataConfig,
                   model_config: ClassifierConfig, train_config: TrainConfig, label_smoothing: float, world: World,
                   pretrain: PretrainConfig, encoder_state: dict | None) -> _Members:
    """Each member in turn (seed + i), resumed from its saved state when the run resumes."""
    members = _Members([], [], [], [], None, None)
    for i, (member_train, member_valid) in enumerate(inputs.plan):
        net, task, result = _train_member(run, i, member_train, member_valid, inputs, data_config, model_config,
                                          train_config, label_smoothing, world, pretrain, encoder_state)
        members.results.append(result)
        members.diverged = check_result(run, result) or members.diverged
        members.nets.append(net)
        members.histories.extend(result.history)
        members.task = task
        if model_config.cross_fit:
            members.held_out.append((member_valid.label_ids, task.predict_proba(net, member_valid).argmax(1).tolist()))
    return members


def _train_member(run: RunFolder, i: int, member_train: EncodedDataset, member_valid: EncodedDataset,
                  inputs: _Inputs, data_config: ClassifierDataConfig, model_config: ClassifierConfig,
                  train_config: TrainConfig, label_smoothing: float, world: World, pretrain: PretrainConfig,
                  encoder_state: dict | None):
    """(net, task, fit result) of member ``i``."""
    vocab, labels, several = inputs.vocab, inputs.splits.labels, len(inputs.plan) > 1
    # Member i trains with seed + i; its own log and best weights live in member-i/ when there are several.
    seed = train_config.seed + i
    member_config = replace(train_config, seed=seed)
    member_dir = run.path / f"member-{i}" if several else run.path
    torch.manual_seed(seed)
    net = RNNClassifier(model_config, len(vocab), len(labels), vocab.pad_id)
    if net.ngrams is not None and net.ngrams.idf is not None:
        # From this member's training texts only, cut as the model reads them; saved with the weights.
        net.ngrams.fit_idf(member_train.ids, data_config.max_length)
    if inputs.use_glove:
        known = init_embedding_from_glove(net.encoder.embedding, vocab.tokens, set(vocab.special_ids))
        net.encoder.frozen_rows.copy_(known)
        _log(f"embeddings: GloVe 6B 50d for {int(known.sum())} of {len(vocab)} tokens"
             + (" (kept fixed)" if model_config.freeze_pretrained else ""))
    if encoder_state is not None:
        net.encoder.load_state_dict(encoder_state)
    net.to(world.device)
    finetune = Finetuning(net, pretrain, train_config.lr, train_config.weight_decay) if pretrain.pretrained \
        else None
    task = ClassificationTask(member_train, member_valid, labels, train_config.batch_size, data_config.max_length,
                              seed=seed, pad_id=vocab.pad_id, label_smoothing=label_smoothing, world=world,
                              epoch_hook=finetune.on_epoch_start if finetune else None,
                              aux_loss=model_config.ngram_aux_loss if model_config.ngrams == "logits" else 0.0)
    single = Classifier(net, inputs.tokenizer, vocab, labels, data_config.max_length)
    save = None if several else (lambda _, c=single, d=member_dir: c.save(d / "model"))
    state_path = run.state_path(f"member-{i}" if several else None)
    trainer = Trainer(net, task, member_config, member_dir, save_best=save, state_path=state_path, world=world,
                      param_groups=finetune.param_groups if finetune else None)
    if run.resume and state_path.is_file():
        trainer.load_state(state_path)
    result = trainer.fit()
    if finetune:
        finetune.release()
    return net, task, result


def _assemble(members: _Members, inputs: _Inputs, data_config: ClassifierDataConfig, train_config: TrainConfig,
              pretrain: PretrainConfig) -> Classifier:
    """One member, or the ensemble of all, as the saved object with the settings that made it."""
    net = members.nets[0] if len(members.nets) == 1 else EnsembleClassifier(members.nets).eval()
    embeddings = "encoder" if inputs.source else "glove" if inputs.use_glove else "random"
    return Classifier(net, inputs.tokenizer, inputs.vocab, inputs.splits.labels, data_config.max_length,
                      {"data_config": asdict(data_config), "train_config": asdict(train_config),
                       "embeddings": embeddings,
                       **({"pretrain_config": asdict(pretrain)} if pretrain.pretrained else {})})


def _report(classifier: Classifier, members: _Members, inputs: _Inputs, model_config: ClassifierConfig,
            train_seconds: float, pretraining: dict) -> tuple[dict, dict]:
    """(the validation and test reports, the run's summary), the summary also kept in the model's metrics."""
    labels, results = inputs.splits.labels, members.results
    if model_config.cross_fit:
        # The ensemble has seen the validation split: report each member on the fold it never trained on.
        y_true = [y for truth, _ in members.held_out for y in truth]
        y_pred = [y for _, predicted in members.held_out for y in predicted]
        report = {"valid": {**classification_report(y_true, y_pred, labels), "out_of_fold": True}}
    else:
        report = {"valid": members.task.report(classifier.model, inputs.valid)}
    if inputs.splits.test:
        report["test"] = classifier.evaluate(inputs.splits.test)
    summary = {"best_epoch": [r.best_epoch for r in results] if len(results) > 1 else results[0].best_epoch,
               "stopped": results[0].reason, "train_seconds": round(train_seconds, 1),
               "valid_accuracy": report["valid"]["accuracy"],
               "test_accuracy": report["test"]["accuracy"] if "test" in report else None,
               "train_tokens_per_s": _mean_rate(members.histories)}
    if pretraining:
        summary["pretraining"] = pretraining
    classifier.meta.update(metrics=summary)
    return report, summary


def _publish(run: RunFolder, classifier: Classifier, report: dict, summary: dict, histories: list[dict]) -> None:
    """The model and its report into the staging folder, then the folder moved to ``out_dir``."""
    classifier.save(run.path / "model")
    final = report.get("test", report["valid"])
    write_report(run.path / "report", {**final, "split": "test" if "test" in report else "valid",
                                       "summary": summary, "valid": report["valid"]}, histories)
    _log(format_report(final))
    run.publish()
    _log(f"saved {run.out / 'model'}; report in {run.out / 'report'}")


def _pretrained_encoder(run: RunFolder, model_config: ClassifierConfig, pretrain: PretrainConfig,
                        train_config: TrainConfig, texts: list[Example], unlabeled: str, tokenizer, vocab: Vocabulary,
                        source, use_glove: bool, world: World) -> tuple[dict | None, dict]:
    """(the encoder weights every member starts from, or None for a fresh one; the pre-training figures)."""
    if not pretrain.pretrained:
        return None, {}
    torch.manual_seed(train_config.seed)
    encoder = Encoder(model_config, len(vocab), vocab.pad_id)
    if source is not None:
        source.load_into(encoder)
    elif use_glove:
        init_embedding_from_glove(encoder.embedding, vocab.tokens, set(vocab.special_ids))
    encoder.to(world.device)
    figures = pretrain_encoder(run, encoder, pretrain, train_config, texts, unlabeled, tokenizer, vocab, world) \
        if pretrain.pretrain_lm else {}
    return {k: v.detach().clone() for k, v in encoder.state_dict().items()}, figures


def _member_data(train: EncodedDataset, valid: EncodedDataset, config: ClassifierConfig, seed: int
                 ) -> list[tuple[EncodedDataset, EncodedDataset]]:
    """(training data, early-stopping data) per ensemble member.

    Plain ensembles share one split. Cross-fitting gets ``train`` = training + validation examples pooled and
    cuts it into ``config.ensemble`` stratified folds: member i stops early on fold i and trains on the rest.
    """
    if not config.cross_fit:
        return [(train, valid)] * config.ensemble
    folds = stratified_folds(train.label_ids, config.ensemble, seed)
    everything = set(range(len(train)))
    return [(train.subset(sorted(everything - set(fold))), train.subset(fold)) for fold in folds]


def _mean_rate(history: list[dict]) -> float | None:
    rates = [h.get("tokens_per_s") for h in history if h.get("tokens_per_s")]
    return round(float(np.mean(rates)), 1) if rates else None


__all__ = ["Classifier", "train_classifier"]
