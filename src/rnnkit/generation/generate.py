"""Text generation from a recurrent language model: prime with a prompt, then sample token by token.

The state is carried step to step (one token in, one distribution out), so each new
token costs one recurrent step, not a pass over everything written so far.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from rnnkit.generation.config import SamplingConfig
from rnnkit.generation.sampling import sample_next
from rnnkit.validation import check_positive_int


class _StopFilter:
    """Holds back text that could be the start of ``stop`` so a stop string is never streamed."""

    def __init__(self, stop: str | None):
        self.stop, self.pending, self.done = stop or None, "", False

    def push(self, text: str) -> str:
        if self.stop is None:
            return text
        self.pending += text
        cut = self.pending.find(self.stop)
        if cut >= 0:
            self.done = True
            out, self.pending = self.pending[:cut], ""
            return out
        keep = 0  # longest suffix of pending that is a prefix of stop
        for n in range(min(len(self.stop) - 1, len(self.pending)), 0, -1):
            if self.stop.startswith(self.pending[-n:]):
                keep = n
                break
        out, self.pending = self.pending[: len(self.pending) - keep], self.pending[len(self.pending) - keep:]
        return out

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


def generate_pieces(model, tokenizer, vocab, prompt: str = "", max_tokens: int = 200,
                    sampling: SamplingConfig | None = None, stop: str | None = None,
                    seed: int | None = None) -> Iterator[str]:
    """Yield the generated text piece by piece (the prompt itself is not repeated).

    The arguments are checked now, not at the first ``next()``, so a caller that prints the prompt
    before the sample never prints it for a run that was going to fail.
    """
    check_positive_int("max_tokens", max_tokens)
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
    if stop is not None and not isinstance(stop, str):
        raise TypeError(f"stop must be a str or None, got {type(stop).__name__}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"seed must be an integer >= 0 or None, got {seed!r}")
    return _pieces(model, tokenizer, vocab, prompt, max_tokens, sampling or SamplingConfig(), stop, seed)


@torch.no_grad()
def _pieces(model, tokenizer, vocab, prompt: str, max_tokens: int, sampling: SamplingConfig, stop: str | None,
            seed: int | None) -> Iterator[str]:
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        banned = torch.tensor(sorted(vocab.special_ids), dtype=torch.long, device=device)
        prompt_ids = vocab.encode(tokenizer.tokenize(prompt)) if prompt else []
        # With no prompt, start from a line break if the vocabulary has one, else from a random token.
        if not prompt_ids:
            start = "\n" if "\n" in vocab else None
            prompt_ids = [vocab.token_id(start)] if start else [len(vocab.special_ids)]
        ids = torch.tensor([prompt_ids], dtype=torch.long, device=device)
        logits, state = model(ids)
        last = logits[:, -1]
        generated: list[str] = []
        text = ""
        stopper = _StopFilter(stop)
        for _ in range(max_tokens):
            next_id = sample_next(last, sampling, banned, generator)
            generated.extend(vocab.decode(next_id.tolist()))
            new_text = tokenizer.detokenize(generated)
            piece = new_text[len(text):] if new_text.startswith(text) else new_text[len(text):]
            text = new_text
            out = stopper.push(piece)
            if out:
                yield out
            if stopper.done:
                return
            logits, state = model(next_id.view(1, 1), state)
            last = logits[:, -1]
        rest = stopper.flush()
        if rest:
            yield rest
    finally:
        model.train(was_training)
