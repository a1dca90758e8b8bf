"""Whole-model export: classifiers and language models against their PyTorch selves, the sidecar, failures."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from rnnkit.export import ExportError, export_onnx, load_onnx
from rnnkit.export import onnx_export as onnx_export_module
from rnnkit.export.graphs import classifier_graph
from rnnkit.export.runtime import make_session
from rnnkit.models.ngrams import NgramBag
from tests.export.conftest import LABELS, tiny_classifier, tiny_language_model

TEXTS = ["the team and the goal", "bank", "profit of the market and a phone with data chip " * 5]

CLASSIFIERS = [
    dict(cell="gru", num_layers=2, bidirectional=True, pooling="max+mean"),
    dict(cell="lstm", num_layers=1, bidirectional=False, pooling="last", pool_embeddings=True),
    dict(cell="rnn_relu", num_layers=3, bidirectional=True, pooling="last+mean+max", pool_embeddings=True),
    dict(cell="rnn", num_layers=1, bidirectional=True, pooling="mean"),
    dict(cell="lstm", num_layers=2, bidirectional=True, pooling="max", ensemble=3),
    dict(cell="gru", num_layers=1, bidirectional=True, pooling="max+mean", ngrams="logits",
         ngram_buckets=64),
    dict(cell="gru", num_layers=1, bidirectional=True, pooling="max", ngrams="logits", ngram_buckets=64,
         ngram_weighting="idf"),
    dict(cell="lstm", num_layers=1, bidirectional=False, pooling="last", ngrams="features",
         ngram_buckets=64, ngram_dim=4, ensemble=2),
]


@pytest.mark.parametrize("config", CLASSIFIERS, ids=lambda c: "-".join(f"{v}" for v in c.values()))
def test_classifier_export_matches_torch(config, tmp_path):
    clf = tiny_classifier(**config)
    with torch.no_grad():  # the logit path's table starts at zero: random rows make the check see it
        for module in clf.model.modules():
            if isinstance(module, NgramBag):
                module.table.weight.normal_()
                if module.idf is not None:  # ones until fitted: spread them so the graph's weighting is checked
                    module.idf.uniform_(1.0, 6.0)
    result = export_onnx(clf, tmp_path / "m.onnx")
    parity = result.parity["float32"]
    assert parity["max_abs_diff"] <= 1e-5 and parity["top1_agreement"] == 1.0
    # The check covered a length-1 text and the longest (max_length) one, in unsorted mixed batches.
    seen = [n for batch in parity["lengths"] for n in batch]
    assert min(seen) == 1 and max(seen) == clf.max_length
    onnx_clf = load_onnx(result.path)
    np.testing.assert_allclose(onnx_clf.predict_proba(TEXTS), clf.predict_proba(TEXTS), atol=1e-6)
    labels = lambda predictions: [[label for label, _ in top] for top in predictions]  # noqa: E731
    assert labels(onnx_clf.predict(TEXTS, top_k=2)) == labels(clf.predict(TEXTS, top_k=2))


@pytest.mark.parametrize("config", [dict(cell="gru"), dict(cell="lstm", tie_weights=True),
                                    dict(cell="rnn", num_layers=1, tie_weights=True, embedding_dim=5),
                                    dict(cell="rnn_relu", num_layers=3)], ids=lambda c: c["cell"])
def test_language_model_export_matches_torch(config, tmp_path):
    lm = tiny_language_model(**config)
    result = export_onnx(lm, tmp_path / "lm.onnx")
    assert result.parity["float32"]["max_abs_diff"] <= 1e-5
    onnx_lm = load_onnx(result.path)
    # Greedy and seeded sampling run the same steps on the same state: the same text.
    for options in (dict(temperature=0), dict(temperature=1.0, seed=3)):
        assert onnx_lm.generate("abc", 30, **options) == lm.generate("abc", 30, **options)
    text = "abc def gah\n" * 4
    assert onnx_lm.evaluate_text(text)["bits_per_char"] == pytest.approx(lm.evaluate_text(text)["bits_per_char"],
                                                                           abs=1e-5)


def test_language_model_step_by_step_equals_a_window(tmp_path):
    """One step at a time with the state fed back (how generation runs outside Python) = one long call."""
    lm = tiny_language_model(cell="lstm")
    session = ort.InferenceSession(str(export_onnx(lm, tmp_path / "lm.onnx").path))
    ids = np.array([[2, 5, 7, 3, 9, 4]], dtype=np.int64)
    zeros = np.zeros((2, 1, 5), np.float32)
    whole, h_all, c_all = session.run(None, {"ids": ids, "h0": zeros, "c0": zeros})
    h, c, steps = zeros, zeros, []
    for t in range(ids.shape[1]):
        logits, h, c = session.run(None, {"ids": ids[:, t:t + 1], "h0": h, "c0": c})
        steps.append(logits)
    np.testing.assert_allclose(np.concatenate(steps, 1), whole, atol=1e-6)
    np.testing.assert_allclose(h, h_all, atol=1e-6)
    np.testing.assert_allclose(c, c_all, atol=1e-6)


def test_sidecar_lets_another_runtime_classify_without_rnnkit(tmp_path):
    clf = tiny_classifier(cell="gru", bidirectional=True)
    result = export_onnx(clf, tmp_path / "m.onnx")
    meta = json.loads(result.sidecar.read_text())
    assert meta["labels"] == LABELS and meta["tokenizer"] == {"type": "word", "lowercase": True}
    assert set(meta["inputs"]) == {"ids", "lengths"} and meta["max_length"] == clf.max_length
    # What a C# or Java caller would do: look tokens up in the JSON's list, pad, run the session.
    index = {tok: i for i, tok in enumerate(meta["vocab"]["tokens"])}
    rows = [[index.get(w, meta["unk_id"]) for w in text.split()] for text in TEXTS[:2]]
    ids = np.full((2, max(map(len, rows))), meta["pad_id"], np.int64)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = row
    session = ort.InferenceSession(str(result.path))
    _, probs = session.run(None, {"ids": ids, "lengths": np.array([len(r) for r in rows], np.int64)})
    np.testing.assert_allclose(probs, clf.predict_proba(TEXTS[:2]), atol=1e-6)


def test_failed_parity_writes_nothing_and_keeps_the_earlier_export(tmp_path, monkeypatch):
    clf = tiny_classifier(cell="gru")
    good = export_onnx(clf, tmp_path / "m.onnx")
    before = good.path.read_bytes(), good.sidecar.read_text()
    other = tiny_classifier(cell="gru")  # different random weights: the graph no longer matches the model

    monkeypatch.setattr(onnx_export_module, "classifier_graph", lambda model: classifier_graph(other.model))
    with pytest.raises(ExportError, match=r"parity check failed: max \|onnx - torch\| = .* > tolerance 1e-05"):
        export_onnx(clf, tmp_path / "m.onnx")
    assert (good.path.read_bytes(), good.sidecar.read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.onnx"]  # no temporary left behind


def _trained_language_model(steps: int = 30):
    """A 64-unit LSTM LM after a few Adam steps: trained weights spread wider than random ones, where 8-bit
    weights saturated on CPUs without VNNI (max |int8 - torch| 0.86 on an AVX2 machine, 0.40 with exact sums)."""
    torch.manual_seed(0)
    lm = tiny_language_model(cell="lstm", embedding_dim=32, hidden_size=64)
    ids = torch.tensor(lm.vocab.encode(list("abc def gah. " * 30 + "head bag cafe.\n" * 20)))
    optimizer = torch.optim.Adam(lm.model.parameters(), 1e-2)
    for _ in range(steps):
        starts = torch.randint(0, len(ids) - 65, (16,)).tolist()
        x, y = (torch.stack([ids[s + shift:s + shift + 64] for s in starts]) for shift in (0, 1))
        loss = torch.nn.functional.cross_entropy(lm.model(x)[0].flatten(0, 1), y.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    lm.model.eval()
    return lm


def _random_language_model():
    torch.manual_seed(0)
    return tiny_language_model(cell="lstm", embedding_dim=32, hidden_size=64)


def _classifier():
    torch.manual_seed(0)
    return tiny_classifier(cell="lstm", num_layers=2, bidirectional=True, embedding_dim=32, hidden_size=64)


def _exact_int8_session(path):
    """ORT's x64quantprecision: uint8 x int8 products taken on the non-saturating uint8 x uint8 path, which is
    what a VNNI CPU computes anyway; on other CPUs the graph must give the same answer with and without it."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.add_session_config_entry("session.x64quantprecision", "1")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("make", [_random_language_model, _trained_language_model, _classifier],
                         ids=["lm-random", "lm-trained", "classifier"])
