"""A token <-> id mapping with padding and unknown-token ids fixed at 0 and 1.

Ids are assigned deterministically: the special tokens first, in the order
given, then the regular tokens by descending frequency, ties broken by the
token string. The same corpus therefore always gives the same ids, whatever
order the counts were gathered in -- saved models stay loadable.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

DEFAULT_SPECIALS = ("<pad>", "<unk>")


def _count(token_lists_or_counter) -> Counter:
    if isinstance(token_lists_or_counter, Mapping):
        counts = Counter()
        for token, n in token_lists_or_counter.items():
            if not isinstance(token, str) or isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise TypeError(f"counts must map str tokens to ints >= 0, got {token!r}: {n!r}")
            counts[token] += n
        return counts
    if isinstance(token_lists_or_counter, str):
        raise TypeError("token_lists_or_counter must be token lists or a Counter, got a single str")
    counts = Counter()
    for i, tokens in enumerate(token_lists_or_counter):
        # A bare string here would be counted character by character -- almost surely a mistake.
        if isinstance(tokens, str) or not isinstance(tokens, Sequence):
            raise TypeError(f"token_lists_or_counter[{i}] must be a list of str tokens, got {type(tokens).__name__}")
        counts.update(tokens)
    return counts


class Vocabulary:
    """Tokens by id; ``tokens[0]`` is padding (``pad_id``), ``tokens[1]`` unknown (``unk_id``).

    Build one with ``Vocabulary.build``; ``Vocabulary(tokens, num_specials)`` wraps an
    existing list (the first ``num_specials`` entries are the special tokens).
    """

    pad_id = 0
    unk_id = 1

    def __init__(self, tokens: Sequence[str], num_specials: int = 2):
        tokens = list(tokens)
        if isinstance(num_specials, bool) or not isinstance(num_specials, int) or not 2 <= num_specials <= len(tokens):
            raise ValueError(f"num_specials must be an int from 2 (padding, unknown) to len(tokens)={len(tokens)}, "
                             f"got {num_specials!r}")
        bad = next((t for t in tokens if not isinstance(t, str) or not t), None)
        if bad is not None:
            raise TypeError(f"tokens must be non-empty strings, got {bad!r}")
        index = {}
        for i, token in enumerate(tokens):
            if token in index:
                raise ValueError(f"tokens must be unique, {token!r} is at ids {index[token]} and {i}")
            index[token] = i
        self._tokens = tokens
        self._index = index
        self.num_specials = num_specials

    @classmethod
    def build(cls, token_lists_or_counter: Iterable[Sequence[str]] | Mapping[str, int], min_freq: int = 1,
              max_size: int | None = None, specials: Sequence[str] = DEFAULT_SPECIALS) -> Vocabulary:
        """Count tokens and keep the frequent ones.

        Args:
            token_lists_or_counter: tokenized documents, or a token -> count mapping.
            min_freq: keep tokens seen at least this many times.
            max_size: cap on the *whole* vocabulary, specials included (so the embedding
                table size is known in advance); the least frequent tokens go first.
            specials: special tokens, ids 0.. in order; the first two are padding and unknown.
                Occurrences of special strings in the data are not counted as regular tokens.
        """
        if isinstance(min_freq, bool) or not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"min_freq must be a positive integer, got {min_freq!r}")
        specials = tuple(specials)
        if len(specials) < 2:
            raise ValueError(f"specials must hold at least padding and unknown tokens, got {specials!r}")
        if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int)
                                     or max_size < len(specials)):
            raise ValueError(f"max_size must be None or an int >= len(specials)={len(specials)}, got {max_size!r}")
        counts = _count(token_lists_or_counter)
        special_set = set(specials)
        regular = sorted((t for t, n in counts.items() if n >= min_freq and t not in special_set),
                         key=lambda t: (-counts[t], t))
        if max_size is not None:
            regular = regular[: max_size - len(specials)]
        return cls([*specials, *regular], num_specials=len(specials))

    # -- lookup -----------------------------------------------------------------
    @property
    def tokens(self) -> list[str]:
        """All tokens by id (a copy)."""
        return list(self._tokens)

    @property
    def special_ids(self) -> tuple[int, ...]:
        return tuple(range(self.num_specials))

    @property
    def pad_token(self) -> str:
        return self._tokens[self.pad_id]

    @property
    def unk_token(self) -> str:
        return self._tokens[self.unk_id]

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, token) -> bool:
        return token in self._index

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocabulary) and (self._tokens, self.num_specials) == (other._tokens,
                                                                                       other.num_specials)

    def __repr__(self) -> str:
        return f"Vocabulary(size={len(self)}, specials={self._tokens[:self.num_specials]})"

    def token_id(self, token: str) -> int:
        """Id of ``token``; ``unk_id`` if it is not in the vocabulary."""
        return self._index.get(token, self.unk_id)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Ids of ``tokens``; unknown tokens map to ``unk_id``."""
        if isinstance(tokens, str):
            raise TypeError("tokens must be a list of tokens, got a str (tokenize it first)")
        get, unk = self._index.get, self.unk_id
        return [get(t, unk) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ``ids`` (ints or a 1-D tensor); an id outside the vocabulary is an error."""
        out = []
        for position, i in enumerate(ids):
            i = int(i)
            if not 0 <= i < len(self._tokens):
                raise ValueError(f"ids[{position}] = {i} is outside the vocabulary (size {len(self._tokens)})")
            out.append(self._tokens[i])
        return out

    def unknown_rate(self, token_lists: Iterable[Sequence[str]]) -> float:
        """Fraction of tokens that would encode to ``unk_id`` (0.0 for no tokens)."""
        total = unknown = 0
        for tokens in token_lists:
            total += len(tokens)
            unknown += sum(1 for t in tokens if t not in self._index)
        return unknown / total if total else 0.0

    # -- persistence ------------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-safe description: ``{"tokens": [...], "num_specials": n}``."""
        return {"tokens": list(self._tokens), "num_specials": self.num_specials}

    @classmethod
    def from_dict(cls, data: Mapping) -> Vocabulary:
        if not isinstance(data, Mapping) or set(data) != {"tokens", "num_specials"}:
            raise ValueError(f"data must be a dict with keys 'tokens' and 'num_specials' (from to_dict), got "
                             f"{sorted(data) if isinstance(data, Mapping) else type(data).__name__}")
        if not isinstance(data["tokens"], list):
            raise TypeError(f"data['tokens'] must be a list, got {type(data['tokens']).__name__}")
        return cls(data["tokens"], data["num_specials"])
