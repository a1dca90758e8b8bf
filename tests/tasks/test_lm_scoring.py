"""Scoring a language model over windows with the state carried equals one pass."""

import torch
from torch.nn import functional as F

from rnnkit.tasks.language_model import score_ids
from tests.helpers import tiny_lm_net


def test_score_ids_matches_a_single_pass():
    model = tiny_lm_net()
    ids = torch.randint(2, 30, (400,))
    nats, count = score_ids(model, ids, window=37)
    logits, _ = model(ids[None, :-1])
    expected = F.cross_entropy(logits[0], ids[1:], reduction="sum")
    assert count == 399 and abs(nats - float(expected.detach())) < 1e-6