def test_int8_export_is_smaller_and_close_on_every_cpu(make, tmp_path):
    """What --int8 promises, whatever CPU runs it: weights narrow enough that no x86 int8 kernel saturates (so
    the integer sums are the same on AVX2 and VNNI), the same outputs as the exact path, top-1 kept."""
    model = make()
    plain = export_onnx(model, tmp_path / "f.onnx", tolerance=1e-3)  # trained logits are large: float32 rounding
    quantized = export_onnx(model, tmp_path / "q.onnx", int8=True, tolerance=1e-3)
    meta = json.loads(quantized.sidecar.read_text())
    assert quantized.int8 and meta["int8"] is True and meta["quantization"] == onnx_export_module.QUANTIZATION
    assert meta["quantization"]["reduce_range"] and plain.size_bytes > quantized.size_bytes
    peaks = onnx_export_module.int8_weight_extremes(onnx.load(quantized.path))
    assert peaks and max(peaks.values()) <= onnx_export_module.SATURATION_FREE_WEIGHT
    # As any other runtime runs the file (ORT's defaults: this CPU's fastest kernels) against exact products:
    # only saturation could tell them apart.
    anywhere = onnx_export_module._parity(quantized.kind, model, ort.InferenceSession(str(quantized.path)))
    exact = onnx_export_module._parity(quantized.kind, model, _exact_int8_session(quantized.path))
    assert anywhere["max_abs_diff"] == pytest.approx(exact["max_abs_diff"], abs=1e-5)
    assert anywhere["top1_agreement"] == exact["top1_agreement"] == quantized.parity["int8"]["top1_agreement"]
    # int8 is reported, not held to the float tolerance: what matters is the prediction, with a loose bound.
    assert anywhere["top1_agreement"] >= 0.98
    assert 0 < anywhere["max_abs_diff"] < 0.5
    if quantized.kind == "language_model":
        assert load_onnx(quantized.path).generate("abc", 10, temperature=0)


