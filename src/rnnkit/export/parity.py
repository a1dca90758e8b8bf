"""The export's parity check: the ONNX graph against the PyTorch model on random batches.

Classifiers read batches of mixed lengths in shuffled order, always including a length-1 sequence and one of
the longest length the model is used with (its ``max_length``); language models read a single step and a long
window from zero state, then continue from the carried state. The figure is the largest absolute difference
over every output (logits, and the final states of a language model).
"""

from __future__ import annotations

import torch

from rnnkit.export.runtime import OnnxClassifierNet, OnnxLanguageModelNet

# Without a max_length the longest parity batch is this long (classifier) / the long LM window.
DEFAULT_LONGEST = 400


def _random_ids(generator: torch.Generator, batch: int, steps: int, vocab_size: int, low: int) -> torch.Tensor:
    return torch.randint(low, vocab_size, (batch, steps), generator=generator)


def classifier_batches(vocab_size: int, longest: int, pad_id: int, low: int, seed: int = 0):
    """[(ids (B, T), lengths (B,))]: a single token, a single longest text, and two mixed batches."""
    g = torch.Generator().manual_seed(seed)
    shapes = [[1], [longest]]
    middle = torch.randint(1, longest + 1, (6,), generator=g).tolist()
    shapes.append([1, longest, *middle])
    shapes.append(torch.randint(1, min(longest, 12) + 1, (5,), generator=g).tolist())
    batches = []
    for lengths in shapes:
        order = torch.randperm(len(lengths), generator=g)  # not sorted: the graph must not rely on order
        lengths = torch.tensor(lengths)[order]
        ids = _random_ids(g, len(lengths), int(lengths.max()), vocab_size, low)
        ids[torch.arange(ids.shape[1]).unsqueeze(0) >= lengths.unsqueeze(1)] = pad_id
        batches.append((ids, lengths))
    return batches


@torch.no_grad()
def classifier_parity(model, session, vocab, max_length: int | None, seed: int = 0) -> dict:
    """Max |onnx - torch| over the logits, and how often the top class agrees."""
    model = model.eval()
    net = OnnxClassifierNet(session)
    longest = max_length or DEFAULT_LONGEST
    worst, agree, total, shapes = 0.0, 0, 0, []
    for ids, lengths in classifier_batches(len(vocab), longest, vocab.pad_id, len(vocab.special_ids), seed):
        expected, got = model(ids, lengths).float(), net(ids, lengths)
        worst = max(worst, float((expected - got).abs().max()))
        agree += int((expected.argmax(1) == got.argmax(1)).sum())
        total += len(lengths)
        shapes.append([int(n) for n in lengths])
    return {"max_abs_diff": worst, "top1_agreement": agree / total, "lengths": shapes}


def _flat_state(state) -> list[torch.Tensor]:
    return [t for s in state for t in (s if isinstance(s, tuple) else (s,))]


@torch.no_grad()
def language_model_parity(model, session, vocab, longest: int = DEFAULT_LONGEST, seed: int = 0) -> dict:
    """Max |onnx - torch| over logits and states: one step and a long window from zero, then a carried state."""
    model = model.eval()
    config = model.config
    net = OnnxLanguageModelNet(session, len(model.layers), config.hidden_size, model.is_lstm)
    g = torch.Generator().manual_seed(seed)
    low = len(vocab.special_ids)
    worst, agree, total = 0.0, 0, 0
    for batch, steps in ((3, 1), (2, longest)):
        ids = _random_ids(g, batch, steps, len(vocab), low)
        theirs, ours = model(ids), net(ids)
        follow = _random_ids(g, batch, 7, len(vocab), low)  # continue from each side's own carried state
        runs = [(theirs, ours), (model(follow, theirs[1]), net(follow, ours[1]))]
        for (t_logits, t_state), (o_logits, o_state) in runs:
            pairs = [(t_logits, o_logits), *zip(_flat_state(t_state), _flat_state(o_state), strict=True)]
            worst = max(worst, *(float((a.float() - b).abs().max()) for a, b in pairs))
            agree += int((t_logits.argmax(-1) == o_logits.argmax(-1)).sum())
            total += t_logits.shape[0] * t_logits.shape[1]
    return {"max_abs_diff": worst, "top1_agreement": agree / total, "longest": longest}
