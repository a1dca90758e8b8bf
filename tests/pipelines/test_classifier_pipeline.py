"""Classification end to end on a small generated data set: train → save → load → predict, seeds, CLI."""

import json
import subprocess
import sys

import numpy as np
import pytest

from rnnkit.api.classifier import Classifier, train_classifier
from rnnkit.data import DataError, read_examples
from rnnkit.data.config import ClassifierDataConfig
from rnnkit.models.config import ClassifierConfig
from rnnkit.training import TrainConfig

SMALL = ClassifierConfig(cell="gru", embedding_dim=16, hidden_size=16, bidirectional=True)


def _train(tiny_csv, out, seed=0, epochs=6):
    data = ClassifierDataConfig(data=str(tiny_csv["train"]), valid_data=str(tiny_csv["valid"]),
                                test_data=str(tiny_csv["test"]), min_freq=1, embeddings="random")
    return train_classifier(data, out, model=SMALL,
                            train=TrainConfig(epochs=epochs, batch_size=16, lr=1e-2, seed=seed, progress=False))


def test_train_save_load_predict(tiny_csv, tmp_path):
    clf, summary = _train(tiny_csv, tmp_path / "run")
    assert summary["test_accuracy"] > 0.8  # chance is 1/3
    for name in ("model/model.safetensors", "model/config.json", "log.jsonl", "report/metrics.json",
                 "report/confusion_matrix.png", "report/training_curves.png"):
        assert (tmp_path / "run" / name).exists(), name
    loaded = Classifier.load(tmp_path / "run")
    texts = ["the striker and the coach", "bank profit and market shares"]
    np.testing.assert_allclose(loaded.predict_proba(texts), clf.predict_proba(texts), atol=1e-6)
    top = loaded.predict(texts, top_k=2)
    assert [t[0][0] for t in top] == ["sport", "money"]
    assert len(top[0]) == 2 and top[0][0][1] >= top[0][1][1]


def test_same_seed_same_metrics(tiny_csv, tmp_path):
    _, a = _train(tiny_csv, tmp_path / "a", seed=3, epochs=2)
    _, b = _train(tiny_csv, tmp_path / "b", seed=3, epochs=2)
    logs = [(tmp_path / r / "log.jsonl").read_text().splitlines() for r in ("a", "b")]
    strip = [[{k: v for k, v in json.loads(line).items() if k not in ("elapsed", "tokens_per_s")} for line in log]
             for log in logs]
    assert strip[0] == strip[1]
    assert a["test_accuracy"] == b["test_accuracy"]


