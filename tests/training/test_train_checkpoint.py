import json

import pytest
import torch
from torch import nn

from rnnkit.training import checkpoint as checkpoint_module
from rnnkit.training import load_checkpoint, save_checkpoint

META = {"model": {"hidden": 8, "cell": "lstm"}, "labels": ["neg", "pos"], "vocab": ["<pad>", "a", "b"]}


def _state():
    torch.manual_seed(0)
    return {"w": torch.randn(3, 4), "b": torch.zeros(4), "steps": torch.tensor(7, dtype=torch.int64)}


def _assert_same(a: dict, b: dict):
    assert list(a) == list(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key


def _siblings(path):
    return sorted(p.name for p in path.parent.iterdir())


def test_round_trip(tmp_path):
    state = _state()
    path = save_checkpoint(tmp_path / "ckpt", state, META)
    assert path == tmp_path / "ckpt"
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    assert json.loads((path / "config.json").read_text())["format_version"] == 1
    loaded, meta = load_checkpoint(path)
    _assert_same(loaded, state)
    assert meta == META


def test_model_round_trip_with_tied_and_strided_tensors(tmp_path):
    model = nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 5, bias=False))
    model[1].weight = model[0].weight  # tied: one tensor under two keys
    state = model.state_dict()
    base = torch.arange(12.0)
    state["overlap_a"], state["overlap_b"] = base[0:8], base[4:12]  # overlapping views
    state["transposed"] = torch.randn(3, 4).t()  # non-contiguous
    save_checkpoint(tmp_path / "ckpt", state, {})
    loaded, _ = load_checkpoint(tmp_path / "ckpt")
    _assert_same(loaded, state)
    assert loaded["0.weight"] is loaded["1.weight"]  # stored once, restored as the same tensor
    fresh = nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 5, bias=False))
    fresh.load_state_dict({k: v for k, v in loaded.items() if k[0].isdigit()})
    assert torch.equal(fresh[0].weight, model[0].weight)


def test_saved_tensors_do_not_follow_later_updates(tmp_path):
    state = _state()
    save_checkpoint(tmp_path / "ckpt", state, {})
    state["w"].add_(1.0)
    loaded, _ = load_checkpoint(tmp_path / "ckpt")
    assert not torch.equal(loaded["w"], state["w"])


def test_replace_existing_checkpoint(tmp_path):
    save_checkpoint(tmp_path / "ckpt", _state(), {"version": "old"})
    new_state = {"w": torch.ones(2)}
    save_checkpoint(tmp_path / "ckpt", new_state, {"version": "new"})
    loaded, meta = load_checkpoint(tmp_path / "ckpt")
    _assert_same(loaded, new_state)
    assert meta == {"version": "new"}
    assert _siblings(tmp_path / "ckpt") == ["ckpt"]  # no temporary or backup left behind


def test_unserialisable_meta_leaves_old_checkpoint_intact(tmp_path):
    save_checkpoint(tmp_path / "ckpt", _state(), META)
    with pytest.raises(TypeError, match="JSON"):
        save_checkpoint(tmp_path / "ckpt", {"w": torch.ones(2)}, {"bad": object()})
    loaded, meta = load_checkpoint(tmp_path / "ckpt")
    _assert_same(loaded, _state())
    assert meta == META and _siblings(tmp_path / "ckpt") == ["ckpt"]


def test_failure_while_writing_leaves_old_checkpoint_intact(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "ckpt", _state(), META)

    def broken_write_file(path, data):
        with open(path, "wb") as handle:
            handle.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module, "write_file", broken_write_file)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "ckpt", {"w": torch.ones(2)}, {})
    loaded, meta = load_checkpoint(tmp_path / "ckpt")
    _assert_same(loaded, _state())
    assert meta == META and _siblings(tmp_path / "ckpt") == ["ckpt"]


def test_failed_rename_restores_old_checkpoint(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "ckpt", _state(), META)
    real_replace = checkpoint_module.os.replace
    calls = []

    def flaky_replace(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # old moved aside, new about to move in
            raise OSError("rename failed")
        return real_replace(src, dst)

    monkeypatch.setattr(checkpoint_module.os, "replace", flaky_replace)
    with pytest.raises(OSError, match="rename failed"):
        save_checkpoint(tmp_path / "ckpt", {"w": torch.ones(2)}, {})
    monkeypatch.undo()
    _, meta = load_checkpoint(tmp_path / "ckpt")
    assert meta == META and _siblings(tmp_path / "ckpt") == ["ckpt"]


def test_refuses_to_replace_a_directory_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="todo.txt"):
        save_checkpoint(tmp_path / "notes", _state(), {})
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"


def test_missing_files_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nothing")):
        load_checkpoint(tmp_path / "nothing")
    save_checkpoint(tmp_path / "ckpt", _state(), {})
    (tmp_path / "ckpt" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_checkpoint(tmp_path / "ckpt")


def test_invalid_json_and_version_are_reported(tmp_path):
    save_checkpoint(tmp_path / "ckpt", _state(), {})
    config = tmp_path / "ckpt" / "config.json"
    config.write_text("{not json")
    with pytest.raises(ValueError, match="invalid JSON in .*config.json"):
        load_checkpoint(tmp_path / "ckpt")
    config.write_text(json.dumps({"format_version": 99}))
    with pytest.raises(ValueError, match="format_version=99"):
        load_checkpoint(tmp_path / "ckpt")


def test_corrupt_weights_are_reported(tmp_path):
    save_checkpoint(tmp_path / "ckpt", _state(), {})
    (tmp_path / "ckpt" / "model.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(ValueError, match="model.safetensors"):
        load_checkpoint(tmp_path / "ckpt")


def test_argument_checks(tmp_path):
    with pytest.raises(ValueError, match="format_version"):
        save_checkpoint(tmp_path / "c", _state(), {"format_version": 2})
    with pytest.raises(TypeError, match="'w'"):
        save_checkpoint(tmp_path / "c", {"w": [1.0]}, {})
    with pytest.raises(TypeError, match="meta"):
        save_checkpoint(tmp_path / "c", _state(), ["not", "a", "dict"])
    assert not (tmp_path / "c").exists()
