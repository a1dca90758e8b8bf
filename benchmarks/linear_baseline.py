"""The linear baseline every classifier benchmark here is compared with: TF-IDF + linear SVM.

Word 1-2 grams, sublinear tf, min_df 2 (fitted on the training split only), LinearSVC with C chosen on the
validation split; the test split is scored once, with that C. Imported by classify_bbc.py and
classify_other.py (scikit-learn comes with the dev extra).
"""

from __future__ import annotations

C_GRID = (0.1, 0.3, 1.0, 3.0)


def svm_baseline(parts: dict[str, list[tuple[str, str]]], with_test: bool = True) -> dict:
    """parts: {"train"|"valid"|"test": [(text, label), ...]} → {"C", "valid", "test"} (test None if not asked)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    texts = {k: [t for t, _ in v] for k, v in parts.items()}
    labels = {k: [y for _, y in v] for k, v in parts.items()}
    train = vec.fit_transform(texts["train"])
    valid = vec.transform(texts["valid"])
    best = None
    for c in C_GRID:
        model = LinearSVC(C=c).fit(train, labels["train"])
        acc = model.score(valid, labels["valid"])
        if best is None or acc > best[0]:  # ties keep the smaller C (the grid is ascending)
            best = (acc, c, model)
    test = None
    if with_test and parts.get("test"):
        test = float(best[2].score(vec.transform(texts["test"]), labels["test"]))
    return {"C": best[1], "valid": float(best[0]), "test": test}


def compare(ours: float, theirs: float, n: int) -> str:
    """'win', 'tie' or 'loss' of accuracy ``ours`` against ``theirs`` on ``n`` examples.

    A tie is the same number of correct examples (accuracies within half an example of each other).
    """
    diff = round((ours - theirs) * n)
    return "tie" if diff == 0 else "win" if diff > 0 else "loss"


def summary_row(outcomes: list[str]) -> str:
    return f"wins/ties/losses against TF-IDF+SVM: {outcomes.count('win')}/{outcomes.count('tie')}/" \
           f"{outcomes.count('loss')}"
