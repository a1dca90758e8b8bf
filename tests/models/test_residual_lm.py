"""block="residual": pre-norm residual blocks with an MLP around each layer of the language model; plain unchanged."""

import hashlib
import json

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from rnnkit.api.language_model import LanguageModel
from rnnkit.data import CharTokenizer, Vocabulary
from rnnkit.models.config import EncoderConfig, LanguageModelConfig, from_saved
from rnnkit.models.encoder import make_recurrent
from rnnkit.models.language_model import RNNLanguageModel, embedding_dropout, locked_dropout

CELLS = ["gru", "lstm", "rnn", "mingru", "minlstm"]


def _residual(cell="mingru", seed=0, **options):
    torch.manual_seed(seed)
    config = {"cell": cell, "embedding_dim": 6, "hidden_size": 8, "num_layers": 2, "dropout": 0.0,
              "block": "residual", "mlp_ratio": 2, **options}
    model = RNNLanguageModel(LanguageModelConfig(**config), 13).double().eval()
    with torch.no_grad():  # LayerNorms start at weight 1, bias 0: move them so a swapped weight and bias shows
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.3)
    return model


def test_one_residual_layer_is_the_hand_composition_of_its_modules():
    model = _residual(num_layers=1)  # embedding_dim 6 != hidden_size 8: the inlet lifts the embedding
    ids = torch.randint(2, 13, (3, 9))
    block = model.blocks[0]
    x = F.linear(model.embedding.weight[ids], model.inlet.weight, model.inlet.bias)
    read = F.layer_norm(x, (8,), block.norm.weight, block.norm.bias, block.norm.eps)
    out, h = model.layers[0](read)
    x = x + out
    mlp = block.mlp
    normed = F.layer_norm(x, (8,), mlp.norm.weight, mlp.norm.bias, mlp.norm.eps)
    hidden = F.linear(normed, mlp.up.weight, mlp.up.bias)
    hidden = 0.5 * hidden * (1 + torch.erf(hidden / 2 ** 0.5))
    x = x + F.linear(hidden, mlp.down.weight, mlp.down.bias)
    final = F.layer_norm(x, (8,), model.final_norm.weight, model.final_norm.bias, model.final_norm.eps)
    expected = F.linear(final, model.decoder.weight, model.decoder.bias)
    logits, state = model(ids)
    torch.testing.assert_close(logits, expected, atol=1e-12, rtol=0)
    assert isinstance(state, list) and len(state) == 1
    torch.testing.assert_close(state[0], h, atol=0, rtol=0)
    assert mlp.up.out_features == 2 * 8


@pytest.mark.parametrize("cell", CELLS)
def test_stepping_token_by_token_equals_the_whole_sequence(cell):
    model = _residual(cell)
    ids = torch.randint(2, 13, (3, 20))
    whole, whole_state = model(ids)
    assert len(whole_state) == 2 and (isinstance(whole_state[0], tuple) == (cell == "lstm"))
    state, steps = None, []
    for t in range(ids.shape[1]):
        logits, state = model(ids[:, t:t + 1], state)
        steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, 1), whole, atol=1e-10, rtol=0)
    for a, b in zip(state, whole_state, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


def test_mlp_ratio_zero_has_no_mlp_and_equal_sizes_no_inlet():
    model = _residual("gru", embedding_dim=8, mlp_ratio=0)
    assert model.inlet is None and all(b.mlp is None for b in model.blocks)
    ids = torch.randint(2, 13, (2, 5))
    x = model.embedding(ids)
    for k, layer in enumerate(model.layers):
        x = x + layer(model.blocks[k].norm(x))[0]
    torch.testing.assert_close(model(ids)[0], model.decoder(model.final_norm(x)), atol=1e-12, rtol=0)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("block", ["plain", "residual"])
@pytest.mark.parametrize("options", [dict(), dict(mlp_ratio=0), dict(embedding_dim=8), dict(tie_weights=True)])
def test_the_preflight_counts_the_parameters_the_model_has(cell, block, options):
    from rnnkit.pipelines.preflight import language_model_parameters

    config = LanguageModelConfig(**{"cell": cell, "embedding_dim": 6, "hidden_size": 8, "num_layers": 3,
                                    "block": block, **options})
    built = sum(p.numel() for p in RNNLanguageModel(config, 13).parameters())  # a tied matrix counts once
    assert language_model_parameters(config, 13) == built


def test_dropout_applies_to_each_branch_with_one_mask_per_sequence():
    model = _residual("gru", dropout=0.5, embedding_dim=8, mlp_ratio=0, num_layers=1).train()
    ids = torch.randint(2, 13, (2, 6))
    torch.manual_seed(1)
    got, _ = model(ids)
    torch.manual_seed(1)
    x = model.embedding(ids)
    mask = x.new_empty(2, 1, 8).bernoulli_(0.5) / 0.5
    x = x * mask
    out = model.layers[0](model.blocks[0].norm(x))[0]
    mask = x.new_empty(2, 1, 8).bernoulli_(0.5) / 0.5
    expected = model.decoder(model.final_norm(x + out * mask))
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)


