"""rnnkit train-lm --block residual: train → save → --resume → generate, in this process (tiny, a few steps)."""

import json
import signal

import pytest

from rnnkit.api.language_model import LanguageModel
from rnnkit.cli.main import main
from rnnkit.training.rundir import RunFolder, RunFolderError
from rnnkit.training.state import save_state

TEXT = "Shall I compare thee to a summer's day?\nThou art more lovely and more temperate.\n" * 30


def _train_args(corpus, out):
    return ["train-lm", "--data", str(corpus), "--out", str(out), "--block", "residual", "--mlp-ratio", "2",
            "--cell", "mingru", "--hidden-size", "16", "--num-layers", "2", "--embedding-dim", "8", "--max-steps",
            "3", "--batch-size", "4", "--bptt", "16", "--max-time", "None", "--eval-every", "None",
            "--checkpoint-every", "1", "--no-progress"]


def test_train_lm_residual_mingru_saves_resumes_and_generates(tmp_path, capsys, monkeypatch):
    import rnnkit.pipelines.language_model as api

    corpus, out = tmp_path / "sonnet.txt", tmp_path / "lm"
    corpus.write_text(TEXT, encoding="utf-8")
    real = api.write_report

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    # Stopped after its 3 steps, before the report: --resume rebuilds the residual model from the saved settings.
    monkeypatch.setattr(api, "write_report", interrupted)
    assert main(_train_args(corpus, out)) == 128 + signal.SIGINT
    monkeypatch.setattr(api, "write_report", real)
    assert main(["train-lm", "--resume", str(out), "--no-progress"]) == 0
    saved = json.loads((out / "model" / "config.json").read_text())["model_config"]
    assert (saved["block"], saved["mlp_ratio"], saved["cell"]) == ("residual", 2, "mingru")
    lm = LanguageModel.load(out)
    assert lm.model.blocks is not None and lm.model.blocks[0].mlp.up.out_features == 32
    capsys.readouterr()
    assert main(["generate", str(out), "--prompt", "Thou", "-n", "25", "--seed", "1"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("Thou") and len(text.rstrip("\n")) == 29
    assert text.rstrip("\n") == "Thou" + lm.generate("Thou", 25, seed=1)


def test_a_language_model_run_saved_before_the_block_fields_resumes_as_plain(tmp_path):
    """Also before cell_form: a run saved without the field resumes as the plain form it was trained with."""
    out = tmp_path / "run"
    first = RunFolder(out).open({"model": {"cell": "gru"}})
    save_state(first.state_path(), {"x": 1})
    first.release()
    with pytest.raises(RunFolderError, match="model.block: saved 'plain', now 'residual'"):
        RunFolder(out, resume=True).open({"model": {"cell": "gru", "block": "residual", "mlp_ratio": 0}})
    again = RunFolder(out, resume=True).open({"model": {"cell": "gru", "block": "plain", "mlp_ratio": 0,
                                                        "cell_form": "plain"}})
    assert again.path == first.path
    again.release()
