"""The CLI: `rnnkit export`, then predict / eval / generate with --runtime onnx give the torch answers."""

import json

import pytest

from rnnkit.api.classifier import Classifier
from rnnkit.cli.main import main


def _run(capsys, *argv) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_export_then_predict_and_eval_with_onnx(saved_classifier, tmp_path, capsys):
    out = _run(capsys, "export", str(saved_classifier), "--format", "onnx")
    assert "parity float32: max |onnx - torch|" in out
    assert (saved_classifier / "model.onnx").exists() and (saved_classifier / "model.json").exists()
    # Beside the checkpoint, not in it: training into the same run folder can still replace the checkpoint.
    assert sorted(p.name for p in (saved_classifier / "model").iterdir()) == ["config.json", "model.safetensors"]
    Classifier.load(saved_classifier).save(saved_classifier / "model")
    texts = ["the team and the goal", "bank profit"]
    torch_out = _run(capsys, "predict", str(saved_classifier), *texts, "--top-k", "2", "--json")
    onnx_out = _run(capsys, "predict", str(saved_classifier), *texts, "--top-k", "2", "--json", "--runtime", "onnx")
    a, b = ([json.loads(line) for line in text.splitlines()] for text in (torch_out, onnx_out))
    assert [[x["label"] for x in r["labels"]] for r in a] == [[x["label"] for x in r["labels"]] for r in b]
    for r, s in zip(a, b, strict=True):
        assert [x["probability"] for x in r["labels"]] == pytest.approx([x["probability"] for x in s["labels"]],
                                                                        abs=1e-5)
    data = tmp_path / "test.csv"
    data.write_text("label,text\nsport,the team goal\nmoney,bank profit market\ntech,phone chip data\n")
    reports = [json.loads(_run(capsys, "eval", str(saved_classifier), str(data), "--json", *extra))
               for extra in ((), ("--runtime", "onnx"))]
    assert reports[0]["accuracy"] == reports[1]["accuracy"]
    assert reports[0]["confusion_matrix"] == reports[1]["confusion_matrix"]


def test_export_int8_to_a_chosen_file_and_generate(saved_language_model, tmp_path, capsys):
    target = tmp_path / "out" / "lm.int8.onnx"
    summary = json.loads(_run(capsys, "export", str(saved_language_model), "--int8", "--out", str(target), "--json"))
    assert summary["int8"] and summary["parity"]["float32"]["max_abs_diff"] <= 1e-5
    assert target.exists() and (tmp_path / "out" / "lm.int8.json").exists()
    _run(capsys, "export", str(saved_language_model))
    args = ["generate", str(saved_language_model), "--prompt", "ab", "-n", "20", "--temperature", "0"]
    assert _run(capsys, *args, "--runtime", "onnx") == _run(capsys, *args)
    text = tmp_path / "text.txt"
    text.write_text("abc def\ngah. " * 5)
    scores = [json.loads(_run(capsys, "eval", str(saved_language_model), str(text), "--json", *extra))
              for extra in ((), ("--runtime", "onnx"))]
    assert scores[0]["bits_per_char"] == pytest.approx(scores[1]["bits_per_char"], abs=1e-5)


def test_onnx_runtime_errors_are_one_line(saved_classifier, saved_language_model, capsys):
    assert main(["predict", str(saved_classifier), "hello", "--runtime", "onnx"]) == 2
    err = capsys.readouterr().err
    assert "model.onnx for" in err and "run `rnnkit export" in err
    _run(capsys, "export", str(saved_language_model))
    assert main(["predict", str(saved_language_model), "hello", "--runtime", "onnx"]) == 2
    assert "holds a language model, not a classifier" in capsys.readouterr().err
    assert main(["export", str(saved_classifier), "--out", "x.txt"]) == 2
    assert "out must name a .onnx file" in capsys.readouterr().err


def test_a_saved_model_is_read_once_per_command(saved_classifier, saved_language_model, capsys, monkeypatch):
    # The kind comes from config.json: predict and generate read the weights file once, not once to learn the kind
    # and again to load.
    from rnnkit.training import checkpoint

    opened, real = [], checkpoint.safe_open
    monkeypatch.setattr(checkpoint, "safe_open", lambda path, *a, **k: opened.append(path) or real(path, *a, **k))
    _run(capsys, "predict", str(saved_classifier), "the match")
    _run(capsys, "generate", str(saved_language_model), "--prompt", "ab", "-n", "3", "--temperature", "0")
    assert len(opened) == 2
    assert main(["predict", str(saved_classifier.parent / "nothing"), "x"]) == 2
    assert "no checkpoint directory at" in capsys.readouterr().err


def test_export_on_a_full_disk_names_the_file(saved_language_model, full_disk, capsys):
    filler = full_disk / "filler"
    with pytest.raises(OSError), filler.open("wb") as stream:  # the tiny model would fit in 64 KiB: fill it
        while True:
            stream.write(b"\0" * 4096)
            stream.flush()
    target = full_disk / "x.onnx"
    assert main(["export", str(saved_language_model), "--out", str(target)]) == 2
    assert f"{target}: No space left on device" in capsys.readouterr().err
    assert list(full_disk.iterdir()) == [filler]  # no temporary folder, no partial graph


def test_a_failed_write_names_the_export_and_keeps_the_earlier_one(saved_language_model, tmp_path, capsys,
                                                                    monkeypatch):
    """ENOSPC simulated where the graph is written (onnx.save), for machines that cannot mount a tmpfs."""
    import errno

    import onnx

    from rnnkit.export import onnx_export

    target = tmp_path / "x.onnx"
    _run(capsys, "export", str(saved_language_model), "--out", str(target))
    before = target.read_bytes()

    def full(graph, path, *args, **kwargs):
        with open(path, "wb") as stream:
            stream.write(graph.SerializeToString()[:100])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(onnx_export, "onnx", type("Onnx", (), {"save": staticmethod(full), "load": onnx.load,
                                                               "TensorProto": onnx.TensorProto}))
    assert main(["export", str(saved_language_model), "--out", str(target)]) == 2
    assert f"{target}: No space left on device" in capsys.readouterr().err
    assert target.read_bytes() == before and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