def test_the_fields_are_checked_up_front():
    with pytest.raises(ValueError, match=r"block must be one of \['plain', 'residual'\], got 'resnet'"):
        LanguageModelConfig(block="resnet")
    with pytest.raises(ValueError, match=r"mlp_ratio must be an integer >= 0, got -1"):
        LanguageModelConfig(block="residual", mlp_ratio=-1)
    with pytest.raises(TypeError, match=r"mlp_ratio must be an integer >= 0, got 2.5"):
        LanguageModelConfig(block="residual", mlp_ratio=2.5)


# -- block="plain" is what the model was before the option --------------------------------------------------------

class _OldLanguageModel(nn.Module):
    """The language model's modules as the constructor made them before ``block`` existed, in the same order."""

    def __init__(self, config, vocab_size, pad_id=0):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, config.embedding_dim, padding_idx=pad_id)
        layers = []
        for k in range(config.num_layers):
            sub = EncoderConfig(cell=config.cell, embedding_dim=config.embedding_dim, hidden_size=config.hidden_size,
                                num_layers=1, bidirectional=False, backend=config.backend, cell_form=config.cell_form)
            layers.append(make_recurrent(sub, config.embedding_dim if k == 0 else config.hidden_size))
        self.layers = nn.ModuleList(layers)
        if config.tie_weights and config.hidden_size != config.embedding_dim:
            self.projection = nn.Linear(config.hidden_size, config.embedding_dim, bias=False)
        self.decoder = nn.Linear(config.embedding_dim if config.tie_weights else config.hidden_size, vocab_size)
        if config.tie_weights:
            self.decoder.weight = self.embedding.weight

    def forward(self, ids, p=0.0, p_embedding=0.0):
        """The forward of before the option, its dropout masks drawn in the same order."""
        x = embedding_dropout(self.embedding, ids, p_embedding, self.training)
        x = locked_dropout(x, p, self.training)
        for layer in self.layers:
            x = locked_dropout(layer(x)[0], p, self.training)
        return self.decoder(x if getattr(self, "projection", None) is None else self.projection(x))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("tie", [False, True])
def test_plain_draws_the_same_weights_as_before_the_option(cell, tie):
    config = LanguageModelConfig(cell=cell, embedding_dim=6, hidden_size=8, num_layers=2, tie_weights=tie)
    assert config.block == "plain"
    torch.manual_seed(7)
    old = _OldLanguageModel(config, 13).state_dict()
    torch.manual_seed(7)
    new = RNNLanguageModel(config, 13).state_dict()
    assert list(new) == list(old)
    for name in old:
        assert torch.equal(new[name], old[name]), name


@pytest.mark.parametrize("cell", ["gru", "mingru"])
def test_plain_training_forward_draws_the_same_dropout_masks_as_before(cell):
    config = LanguageModelConfig(cell=cell, embedding_dim=6, hidden_size=8, num_layers=2, dropout=0.3,
                                 embedding_dropout=0.2)
    torch.manual_seed(5)
    old = _OldLanguageModel(config, 13).train()
    torch.manual_seed(5)
    new = RNNLanguageModel(config, 13).train()
    ids = torch.randint(2, 13, (3, 7))
    torch.manual_seed(6)
    expected = old(ids, 0.3, 0.2)
    torch.manual_seed(6)
    assert torch.equal(new(ids)[0], expected)


def _digest(tensor):
    return hashlib.sha256(tensor.detach().contiguous().numpy().tobytes()).hexdigest()


def test_a_model_saved_without_the_fields_loads_as_plain_with_unchanged_outputs(tmp_path):
    vocab = Vocabulary(["<pad>", "<unk>", *"abcdefghij"])
    config = LanguageModelConfig(cell="lstm", embedding_dim=6, hidden_size=8, num_layers=2)
    torch.manual_seed(3)
    old = _OldLanguageModel(config, len(vocab)).eval()
    ids = torch.randint(2, len(vocab), (2, 11))
    before = _digest(old(ids))
    torch.manual_seed(3)
    lm = LanguageModel(RNNLanguageModel(config, len(vocab), vocab.pad_id), CharTokenizer(), vocab)
    folder = lm.save(tmp_path / "model")
    meta_path = folder / "config.json"
    meta = json.loads(meta_path.read_text())
    for field in ("block", "mlp_ratio"):  # as every language model saved before the option
        del meta["model_config"][field]
    meta_path.write_text(json.dumps(meta))
    loaded = LanguageModel.load(folder)
    assert loaded.model.config.block == "plain" and loaded.model.blocks is None
    with torch.no_grad():
        assert _digest(loaded.model(ids)[0]) == before
    assert from_saved(LanguageModelConfig, {}).block == "plain"


def test_serve_inspection_follows_the_residual_block():
    from rnnkit.serve.inspection import inspect_language_model

    vocab = Vocabulary(["<pad>", "<unk>", *"abcdefghij"])
    torch.manual_seed(4)
    config = LanguageModelConfig(cell="gru", embedding_dim=6, hidden_size=8, num_layers=2, block="residual")
    lm = LanguageModel(RNNLanguageModel(config, len(vocab), vocab.pad_id), CharTokenizer(), vocab)
    with torch.no_grad():
        for name, p in lm.model.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.3)
    report = inspect_language_model(lm, "abcabjd")
    with torch.no_grad():
        probs = lm.model(torch.tensor([report["ids"]]))[0][0].double().softmax(-1)
    for t, entry in enumerate(report["predictions"][:-1]):
        assert entry["p_next"] == pytest.approx(float(probs[t, report["ids"][t + 1]]), abs=1e-6)
