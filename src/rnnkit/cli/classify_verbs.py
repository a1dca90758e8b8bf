"""CLI verbs for classification: train, eval, predict, datasets."""

from __future__ import annotations

import argparse
import json
import sys

from rnnkit.cli.export_verbs import add_inference_runtime_argument, load_for_runtime
from rnnkit.cli.options import add_dataclass_arguments, dataclass_from_args
from rnnkit.cli.run_flags import add_run_flags, report_stopped, run_settings
from rnnkit.cli.runtime import add_device_arguments, runtime_options
from rnnkit.data.config import ClassifierDataConfig
from rnnkit.models.config import ClassifierConfig
from rnnkit.saved.kinds import CLASSIFIER
from rnnkit.training.config import TrainConfig
from rnnkit.training.defaults import CLASSIFIER_TRAIN_DEFAULTS
from rnnkit.training.pretrain_config import PretrainConfig

PRESETS = {
    # The lesson's notebook: Embedding 64 -> LSTM 32 -> Linear on the final state, batch 16, Adam 1e-3.
    "lesson": (dict(cell="lstm", embedding_dim=64, hidden_size=32, num_layers=1, bidirectional=False,
                    pooling="last", dropout=0.0, embedding_dropout=0.0),
               dict(batch_size=16, lr=1e-3, weight_decay=0.0, warmup=0.0, schedule="constant", clip_norm=None,
                    epochs=5, patience=None),
               dict(embeddings="random", max_length=None, min_freq=1)),
}


TRAIN_SECTIONS = {"data": ClassifierDataConfig, "model": ClassifierConfig, "train": TrainConfig,
                  "pretrain": PretrainConfig}


def register(verbs, preset: str | None = None) -> None:
    model_over, train_over, data_over = PRESETS.get(preset, ({}, {}, {}))
    train = verbs.add_parser("train", help="train a text classifier (default: bundled BBC News)",
                             description="Train a text classifier, keep the best model by validation accuracy, "
                                         "and report on the test split.")
    train.add_argument("--out", default="runs/classifier", help="run folder: model/, report/, log.jsonl")
    train.add_argument("--preset", dest="model_preset", choices=sorted(PRESETS),
                       help="a named set of model/training/data options (lesson: the lesson's notebook model); "
                            "explicit options still win")
    train.add_argument("--label-smoothing", type=float, default=0.0, help="label smoothing of the loss")
    add_dataclass_arguments(train, ClassifierDataConfig, title="data", defaults=data_over)
    add_dataclass_arguments(train, ClassifierConfig, title="model", defaults=model_over)
    add_dataclass_arguments(train, TrainConfig, title="training", defaults={**CLASSIFIER_TRAIN_DEFAULTS, **train_over})
    add_dataclass_arguments(train, PretrainConfig, title="pre-training (ULMFiT)")
    add_run_flags(train, TRAIN_SECTIONS, ("label_smoothing",))
    add_device_arguments(train)
    train.set_defaults(run=run_train)

    ev = verbs.add_parser("eval", help="evaluate a model on a labelled file, or a language model on a text file",
                          description="Accuracy, macro-F1, per-class precision/recall and the confusion matrix "
                                      "of a classifier; bits per character of a language model.")
    ev.add_argument("model", help="a saved model folder (or a run folder holding model/)")
    ev.add_argument("data", help="labelled data in any supported format, or a text file for a language model")
    ev.add_argument("--json", action="store_true", help="print the metrics as JSON")
    ev.add_argument("--report", help="also write metrics.json, report.txt and the confusion-matrix PNG here")
    add_dataclass_arguments(ev, ClassifierDataConfig, title="data format",
                            skip=("data", "valid_data", "test_data", "valid_fraction", "tokenizer", "lowercase",
                                  "min_freq", "max_vocab", "max_length", "embeddings"))
    add_inference_runtime_argument(ev)
    ev.set_defaults(run=run_eval)

    pr = verbs.add_parser("predict", help="classify texts given as arguments or one per line on stdin",
                          description="Print the top-k labels and probabilities for each text.")
    pr.add_argument("model", help="a saved model folder (or a run folder holding model/)")
    pr.add_argument("texts", nargs="*", help="texts to classify; '-' or none reads one text per line from stdin")
    pr.add_argument("--top-k", type=int, default=1, help="how many labels to show per text (default: 1)")
    pr.add_argument("--json", action="store_true", help="one JSON object per text")
    add_inference_runtime_argument(pr)
    pr.set_defaults(run=run_predict)

    ds = verbs.add_parser("datasets", help="list the bundled data sets with their sizes")
    ds.set_defaults(run=run_datasets)


def run_train(args: argparse.Namespace) -> int:
    from rnnkit.api.classifier import train_classifier
    from rnnkit.training.rundir import RunStopped

    out, configs, scalars = run_settings(args, TRAIN_SECTIONS, ("label_smoothing",))
    try:
        _, summary = train_classifier(configs["data"], out, model=configs["model"], train=configs["train"],
                                      label_smoothing=scalars["label_smoothing"], overwrite=args.overwrite,
                                      resume=args.resume is not None, pretrain=configs["pretrain"],
                                      **runtime_options(args))
    except RunStopped as stopped:
        return report_stopped("train", stopped)
    if summary:  # under torchrun only rank 0 has one
        print(json.dumps(summary))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from rnnkit.api.language_model import LanguageModel
    from rnnkit.evaluation import format_report, write_report
    from rnnkit.pipelines.preflight import check_eval_run

    # Checked before the model is loaded (which can take a while): a wrong data path costs a second. A text
    # for a language model passes the same checks as format=auto.
    data = dataclass_from_args(ClassifierDataConfig, args, data=args.data)
    check_eval_run(args.data, args.report, data.format)
    predictor = load_for_runtime(args.model, args.runtime)
    if isinstance(predictor, LanguageModel):
        from rnnkit.cli.lm_verbs import eval_language_model

        return eval_language_model(args, predictor)
    report = predictor.evaluate_file(args.data, data)
    if args.report:
        write_report(args.report, report)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def run_predict(args: argparse.Namespace) -> int:
    texts = args.texts
    if args.top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {args.top_k}")
    if not texts or texts == ["-"]:
        try:
            texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
        except UnicodeDecodeError as err:
            raise ValueError(f"standard input is not UTF-8 text ({err.reason} at byte {err.start})") from err
    if not texts:
        raise ValueError("no text to classify: give texts as arguments or one per line on stdin")
    classifier = load_for_runtime(args.model, args.runtime, CLASSIFIER)
    for text, top in zip(texts, classifier.predict(texts, top_k=args.top_k), strict=True):
        if args.json:
            print(json.dumps({"text": text, "labels": [{"label": l, "probability": round(p, 6)} for l, p in top]}))
        else:
            print("\t".join(f"{l} {p:.3f}" for l, p in top) + "\t" + text)
    return 0


def run_datasets(args: argparse.Namespace) -> int:
    from rnnkit.data import list_bundled

    print(f"{'name':14} {'kind':15} {'train':>10} {'valid':>9} {'test':>9}  unit / description")
    for entry in list_bundled():
        s = entry["sizes"]
        print(f"{entry['name']:14} {entry['kind']:15} {s['train']:>10} {s['valid']:>9} {s['test']:>9}  "
              f"{entry['unit']}; {entry['description']}")
    return 0
