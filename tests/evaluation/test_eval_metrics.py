import json
import math

import numpy as np
import pytest

from rnnkit.evaluation import (
    bits_per_token,
    classification_report,
    confusion_matrix,
    format_report,
    language_model_report,
    perplexity,
)

Y_TRUE = [0, 0, 1, 1, 2, 2, 2]
Y_PRED = [0, 1, 1, 1, 2, 0, 2]
LABELS = ["a", "b", "cat"]


def test_against_hand_computed_values():
    report = classification_report(Y_TRUE, Y_PRED, LABELS)
    assert report["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
    assert report["accuracy"] == pytest.approx(5 / 7)
    expected = {
        "a": (1 / 2, 1 / 2, 1 / 2, 2),
        "b": (2 / 3, 1.0, 0.8, 2),  # f1 = 2 * (2/3) * 1 / (2/3 + 1)
        "cat": (1.0, 2 / 3, 0.8, 3),
    }
    for label, (precision, recall, f1, support) in expected.items():
        row = report["per_class"][label]
        assert row["precision"] == pytest.approx(precision)
        assert row["recall"] == pytest.approx(recall)
        assert row["f1"] == pytest.approx(f1)
        assert row["support"] == support
    assert report["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.8) / 3)
    assert report["macro_precision"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert report["support"] == 7 and report["labels"] == LABELS
    json.dumps(report)  # plain Python, ready for metrics.json


def test_absent_and_never_predicted_classes_score_zero():
    report = classification_report([0, 1, 1], [0, 1, 0], ["x", "y", "z"])
    assert report["per_class"]["z"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # x: p = 1/2, r = 1 -> f1 = 2/3; y: p = 1, r = 1/2 -> f1 = 2/3; z counts as 0 in the macro mean.
    assert report["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)


def test_cross_check_with_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    y_pred[:5] = 3
    report = classification_report(y_true.tolist(), y_pred.tolist(), ["a", "b", "c", "d"])
    labels = [0, 1, 2, 3]
    assert report["accuracy"] == pytest.approx(metrics.accuracy_score(y_true, y_pred))
    assert report["macro_f1"] == pytest.approx(
        metrics.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
    )
    assert report["confusion_matrix"] == metrics.confusion_matrix(y_true, y_pred, labels=labels).tolist()
    precision = metrics.precision_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    assert [report["per_class"][k]["precision"] for k in "abcd"] == pytest.approx(precision.tolist())


def test_confusion_matrix_counts_repeated_pairs():
    assert confusion_matrix([1, 1, 1], [0, 0, 1], 2).tolist() == [[0, 0], [2, 1]]


@pytest.mark.parametrize(
    ("y_true", "y_pred", "labels", "match"),
    [
        ([0, 1], [0], ["a", "b"], "same length"),
        ([], [], ["a"], "empty"),
        ([0, 2], [0, 1], ["a", "b"], "y_true has class index 2"),
        ([0, 1], [0, -1], ["a", "b"], "y_pred has class index -1"),
        ([0], [0], [], "labels"),
        ([0], [0], ["a", "a"], "distinct"),
    ],
)
def test_invalid_inputs(y_true, y_pred, labels, match):
    with pytest.raises(ValueError, match=match):
        classification_report(y_true, y_pred, labels)


def test_float_labels_are_rejected():
    with pytest.raises(TypeError, match="y_pred"):
        classification_report([0, 1], [0.0, 1.0], ["a", "b"])


def test_language_model_helpers():
    assert bits_per_token(math.log(2)) == pytest.approx(1.0)
    assert bits_per_token(0) == 0.0
    assert perplexity(math.log(50)) == pytest.approx(50.0)
    assert perplexity(1e6) == math.inf
    report = language_model_report(total_nats=100 * math.log(4), tokens=100, characters=400)
    assert report["loss"] == pytest.approx(math.log(4))
    assert report["bits_per_token"] == pytest.approx(2.0)
    assert report["perplexity"] == pytest.approx(4.0)
    assert report["bits_per_char"] == pytest.approx(0.5)  # 200 bits over 400 characters
    with pytest.raises(ValueError, match="nats"):
        bits_per_token(-1.0)
    with pytest.raises(ValueError, match="tokens"):
        language_model_report(1.0, tokens=0)


def test_format_report_table():
    text = format_report(classification_report(Y_TRUE, Y_PRED, LABELS))
    lines = text.splitlines()
    assert lines[0].split() == ["precision", "recall", "f1", "support"]
    assert lines[1].split() == ["a", "0.5000", "0.5000", "0.5000", "2"]
    assert any(line.split() == ["accuracy", "0.7143", "7"] for line in lines)
    assert any(line.split() == ["macro", "avg", "0.7222", "0.7222", "0.7000", "7"] for line in lines)
    assert lines[-1].split() == ["cat", "1", "0", "2"]


def test_format_report_of_flat_metrics():
    text = format_report({"loss": 1.25, "bits_per_char": 1.8})
    assert text.splitlines() == ["loss           1.2500", "bits_per_char  1.8000"]


def test_format_report_nests_sub_reports():
    inner = classification_report([0, 1], [0, 1], ["a", "b"])
    text = format_report({"split": "test", "summary": {"best_epoch": 3}, "valid": inner})
    lines = text.splitlines()
    assert lines[0] == "split  test"
    assert "summary:" in lines and "  best_epoch  3" in lines
    start = lines.index("valid:")
    assert lines[start + 1].split() == ["precision", "recall", "f1", "support"]
    assert lines[start + 1].startswith("  ")
