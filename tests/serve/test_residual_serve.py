"""serve with a block="residual" language model: /v1/generate answers what the Python API samples."""

from __future__ import annotations

import pytest
import torch

from rnnkit.api.language_model import LanguageModel
from rnnkit.data import CharTokenizer, Vocabulary
from rnnkit.models.config import LanguageModelConfig
from rnnkit.models.language_model import RNNLanguageModel
from rnnkit.serve import create_app
from tests.serve.conftest import client_for

pytestmark = pytest.mark.anyio


async def test_generate_with_a_residual_minlstm_model(tmp_path):
    vocab = Vocabulary(["<pad>", "<unk>", *"abcdefgh \n."])
    torch.manual_seed(0)
    config = LanguageModelConfig(cell="minlstm", embedding_dim=6, hidden_size=8, num_layers=2, block="residual",
                                 mlp_ratio=2)
    lm = LanguageModel(RNNLanguageModel(config, len(vocab), vocab.pad_id), CharTokenizer(), vocab)
    loaded = LanguageModel.load(lm.save(tmp_path / "model"))
    expected = lm.generate("abc", 30, temperature=0.9, seed=5)
    async with client_for(create_app({"poet": loaded})) as client:
        r = await client.post("/v1/generate", json={"prompt": "abc", "max_tokens": 30, "temperature": 0.9,
                                                     "seed": 5, "stream": False})
    assert r.status_code == 200, r.text
    assert r.json()["text"] == expected