def test_padding_does_not_change_predictions(tiny_csv, tmp_path):
    clf, _ = _train(tiny_csv, tmp_path / "run", epochs=1)
    texts = ["goal", "the team won the league match after a long season with the coach and the striker"]
    together = clf.predict_proba(texts)  # batched together: the short text is padded
    alone = np.vstack([clf.predict_proba([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-6)


def test_unseen_label_at_evaluation_names_file_and_line(tiny_csv, tmp_path):
    clf, _ = _train(tiny_csv, tmp_path / "run", epochs=1)
    bad = tmp_path / "bad.csv"
    bad.write_text("label,text\nsport,the goal\nweather,rain today\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.csv.*line 3.*label"):
        clf.evaluate_file(str(bad))


def _cli(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "rnnkit", *map(str, args)], capture_output=True, text=True,
                          input=stdin, timeout=300)


def test_cli_train_predict_eval(tiny_csv, tmp_path):
    out = tmp_path / "cli"
    r = _cli("train", "--data", tiny_csv["train"], "--valid-data", tiny_csv["valid"], "--min-freq", 1,
             "--embeddings", "random", "--embedding-dim", 16, "--hidden-size", 16, "--epochs", 3, "--lr", 0.01,
             "--batch-size", 16, "--out", out, "--no-progress")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["valid_accuracy"] > 0.6
    r = _cli("predict", out, "the goal and the team", "--top-k", 2, "--json")
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)
    assert row["text"] == "the goal and the team" and len(row["labels"]) == 2
    r = _cli("predict", out, "-", stdin="bank rates\nnew chip\n")
    assert r.returncode == 0 and len(r.stdout.strip().splitlines()) == 2
    r = _cli("eval", out, tiny_csv["test"], "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["accuracy"] > 0.5


def test_cli_bad_input_is_one_clear_line(tmp_path):
    bad = tmp_path / "ragged.csv"
    bad.write_text("label,text\nsport,fine\nsport\n", encoding="utf-8")
    r = _cli("train", "--data", bad, "--epochs", 1, "--out", tmp_path / "x")
    assert r.returncode == 2
    assert "ragged.csv" in r.stderr and "line 3" in r.stderr and "Traceback" not in r.stderr
    r = _cli("train", "--hidden-size", 0, "--out", tmp_path / "y")
    assert r.returncode == 2 and "hidden_size must be a positive integer, got 0" in r.stderr
    r = _cli("predict", tmp_path / "missing-model", "hello")
    assert r.returncode == 2 and "missing-model" in r.stderr


def test_cli_help_lists_every_verb():
    r = _cli("--help")
    for verb in ("train", "eval", "predict", "datasets", "train-lm", "generate"):
        assert verb in r.stdout
    r = _cli("train", "--help")
    for flag in ("--cell", "--pooling", "--max-length", "--patience", "--preset", "--text-columns"):
        assert flag in r.stdout


def test_ensemble_averages_member_probabilities_and_round_trips(tiny_csv, tmp_path):
    data = ClassifierDataConfig(data=str(tiny_csv["train"]), valid_data=str(tiny_csv["valid"]), min_freq=1,
                                embeddings="random")
    config = ClassifierConfig(cell="gru", embedding_dim=16, hidden_size=16, ensemble=2)
    clf, summary = train_classifier(data, tmp_path / "ens", model=config,
                                    train=TrainConfig(epochs=2, batch_size=16, lr=1e-2, progress=False))
    texts = ["the goal and the coach", "bank shares"]
    members = clf.model.members
    assert len(members) == 2
    singles = [Classifier(m, clf.tokenizer, clf.vocab, clf.labels, clf.max_length).predict_proba(texts)
               for m in members]
    np.testing.assert_allclose(clf.predict_proba(texts), (singles[0] + singles[1]) / 2, atol=1e-6)
    assert not np.allclose(singles[0], singles[1])  # different seeds, different members
    loaded = Classifier.load(tmp_path / "ens")
    np.testing.assert_allclose(loaded.predict_proba(texts), clf.predict_proba(texts), atol=1e-6)
    assert (tmp_path / "ens" / "member-1" / "log.jsonl").exists()


def test_cross_fit_trains_one_member_per_fold_and_reports_out_of_fold(tiny_csv, tmp_path):
    data = ClassifierDataConfig(data=str(tiny_csv["train"]), valid_data=str(tiny_csv["valid"]), min_freq=1,
                                embeddings="random")
    config = ClassifierConfig(cell="gru", embedding_dim=16, hidden_size=16, ensemble=3, cross_fit=True)
    clf, summary = train_classifier(data, tmp_path / "cf", model=config,
                                    train=TrainConfig(epochs=2, batch_size=16, lr=1e-2, progress=False))
    assert len(clf.model.members) == 3
    metrics = json.loads((tmp_path / "cf" / "report" / "metrics.json").read_text())
    pooled = len(read_examples(str(tiny_csv["train"])).examples) + len(read_examples(str(tiny_csv["valid"])).examples)
    # Out-of-fold: every pooled example is predicted once, by the member that never trained on it.
    assert metrics["valid"]["out_of_fold"] is True
    assert int(np.sum(metrics["valid"]["confusion_matrix"])) == pooled
    for i in range(3):
        log = [json.loads(line) for line in (tmp_path / "cf" / f"member-{i}" / "log.jsonl").read_text().splitlines()]
        assert log and "valid_accuracy" in log[-1]
    loaded = Classifier.load(tmp_path / "cf")
    assert loaded.model.config.cross_fit and loaded.model.config.ensemble == 3


def test_cross_fit_needs_an_ensemble():
    with pytest.raises(ValueError, match="cross_fit needs ensemble >= 2"):
        ClassifierConfig(ensemble=1, cross_fit=True)
