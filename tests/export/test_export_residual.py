"""block="residual" language models through ONNX: parity at export, generation as torch, steps = one window."""

import numpy as np
import onnxruntime as ort
import pytest
import torch

from rnnkit.export import export_onnx, load_onnx
from tests.export.conftest import tiny_language_model

TOL = 1e-5  # the export's float32 parity tolerance


def _residual_lm(**config):
    torch.manual_seed(0)
    lm = tiny_language_model(block="residual", **config)
    with torch.no_grad():  # away from LayerNorm's initial weight 1 and bias 0, so a swapped pair would show
        for name, p in lm.model.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.3)
    return lm


@pytest.mark.parametrize("config", [dict(cell="gru", mlp_ratio=2), dict(cell="lstm", mlp_ratio=4),
                                    dict(cell="rnn", mlp_ratio=1, tie_weights=True),
                                    dict(cell="mingru", mlp_ratio=2, embedding_dim=5),
                                    dict(cell="minlstm", mlp_ratio=0, tie_weights=True)],
                         ids=lambda c: "-".join(f"{v}" for v in c.values()))
def test_residual_language_model_exports_and_generates_as_torch(config, tmp_path):
    lm = _residual_lm(**config)
    result = export_onnx(lm, tmp_path / "lm.onnx")
    assert result.parity["float32"]["max_abs_diff"] <= TOL
    onnx_lm = load_onnx(result.path)
    assert onnx_lm.model.config.block == "residual"
    for options in (dict(temperature=0), dict(temperature=1.0, seed=3)):
        assert onnx_lm.generate("abc", 30, **options) == lm.generate("abc", 30, **options)
    # One step at a time with the state fed back (how generation runs outside Python) = one call over the window.
    session = ort.InferenceSession(str(result.path))
    names = [i.name for i in session.get_inputs()]
    ids = np.array([[2, 5, 7, 3, 9, 4]], dtype=np.int64)
    zeros = {name: np.zeros((2, 1, 5), np.float32) for name in names[1:]}
    whole = session.run(None, {"ids": ids, **zeros})
    state, steps = zeros, []
    for t in range(ids.shape[1]):
        logits, *final = session.run(None, {"ids": ids[:, t:t + 1], **state})
        state = dict(zip(names[1:], final, strict=True))
        steps.append(logits)
    np.testing.assert_allclose(np.concatenate(steps, 1), whole[0], atol=1e-6)
    for got, expected in zip(state.values(), whole[1:], strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-6)
