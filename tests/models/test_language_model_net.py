"""The language model network: state carried across windows equals one pass over the whole text."""

import torch
from torch.nn import functional as F

from rnnkit.models.language_model import detach_state
from tests.helpers import tiny_lm_net


def test_carried_state_equals_one_pass():
    for cell in ("lstm", "gru", "rnn"):
        model = tiny_lm_net(cell)
        ids = torch.randint(2, 30, (3, 50))
        whole, _ = model(ids)
        loss_whole = F.cross_entropy(whole[:, :-1].reshape(-1, 30), ids[:, 1:].reshape(-1), reduction="sum")
        state, total = None, 0.0
        for start in range(0, 49, 7):  # windows of 7 with the state carried and detached
            x, y = ids[:, start:start + 7], ids[:, start + 1:start + 8]
            x = x[:, : y.shape[1]]
            logits, state = model(x, state)
            state = detach_state(state)
            total = total + F.cross_entropy(logits.reshape(-1, 30), y.reshape(-1), reduction="sum")
        assert abs(float(total.detach()) - float(loss_whole.detach())) < 1e-6
