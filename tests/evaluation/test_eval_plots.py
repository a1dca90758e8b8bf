import json

import pytest
from matplotlib.image import imread

from rnnkit.evaluation import classification_report, plot_confusion_matrix, plot_training_curves, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

HISTORY = [
    {"epoch": 1, "step": 10, "elapsed": 1.0, "train_loss": 0.9, "train_accuracy": 0.6,
     "valid_accuracy": 0.62, "valid_loss": 0.8},
    {"epoch": 2, "step": 20, "elapsed": 2.1, "train_loss": 0.5, "train_accuracy": 0.8,
     "valid_accuracy": None, "valid_loss": 0.55},  # a non-finite value logged as null
    {"epoch": 3, "step": 30, "elapsed": 3.0, "train_loss": 0.3, "train_accuracy": 0.9,
     "valid_accuracy": 0.88, "valid_loss": 0.4},
]


def _assert_png(path):
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


@pytest.mark.parametrize("x", ["epoch", "elapsed", None])
def test_training_curves_png(tmp_path, x):
    path = plot_training_curves(HISTORY, tmp_path / "curves.png", x=x)
    _assert_png(path)


def test_training_curves_explicit_metrics_and_errors(tmp_path):
    _assert_png(plot_training_curves(HISTORY, tmp_path / "a.png", metrics=("train_loss", "valid_accuracy")))
    with pytest.raises(ValueError, match="valid_f1"):
        plot_training_curves(HISTORY, tmp_path / "b.png", metrics=("valid_f1",))
    with pytest.raises(ValueError, match="x must be"):
        plot_training_curves(HISTORY, tmp_path / "b.png", x="wall")
    with pytest.raises(ValueError, match="history"):
        plot_training_curves([], tmp_path / "b.png")
    assert not (tmp_path / "b.png").exists()


def test_confusion_matrix_png(tmp_path):
    _assert_png(plot_confusion_matrix([[5, 1], [0, 7]], ["neg", "pos"], tmp_path / "sub" / "cm.png"))
    with pytest.raises(ValueError, match="labels"):
        plot_confusion_matrix([[5, 1], [0, 7]], ["neg"], tmp_path / "cm2.png")


def test_write_report(tmp_path):
    report = classification_report([0, 1, 1, 0], [0, 1, 0, 0], ["neg", "pos"])
    written = write_report(tmp_path / "report", report, HISTORY)
    assert set(written) == {"metrics", "text", "confusion_matrix", "training_curves"}
    assert json.loads(written["metrics"].read_text())["accuracy"] == pytest.approx(0.75)
    assert "macro avg" in written["text"].read_text()
    _assert_png(written["confusion_matrix"])
    _assert_png(written["training_curves"])

