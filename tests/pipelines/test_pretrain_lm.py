"""``--pretrain-lm`` and ``--encoder`` end to end on tiny data: the saved encoder, its reuse on another task, the
checks that refuse an encoder that does not fit, the CLI, and resuming after (or during) pre-training."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch
from safetensors.torch import load_file

from rnnkit.api.classifier import Classifier, train_classifier
from rnnkit.api.language_model import train_language_model
from rnnkit.cli.main import main
from rnnkit.data import DataError
from rnnkit.data.config import ClassifierDataConfig
from rnnkit.models.classifier import RNNClassifier
from rnnkit.models.config import ClassifierConfig, LanguageModelConfig
from rnnkit.pipelines.encoders import load_encoder
from rnnkit.tasks.language_model import LanguageModelTask
from rnnkit.training import TrainConfig
from rnnkit.training.pretrain_config import ULMFIT, PretrainConfig
from rnnkit.training.rundir import RunInterrupted
from tests.pipelines.conftest import make_texts
from tests.robustness.run_data import signal_during_step

SMALL = ClassifierConfig(embedding_dim=8, hidden_size=8, bidirectional=True)
# ULMFiT's fine-tuning here (gradual unfreezing makes resuming harder); the CLI test runs the default one.
PRE = PretrainConfig(pretrain_lm=True, pretrain_epochs=2, pretrain_batch_size=8, pretrain_bptt=16, pretrain_lr=2e-2,
                     **ULMFIT)
TRAIN = TrainConfig(epochs=3, batch_size=16, lr=1e-2, progress=False)


def _data(tiny_csv, **kw) -> ClassifierDataConfig:
    return ClassifierDataConfig(data=str(tiny_csv["train"]), valid_data=str(tiny_csv["valid"]), min_freq=1,
                                embeddings="random", **kw)


def _run(tiny_csv, out, pretrain=PRE, model=SMALL, train=TRAIN, **kw):
    return train_classifier(_data(tiny_csv), out, model=model, train=train, pretrain=pretrain, **kw)


def _weights(folder, prefix=""):
    return {k[len(prefix):]: v for k, v in load_file(folder / "model.safetensors").items() if k.startswith(prefix)}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """One run with pre-training, shared by the tests that only read it: (csvs, run folder, classifier, summary)."""
    folder = tmp_path_factory.mktemp("pretrained")
    csvs = {}
    for name, n, seed in (("train", 240, 0), ("valid", 60, 1)):
        csvs[name] = folder / f"{name}.csv"
        csvs[name].write_text("label,text\n" + "\n".join(f"{l},{t}" for l, t in make_texts(n, seed)) + "\n")
    clf, summary = _run(csvs, folder / "run")
    return csvs, folder / "run", clf, summary


def test_pretraining_saves_a_reusable_encoder_and_reports_its_perplexity(pretrained):
    _, run, clf, summary = pretrained
    meta = json.loads((run / "encoder" / "config.json").read_text())
    assert meta["kind"] == "encoder" and meta["directions"] == ["forward", "backward"]
    assert meta["vocab"] == clf.vocab.to_dict()  # one vocabulary, built before pre-training, shared
    for direction in ("forward", "backward"):
        figures = summary["pretraining"][direction]
        assert figures["valid_perplexity"] < 0.8 * len(clf.vocab), figures  # below uniform (random filler words)
        log = [json.loads(line) for line in (run / "pretrain" / direction / "log.jsonl").open()]
        assert len(log) == 2 and log[-1]["valid_perplexity"] < log[0]["valid_perplexity"]
    assert summary["valid_accuracy"] > 0.5  # chance is 1/3
    assert not (run / "resume").exists()  # the training states go when the run is published


def test_encoder_round_trip_into_a_new_classifier_on_another_task(pretrained, tmp_path):
    _, run, _, _ = pretrained
    saved = _weights(run / "encoder", "encoder.")
    # Another task: two labels only, other texts.
    rows = [(label, text) for label, text in make_texts(200, 9) if label != "money"]
    other = tmp_path / "other.csv"
    other.write_text("label,text\n" + "\n".join(f"{l},{t}" for l, t in rows) + "\n")
    source = load_encoder(run, SMALL)
    net = RNNClassifier(SMALL, len(source.vocab), 2)
    source.load_into(net.encoder)
    for key, value in saved.items():
        assert torch.equal(net.encoder.state_dict()[key], value), key
    # One epoch of fine-tuning with gradual unfreezing trains the classifier layer alone: the encoder saved with the
    # new model is exactly the pre-trained one, its vocabulary too (the new task's own words are not added).
    clf, _ = train_classifier(ClassifierDataConfig(data=str(other), embeddings="random"), tmp_path / "second",
                              model=SMALL, train=TrainConfig(epochs=1, batch_size=16, progress=False),
                              pretrain=PretrainConfig(encoder=str(run), **ULMFIT))
    assert clf.labels == ["sport", "tech"]
    assert clf.vocab.to_dict() == source.vocab.to_dict()
    reloaded = Classifier.load(tmp_path / "second")
    for key, value in saved.items():
        assert torch.equal(reloaded.model.encoder.state_dict()[key], value), key


@pytest.mark.parametrize("field, value", [("hidden_size", 12), ("cell", "lstm"), ("bidirectional", False),
                                          ("embedding_dim", 10)])
def test_an_encoder_of_other_sizes_is_refused_before_anything_is_written(pretrained, tmp_path, field, value):
    csvs, run, _, _ = pretrained
    model = ClassifierConfig(**{**SMALL.__dict__, field: value})
    with pytest.raises(ValueError, match=rf"its {field} is .* but this classifier's is {value!r}"):
        _run(csvs, tmp_path / "new", pretrain=PretrainConfig(encoder=str(run)), model=model)
    assert not (tmp_path / "new").exists()


def test_a_word_language_model_is_an_encoder_and_a_character_one_is_refused(tiny_csv, tmp_path):
    text = tmp_path / "corpus.txt"
    text.write_text("\n".join(t for _, t in make_texts(300, 4)))
    lm_config = LanguageModelConfig(embedding_dim=8, hidden_size=8, num_layers=1, dropout=0.0)
    lm_train = TrainConfig(epochs=1, batch_size=4, max_steps=5, progress=False, warmup=0.0)
    train_language_model(str(text), tmp_path / "word", model=lm_config, train=lm_train, tokenizer="word", bptt=16)
    train_language_model(str(text), tmp_path / "char", model=lm_config, train=lm_train, tokenizer="char", bptt=16)
    with pytest.raises(ValueError, match="character-level language model.*--tokenizer word"):
        _run(tiny_csv, tmp_path / "c", pretrain=PretrainConfig(encoder=str(tmp_path / "char")))
    source = load_encoder(tmp_path / "word", SMALL)
    assert source.source.directions == ("forward",)
    net = RNNClassifier(SMALL, len(source.vocab), 3)
    backward_before = net.encoder.rnn.weight_hh_l0_reverse.detach().clone()
    source.load_into(net.encoder)
    lm = _weights(tmp_path / "word" / "model")
    assert torch.equal(net.encoder.embedding.weight, lm["embedding.weight"])
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        assert torch.equal(getattr(net.encoder.rnn, f"{name}_l0"), lm[f"layers.0.{name}_l0"])
    assert torch.equal(net.encoder.rnn.weight_hh_l0_reverse, backward_before)  # the LM has no backward direction
    # Pre-training on the task then continues from it (ULMFiT's second stage), both directions.
    _, summary = _run(tiny_csv, tmp_path / "from-lm", pretrain=PretrainConfig(**{**PRE.__dict__,
                                                                                "encoder": str(tmp_path / "word")}))
    assert set(summary["pretraining"]) == {"forward", "backward"}
    # A deeper LM cannot feed a deep bidirectional classifier: its upper layers read one direction only.
    with pytest.raises(ValueError, match="num_layers"):
        load_encoder(tmp_path / "word", ClassifierConfig(**{**SMALL.__dict__, "num_layers": 2}))


def test_preflight_names_bad_pretraining_options(tiny_csv, tmp_path):
    missing = tmp_path / "nowhere.txt"
    with pytest.raises(DataError, match="nowhere.txt.*unlabeled"):
        _run(tiny_csv, tmp_path / "a", pretrain=PretrainConfig(pretrain_lm=True, unlabeled=str(missing)))
    with pytest.raises(DataError, match="nowhere.txt.*encoder"):
        _run(tiny_csv, tmp_path / "a", pretrain=PretrainConfig(encoder=str(missing)))
    with pytest.raises(ValueError, match="num_layers=1 or --no-bidirectional"):
        _run(tiny_csv, tmp_path / "a", model=ClassifierConfig(**{**SMALL.__dict__, "num_layers": 2}))
    with pytest.raises(ValueError, match="add --pretrain-lm"):
        PretrainConfig(unlabeled=str(tiny_csv["train"]))
    with pytest.raises(ValueError, match="tokenizer=word"):
        train_classifier(_data(tiny_csv, tokenizer="char"), tmp_path / "a", model=SMALL, train=TRAIN, pretrain=PRE)
    assert not (tmp_path / "a").exists()


def test_cli_train_pretrain_lm_on_a_folder_data_set_with_unlabeled_text(tmp_path, capsys):
    data = tmp_path / "docs"
    for i, (label, text) in enumerate(make_texts(120, 5)):
        (data / label).mkdir(parents=True, exist_ok=True)
        (data / label / f"{i}.txt").write_text(text)
    unlabeled = tmp_path / "more"
    unlabeled.mkdir()
    (unlabeled / "a.txt").write_text("\n".join(t for _, t in make_texts(100, 6)) + "\nzyzzyva zyzzyva")
    code = main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--embedding-dim", "8",
                 "--hidden-size", "8", "--embeddings", "random", "--min-freq", "1", "--epochs", "2",
                 "--no-progress", "--pretrain-lm", "--unlabeled", str(unlabeled), "--pretrain-epochs", "1",
                 "--pretrain-batch-size", "4", "--pretrain-bptt", "16"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(summary["pretraining"]) == {"forward", "backward"}
    clf = Classifier.load(tmp_path / "run")
    assert "zyzzyva" in clf.vocab.tokens  # the unlabeled text's words join the vocabulary (min_freq 1)
    assert (tmp_path / "run" / "encoder" / "model.safetensors").is_file()
    assert clf.predict(["the coach and the striker"])[0][0][0] in clf.labels


def _signal_during_lm_step(monkeypatch, call: int) -> None:
    step, calls = LanguageModelTask.train_step, []

    def signalling(self, model, batch):
        calls.append(1)
        if len(calls) == call:
            os.kill(os.getpid(), signal.SIGTERM)
        return step(self, model, batch)

    monkeypatch.setattr(LanguageModelTask, "train_step", signalling)


@pytest.mark.parametrize("when", ["fine-tuning", "backward pre-training"])
def test_a_run_interrupted_after_or_during_pretraining_resumes_to_the_same_model(tiny_csv, tmp_path, monkeypatch,
                                                                                 capsys, when):
    torch.set_num_threads(1)  # the same float sums in every run
    _run(tiny_csv, tmp_path / "whole")
    with monkeypatch.context() as patch:
        if when == "fine-tuning":
            signal_during_step(patch, call=20)
        else:
            log = (tmp_path / "whole" / "pretrain" / "forward" / "log.jsonl").read_text().splitlines()
            forward_steps = json.loads(log[-1])["step"]
            _signal_during_lm_step(patch, call=forward_steps + 5)  # a few steps into the backward direction
        with pytest.raises(RunInterrupted, match="--resume"):
            _run(tiny_csv, tmp_path / "cut")
    capsys.readouterr()
    _run(tiny_csv, tmp_path / "cut", resume=True)
    err = capsys.readouterr().err
    if when == "fine-tuning":
        assert "resumed with forward, backward done" in err and "pre-training forward:" not in err
    else:
        assert "resumed with forward done" in err and "pre-training forward:" not in err
        assert "pre-training backward:" in err
    for folder in ("model", "encoder"):
        whole, cut = _weights(tmp_path / "whole" / folder), _weights(tmp_path / "cut" / folder)
        assert whole.keys() == cut.keys()
        for key in whole:
            assert torch.equal(whole[key], cut[key]), (folder, key)
