"""The classifier network on its own: pooling the embeddings next to the states, padding invariance."""

import pytest
import torch

from rnnkit.models.classifier import RNNClassifier
from rnnkit.models.config import ClassifierConfig, from_dict


def _net(**kw):
    torch.manual_seed(0)
    config = ClassifierConfig(embedding_dim=6, hidden_size=5, embedding_dropout=0.0, dropout=0.0, **kw)
    return RNNClassifier(config, vocab_size=30, num_classes=3, pad_id=0).double().eval()


@pytest.mark.parametrize("pooling", ["max+mean", "last", "mean", "max", "last+max+mean"])
def test_pool_embeddings_is_padding_invariant(pooling):
    net = _net(pool_embeddings=True, pooling=pooling)
    ids = torch.tensor([[3, 7, 9, 4, 0, 0, 0], [5, 6, 7, 8, 9, 10, 11]])
    lengths = torch.tensor([4, 7])
    with torch.no_grad():
        together = net(ids, lengths)
        alone = net(ids[:1, :4], lengths[:1])
        # Garbage ids past the length must not matter either.
        noisy = net(torch.tensor([[3, 7, 9, 4, 12, 13, 14]]), torch.tensor([4]))
    torch.testing.assert_close(together[:1], alone, rtol=0, atol=1e-12)
    torch.testing.assert_close(noisy, alone, rtol=0, atol=1e-12)


def test_pool_embeddings_feeds_the_head_the_bag_of_embeddings():
    net = _net(pool_embeddings=True, pooling="mean")
    hidden = net.encoder.output_size
    assert net.head.in_features == hidden + 6
    ids, lengths = torch.tensor([[3, 7, 9, 0]]), torch.tensor([3])
    # Only the embedding part of the head sees the input: the logits move by W_e · mean(e_t) exactly.
    with torch.no_grad():
        net.head.weight[:, :hidden] = 0
        net.head.bias.zero_()
        expected = net.encoder.embedding(ids[:, :3]).mean(1) @ net.head.weight[:, hidden:].t()
        torch.testing.assert_close(net(ids, lengths), expected)


def test_pool_embeddings_off_keeps_the_old_head_and_old_configs_load():
    assert _net().head.in_features == 2 * 5 * 2  # two directions, max+mean
    old = {k: v for k, v in ClassifierConfig().__dict__.items() if k != "pool_embeddings"}
    assert from_dict(ClassifierConfig, old).pool_embeddings is False
