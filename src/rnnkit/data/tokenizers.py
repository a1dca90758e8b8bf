"""Word and character tokenizers, serialisable to a small config dict.

``WordTokenizer`` is a regular expression over Unicode text:

* numbers with inner separators stay whole: ``3.5``, ``1,000``;
* words are runs of letters, digits, underscores *and combining marks*, with
  internal apostrophes / hyphens kept: ``don't``, ``state-of-the-art``,
  ``हिन्दी``. Python's ``\\w`` does not match combining marks (Devanagari vowel
  signs and viramas, decomposed accents), so ``\\w+`` alone would cut such words
  into pieces; the mark ranges are added from ``unicodedata`` on first use;
* every other non-space character is a token of its own: ``"Hi!"`` -> ``Hi``, ``!``.

Text is NFC-normalised first so that ``é`` written as ``e`` + U+0301 and the
precomposed ``é`` give the same token, then optionally lower-cased.

``CharTokenizer`` splits into code points and keeps the text exactly (no
normalisation), so ``detokenize(tokenize(t)) == t`` -- what a character language
model needs.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

# Code point ranges worth scanning for combining marks: the BMP, the SMP and the
# variation-selector supplement. Planes 2-3 are ideographs (no marks); scanning
# 0x110000 code points would make the first tokenizer take ~0.5 s to build.
_MARK_SCAN = (range(0x0000, 0x20000), range(0xE0000, 0xE0200))


def _ranges_to_class(points: list[int]) -> str:
    parts, start = [], None
    for i, cp in enumerate(points):
        if start is None:
            start = cp
        if i + 1 == len(points) or points[i + 1] != cp + 1:
            parts.append(re.escape(chr(start)) + ("-" + re.escape(chr(cp)) if cp != start else ""))
            start = None
    return "".join(parts)


@functools.cache
def _word_pattern() -> re.Pattern:
    marks = [cp for block in _MARK_SCAN for cp in block if unicodedata.category(chr(cp)).startswith("M")]
    # ZWNJ / ZWJ sit inside words in Persian and Indic scripts.
    letter = "[\\w" + _ranges_to_class(marks) + "\u200c\u200d]"
    number = r"\d+(?:[.,]\d+)+"
    word = f"{letter}+(?:['\u2019\\-]{letter}+)*"
    return re.compile(f"{number}|{word}|\\S")


_NO_SPACE_BEFORE = set(".,!?;:%)]}")
_NO_SPACE_AFTER = set("([{")


@dataclass(frozen=True)
class WordTokenizer:
    """Words, numbers and single punctuation marks (see the module docstring)."""

    lowercase: bool = True

    def __post_init__(self):
        if not isinstance(self.lowercase, bool):
            raise TypeError(f"lowercase must be a bool, got {self.lowercase!r}")

    def tokenize(self, text: str) -> list[str]:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        text = unicodedata.normalize("NFC", text)
        if self.lowercase:
            text = text.lower()
        return _word_pattern().findall(text)

    def detokenize(self, tokens: list[str]) -> str:
        """Tokens joined with spaces, except before closing / after opening punctuation.

        Approximate: the original spacing is not recorded, so this is for display only.
        """
        out: list[str] = []
        for token in tokens:
            if out and token not in _NO_SPACE_BEFORE and out[-1] not in _NO_SPACE_AFTER:
                out.append(" ")
            out.append(token)
        return "".join(out)

    def to_config(self) -> dict:
        return {"type": "word", "lowercase": self.lowercase}


@dataclass(frozen=True)
class CharTokenizer:
    """One token per Unicode code point; lossless."""

    def tokenize(self, text: str) -> list[str]:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return list(text)

    def detokenize(self, tokens: list[str]) -> str:
        return "".join(tokens)

    def to_config(self) -> dict:
        return {"type": "char"}


Tokenizer = WordTokenizer | CharTokenizer
_TYPES = {"word": WordTokenizer, "char": CharTokenizer}


def tokenizer_from_config(config: dict) -> Tokenizer:
    """Rebuild a tokenizer from ``to_config()``'s dict; unknown types or keys are errors."""
    if not isinstance(config, dict) or config.get("type") not in _TYPES:
        raise ValueError(f"config must be a dict with 'type' one of {sorted(_TYPES)}, got {config!r}")
    options = {k: v for k, v in config.items() if k != "type"}
    cls = _TYPES[config["type"]]
    allowed = set(cls.__dataclass_fields__)
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"config for a {config['type']!r} tokenizer has unknown keys {unknown}; "
                         f"allowed: {sorted(allowed)}")
    return cls(**options)



def make_tokenizer(kind: str, lowercase: bool) -> Tokenizer:
    """The tokenizer a data config names (``"word"`` or ``"char"``): the one place both pipelines build theirs."""
    if kind not in _TYPES:
        raise ValueError(f"tokenizer must be one of {sorted(_TYPES)}, got {kind!r}")
    return WordTokenizer(lowercase=lowercase) if kind == "word" else CharTokenizer()