def test_an_8bit_int8_file_runs_exactly_through_rnnkit(tmp_path):
    """An int8 file with full 8-bit weights (an older export, another tool) saturates on CPUs without VNNI under
    ORT's defaults; rnnkit's sessions take the exact path, so it scores as a VNNI CPU would."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = _random_language_model()
    plain = export_onnx(model, tmp_path / "f.onnx")
    wide = tmp_path / "wide.onnx"
    quantize_dynamic(plain.path, wide, weight_type=QuantType.QInt8)
    assert max(onnx_export_module.int8_weight_extremes(onnx.load(wide)).values()) > 64
    ours = onnx_export_module._parity("language_model", model, make_session(wide))
    exact = onnx_export_module._parity("language_model", model, _exact_int8_session(wide))
    assert ours["max_abs_diff"] == pytest.approx(exact["max_abs_diff"], abs=1e-6)


def test_int8_refuses_weights_that_would_saturate(tmp_path, monkeypatch):
    """An onnxruntime whose reduce_range stopped meaning 7 bits: the export says so and writes nothing."""
    monkeypatch.setitem(onnx_export_module.QUANTIZATION, "reduce_range", False)
    with pytest.raises(ExportError, match=r"int8 weights exceed ±64 .* saturate .* nothing written"):
        export_onnx(_random_language_model(), tmp_path / "q.onnx", int8=True)
    assert list(tmp_path.iterdir()) == []


def test_an_onnx_loaded_model_refuses_to_be_saved(tmp_path):
    clf = tiny_classifier(cell="gru")
    onnx_clf = load_onnx(export_onnx(clf, tmp_path / "m.onnx").path)
    assert onnx_clf.model.config == clf.model.config
    with pytest.raises(TypeError, match="runs inference only"):
        onnx_clf.save(tmp_path / "copy")
    assert not (tmp_path / "copy").exists()


def test_bad_arguments_are_named(tmp_path):
    clf = tiny_classifier(cell="gru")
    with pytest.raises(ValueError, match="out must name a .onnx file"):
        export_onnx(clf, tmp_path / "m.bin")
    with pytest.raises(ValueError, match="tolerance must be a positive number"):
        export_onnx(clf, tmp_path / "m.onnx", tolerance=0)
    with pytest.raises(ExportError, match="out is required"):
        export_onnx(clf)


def _edit_sidecar(path, edit):
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize("edit, words", [
    (lambda m: m["vocab"].update(tokens=m["vocab"]["tokens"][:3]), ("m.json", "'vocab' has 3 tokens", "14 rows")),
    (lambda m: m.update(labels=m["labels"][:2]), ("m.json", "'labels' has 2 entries", "scores 3 classes")),
    (lambda m: m.update(labels=[*m["labels"], "extra"]), ("'labels' has 4 entries",)),
    (lambda m: m.pop("labels"), ("m.json", "'labels' is missing",)),
], ids=["vocab-cut", "labels-cut", "labels-added", "labels-missing"])
def test_a_sidecar_that_does_not_fit_its_classifier_graph_is_refused(edit, words, tmp_path):
    result = export_onnx(tiny_classifier(cell="gru"), tmp_path / "m.onnx")
    _edit_sidecar(result.sidecar, edit)
    with pytest.raises(ExportError) as caught:
        load_onnx(result.path)
    for word in words:
        assert word in str(caught.value)


def test_a_language_model_graph_beside_a_classifier_sidecar_is_named(tmp_path):
    """The .onnx of an LM copied over a classifier's: ONNX Runtime would say "Required inputs (['h0']) are
    missing" at the first prediction; the load says which file holds what."""
    clf = export_onnx(tiny_classifier(cell="gru"), tmp_path / "m.onnx")
    lm = export_onnx(tiny_language_model(cell="lstm"), tmp_path / "lm.onnx")
    clf.path.write_bytes(lm.path.read_bytes())
    with pytest.raises(ExportError, match=r"m\.onnx holds a language model, but .*m\.json says kind 'classifier'"):
        load_onnx(clf.path)
    _edit_sidecar(lm.sidecar, lambda m: m["model_config"].update(hidden_size=7))
    with pytest.raises(ExportError, match=r"lm\.json: field 'model_config\.hidden_size' is 7, .* h0 has 5"):
        load_onnx(lm.path)
    _edit_sidecar(lm.sidecar, lambda m: m["model_config"].update(hidden_size=5, cell="gru"))
    with pytest.raises(ExportError, match=r"lm\.onnx has inputs \['c0', 'h0', 'ids'\]; .* needs \['h0', 'ids'\]"):
        load_onnx(lm.path)
