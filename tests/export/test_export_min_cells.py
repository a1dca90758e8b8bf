"""minGRU / minLSTM exported to ONNX: layers against the reference back end, padding, models, the CLI."""

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

import rnnkit
from rnnkit.api.language_model import LanguageModel
from rnnkit.cli.main import main
from rnnkit.export import export_onnx, layer_graph, load_onnx
from rnnkit.export.runtime import make_session
from tests.export.conftest import tiny_classifier, tiny_language_model

TOL = 1e-5  # the export's float32 parity tolerance
LAYERS = {"mingru": rnnkit.MinGRU, "minlstm": rnnkit.MinLSTM}
D, H, T = 3, 4, 9
LENGTHS = torch.tensor([4, T, 1, 6, 2])  # mixed and unsorted: the graph must not rely on order


def _layer(cell, form, **kwargs):
    torch.manual_seed(0)
    layer = LAYERS[cell](D, H, form=form, backend="reference", **kwargs).eval()
    with torch.no_grad():  # wider weights than the default init, so both signs of the log form's g are taken
        for p in layer.parameters():
            p.mul_(3)
    return layer


def _feeds(x, lengths=None, h0=None):
    feeds = {"input": x.numpy()}
    if lengths is not None:
        feeds["lengths"] = lengths.numpy()
    if h0 is not None:
        feeds["h0"] = h0.numpy()
    return feeds


