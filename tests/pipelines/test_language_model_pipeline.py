"""Language models end to end: train, save, load and generate through the API and the CLI."""

import json
import subprocess
import sys

from rnnkit.api.language_model import LanguageModel, train_language_model
from rnnkit.models.config import LanguageModelConfig
from rnnkit.training import TrainConfig
from tests.helpers import SONNET


def test_train_save_load_generate(tmp_path):
    corpus = tmp_path / "sonnet.txt"
    corpus.write_text(SONNET, encoding="utf-8")
    lm, summary = train_language_model(str(corpus), tmp_path / "run",
                                       model=LanguageModelConfig(embedding_dim=16, hidden_size=48, num_layers=1,
                                                                 dropout=0.0),
                                       train=TrainConfig(epochs=8, batch_size=8, lr=1e-2, progress=False,
                                                         patience=None), bptt=32)
    assert summary["final_valid_bits_per_char"] < 2.5  # uniform over the vocabulary would be log2(|V|) ≈ 4.9
    loaded = LanguageModel.load(tmp_path / "run")
    assert loaded.generate("Thou", 40, seed=1) == lm.generate("Thou", 40, seed=1)
    pieces = list(loaded.generate_iter("Shall", 30, temperature=0.5, seed=2))
    assert len("".join(pieces)) == 30 and "<pad>" not in "".join(pieces)
    assert (tmp_path / "run" / "report" / "training_curves.png").exists()


def test_cli_train_lm_generate_eval(tmp_path):
    corpus = tmp_path / "sonnet.txt"
    corpus.write_text(SONNET, encoding="utf-8")
    run = [sys.executable, "-m", "rnnkit"]
    r = subprocess.run([*run, "train-lm", "--data", str(corpus), "--out", str(tmp_path / "lm"), "--hidden-size", "24",
                        "--num-layers", "1", "--embedding-dim", "8", "--epochs", "2", "--batch-size", "4",
                        "--bptt", "32", "--max-time", "None", "--eval-every", "None", "--no-progress"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "final_valid_bits_per_char" in json.loads(r.stdout.strip().splitlines()[-1])
    r = subprocess.run([*run, "generate", str(tmp_path / "lm"), "--prompt", "Thou", "-n", "25", "--seed", "1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Thou") and len(r.stdout.rstrip("\n")) == 29
    r = subprocess.run([*run, "eval", str(tmp_path / "lm"), str(corpus), "--json"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["bits_per_char"] > 0
