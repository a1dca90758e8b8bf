"""Word and character tokenizers: Unicode, punctuation, numbers, casing, config round trip."""

from __future__ import annotations

import json

import pytest

from rnnkit.data import CharTokenizer, WordTokenizer, tokenizer_from_config

# "namaste duniya": vowel signs and the virama are combining marks, which plain \w+ splits off.
HINDI = ("\u0928\u092e\u0938\u094d\u0924\u0947", "\u0926\u0941\u0928\u093f\u092f\u093e")


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Hello, world!", ["hello", ",", "world", "!"]),
        ("Don't stop; it's state-of-the-art.", ["don't", "stop", ";", "it's", "state-of-the-art", "."]),
        ("rock\u2019n\u2019roll", ["rock\u2019n\u2019roll"]),
        ("'quoted' -dash- Jones'", ["'", "quoted", "'", "-", "dash", "-", "jones", "'"]),
        ("Pi is 3.14, pop. 1,000,000 in 2004!", ["pi", "is", "3.14", ",", "pop", ".", "1,000,000", "in", "2004", "!"]),
        ("\u00a315.8m (\u20ac2)", ["\u00a3", "15.8", "m", "(", "\u20ac", "2", ")"]),
        ("Stra\u00dfe na\u00efve \u00c9COLE", ["stra\u00dfe", "na\u00efve", "\u00e9cole"]),
        (" ".join(HINDI), list(HINDI)),
        ("\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440", ["\u043f\u0440\u0438\u0432\u0435\u0442", ",",
                                                                        "\u043c\u0438\u0440"]),
        ("snake_case x2 ... ok", ["snake_case", "x2", ".", ".", ".", "ok"]),
        ("  \n\t ", []),
    ],
    ids=["punct", "apostrophe-hyphen", "curly-apostrophe", "edge-quotes", "numbers", "currency", "latin",
         "devanagari-marks", "cyrillic", "misc", "blank"],
)
def test_word_tokenizer_cases(text, tokens):
    assert WordTokenizer().tokenize(text) == tokens


def test_nfc_normalisation_and_case():
    decomposed, composed = "Cafe\u0301", "Caf\u00e9"
    assert WordTokenizer().tokenize(decomposed) == WordTokenizer().tokenize(composed) == ["caf\u00e9"]
    assert WordTokenizer(lowercase=False).tokenize("The CAT") == ["The", "CAT"]


def test_word_detokenize_attaches_punctuation():
    tok = WordTokenizer(lowercase=False)
    text = "Well, (really) it works!"
    assert tok.detokenize(tok.tokenize(text)) == text


def test_char_tokenizer_is_lossless():
    text = "A\u0301b \u00e9\n\t\u0928\u094d!"
    tok = CharTokenizer()
    assert tok.tokenize(text) == list(text)
    assert tok.detokenize(tok.tokenize(text)) == text


def test_config_round_trip_through_json():
    for tok in (WordTokenizer(), WordTokenizer(lowercase=False), CharTokenizer()):
        config = json.loads(json.dumps(tok.to_config()))
        assert tokenizer_from_config(config) == tok


def test_bad_arguments():
    with pytest.raises(TypeError, match="lowercase must be a bool, got 'yes'"):
        WordTokenizer(lowercase="yes")
    with pytest.raises(ValueError, match="'type' one of"):
        tokenizer_from_config({"type": "bpe"})
    with pytest.raises(ValueError, match=r"unknown keys \['lower'\]"):
        tokenizer_from_config({"type": "word", "lower": True})
    with pytest.raises(TypeError, match="text must be a str, got bytes"):
        WordTokenizer().tokenize(b"bytes")


def test_make_tokenizer_builds_what_a_data_config_names():
    from rnnkit.data.tokenizers import make_tokenizer

    assert make_tokenizer("word", lowercase=True).tokenize("Hello World") == ["hello", "world"]
    assert make_tokenizer("char", lowercase=True).tokenize("Hi") == ["H", "i"]
    with pytest.raises(ValueError, match="'bpe'"):
        make_tokenizer("bpe", lowercase=False)