@pytest.mark.parametrize("cell", sorted(LAYERS))
@pytest.mark.parametrize("form", ["plain", "log"])
@pytest.mark.parametrize("bidir", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("layers", [1, 2])
def test_layer_on_a_mixed_length_batch_matches_the_reference(cell, form, bidir, layers):
    layer = _layer(cell, form, num_layers=layers, bidirectional=bidir)
    x = torch.randn(T, len(LENGTHS), D)
    # The log form's state stays positive from a non-negative h0; the plain form takes any sign.
    h0 = torch.randn(layers * (2 if bidir else 1), len(LENGTHS), H)
    h0 = h0.abs() if form == "log" else h0
    with torch.no_grad():
        out, h_n = layer(x, h0, lengths=LENGTHS)
    session = make_session(layer_graph(layer, with_lengths=True, with_state=True).SerializeToString())
    got = session.run(None, _feeds(x, LENGTHS, h0))
    assert len(got) == 2  # no c_n: the minimal cells' state is h alone
    np.testing.assert_allclose(got[0], out.numpy(), atol=TOL, rtol=0)
    np.testing.assert_allclose(got[1], h_n.numpy(), atol=TOL, rtol=0)


@pytest.mark.parametrize("cell", sorted(LAYERS))
def test_batch_first_without_lengths_or_state_matches_the_scan_back_end(cell):
    layer = _layer(cell, "log", num_layers=2, bidirectional=True, batch_first=True)
    layer.backend = "scan"  # what a model runs on a CPU by default
    x = torch.randn(3, T, D)
    with torch.no_grad():
        out, h_n = layer(x)
    got = make_session(layer_graph(layer, with_lengths=False).SerializeToString()).run(None, _feeds(x))
    for a, b in zip(got, (out, h_n), strict=True):
        np.testing.assert_allclose(a, b.numpy(), atol=TOL, rtol=0)


@pytest.mark.parametrize("cell", sorted(LAYERS))
def test_padding_never_leaks(cell):
    """Each row of a padded batch = that row alone; outputs past a length are exactly zero; what fills the
    padding changes nothing; the reverse direction starts at each row's own last token."""
    layer = _layer(cell, "plain", num_layers=2, bidirectional=True)
    session = make_session(layer_graph(layer).SerializeToString())
    x = torch.randn(T, len(LENGTHS), D)
    out, h_n = session.run(None, _feeds(x, LENGTHS))
    garbage = x.clone()
    garbage[torch.arange(T).unsqueeze(1) >= LENGTHS] = 1e3
    for a, b in zip(session.run(None, _feeds(garbage, LENGTHS)), (out, h_n), strict=True):
        np.testing.assert_array_equal(a, b)
    for b, n in enumerate(LENGTHS.tolist()):
        assert np.abs(out[n:, b]).sum() == 0 and np.abs(out[:n, b]).sum() > 0
        alone_out, alone_h = session.run(None, _feeds(x[:n, b:b + 1], LENGTHS[b:b + 1]))
        np.testing.assert_allclose(out[:n, b:b + 1], alone_out, atol=1e-6, rtol=0)
        np.testing.assert_allclose(h_n[:, b:b + 1], alone_h, atol=1e-6, rtol=0)


TEXTS = ["the team and the goal", "bank", "profit of the market and a phone with data chip " * 5]


@pytest.mark.parametrize("cell", sorted(LAYERS))
@pytest.mark.parametrize("form", ["plain", "log"])
def test_classifier_export_passes_parity_and_predicts_as_torch(cell, form, tmp_path):
    torch.manual_seed(0)
    clf = tiny_classifier(cell=cell, cell_form=form, num_layers=2, bidirectional=True, pooling="last+max+mean")
    assert clf.model.encoder.rnn.form == form
    result = export_onnx(clf, tmp_path / "m.onnx")
    parity = result.parity["float32"]
    assert parity["max_abs_diff"] <= TOL and parity["top1_agreement"] == 1.0
    onnx_clf = load_onnx(result.path)
    np.testing.assert_allclose(onnx_clf.predict_proba(TEXTS), clf.predict_proba(TEXTS), atol=1e-6)


@pytest.mark.parametrize("cell", sorted(LAYERS))
@pytest.mark.parametrize("form", ["plain", "log"])
def test_language_model_export_generates_as_torch(cell, form, tmp_path):
    torch.manual_seed(0)
    lm = tiny_language_model(cell=cell, cell_form=form, num_layers=2, tie_weights=True)
    assert lm.model.layers[0].form == form
    result = export_onnx(lm, tmp_path / "lm.onnx")
    assert result.parity["float32"]["max_abs_diff"] <= TOL
    onnx_lm = load_onnx(result.path)
    for options in (dict(temperature=0), dict(temperature=1.0, seed=3)):
        assert onnx_lm.generate("abc", 30, **options) == lm.generate("abc", 30, **options)
    # One step at a time with h fed back (how generation runs outside Python) = one call over the window.
    session = ort.InferenceSession(str(result.path))
    assert [i.name for i in session.get_inputs()] == ["ids", "h0"]
    ids = np.array([[2, 5, 7, 3, 9, 4]], dtype=np.int64)
    whole, h_all = session.run(None, {"ids": ids, "h0": np.zeros((2, 1, 5), np.float32)})
    h, steps = np.zeros((2, 1, 5), np.float32), []
    for t in range(ids.shape[1]):
        logits, h = session.run(None, {"ids": ids[:, t:t + 1], "h0": h})
        steps.append(logits)
    np.testing.assert_allclose(np.concatenate(steps, 1), whole, atol=1e-6)
    np.testing.assert_allclose(h, h_all, atol=1e-6)


def _run(capsys, *argv) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def _fit(model, loss_of, steps: int = 20):
    """A few SGD steps on ``loss_of(model)``: trained weights, spread wider than the initial ones."""
    optimizer = torch.optim.SGD(model.parameters(), 0.5)  # SGD: the classifier's embedding has sparse gradients
    for _ in range(steps):
        loss = loss_of(model)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def _trained_classifier():
    clf = tiny_classifier(cell="minlstm", num_layers=2, bidirectional=True)
    texts = ["the team goal", "bank profit market", "phone chip data", "a match of the team", "the market"]
    ids = [torch.tensor(clf.vocab.encode(clf.tokenizer.tokenize(t))) for t in texts]
    lengths = torch.tensor([len(i) for i in ids])
    batch = torch.nn.utils.rnn.pad_sequence(ids, batch_first=True, padding_value=clf.vocab.pad_id)
    labels = torch.tensor([1, 0, 2, 1, 0])
    _fit(clf.model, lambda net: torch.nn.functional.cross_entropy(net(batch, lengths), labels))
    return clf


def _trained_language_model():
    lm = tiny_language_model(cell="mingru", cell_form="log")
    ids = torch.tensor(lm.vocab.encode(list("abc def gah. " * 8))).unsqueeze(0)
    _fit(lm.model, lambda net: torch.nn.functional.cross_entropy(net(ids[:, :-1])[0].flatten(0, 1),
                                                                  ids[0, 1:]))
    return lm


def test_cli_export_then_predict_and_generate_with_onnx(tmp_path, capsys):
    torch.manual_seed(0)
    clf_dir = _trained_classifier().save(tmp_path / "clf" / "model").parent
    lm_dir = _trained_language_model().save(tmp_path / "lm" / "model").parent
    assert LanguageModel.load(lm_dir).model.layers[0].form == "log"  # the config field travels with the model
    for folder in (clf_dir, lm_dir):
        assert "parity float32: max |onnx - torch|" in _run(capsys, "export", str(folder), "--format", "onnx")
    texts = ["the team and the goal", "bank profit"]
    args = ["predict", str(clf_dir), *texts, "--top-k", "3", "--json"]
    a, b = ([json.loads(line) for line in _run(capsys, *args, *extra).splitlines()]
            for extra in ((), ("--runtime", "onnx")))
    for r, s in zip(a, b, strict=True):
        assert [x["label"] for x in r["labels"]] == [x["label"] for x in s["labels"]]
        assert [x["probability"] for x in r["labels"]] == pytest.approx([x["probability"] for x in s["labels"]],
                                                                        abs=1e-5)
    args = ["generate", str(lm_dir), "--prompt", "ab", "-n", "20", "--temperature", "0"]
    assert _run(capsys, *args, "--runtime", "onnx") == _run(capsys, *args)
