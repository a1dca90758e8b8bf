"""Bundled data sets: canonical split sizes, labels, no leakage, Shakespeare file choice."""

from __future__ import annotations

import pytest

from rnnkit.data import ClassificationSplits, TextSplits, list_bundled, load_bundled
from rnnkit.data.bundled import split_bucket


@pytest.fixture(scope="module")
def bbc() -> ClassificationSplits:
    return load_bundled("bbc-news")


@pytest.fixture(scope="module")
def shakespeare() -> TextSplits:
    return load_bundled("shakespeare")


def test_bbc_split_sizes_and_labels(bbc):
    assert (len(bbc.train), len(bbc.valid), len(bbc.test)) == (1463, 214, 450)
    assert bbc.labels == ["business", "entertainment", "politics", "sport", "tech"]
    for split in (bbc.train, bbc.valid, bbc.test):
        assert {ex.label for ex in split} == set(bbc.labels)
        assert all(ex.text == ex.text.strip() and ex.text for ex in split)


def test_bbc_no_text_in_two_splits_and_buckets_match(bbc):
    texts = {name: [ex.text for ex in getattr(bbc, name)] for name in ("train", "valid", "test")}
    all_texts = [t for split in texts.values() for t in split]
    assert len(set(all_texts)) == len(all_texts) == 2127  # 2225 files - 98 exact duplicates
    assert all(split_bucket(t) >= 3 for t in texts["train"])
    assert all(split_bucket(t) == 2 for t in texts["valid"])
    assert all(split_bucket(t) < 2 for t in texts["test"])


def test_bbc_latin1_article_decoded(bbc):
    # sports/199.txt is the one Latin-1 file: its pound sign must come through as U+00A3.
    article = next(ex for split in (bbc.train, bbc.valid, bbc.test) for ex in split
                   if ex.source.endswith("sports/199.txt:1"))
    assert article.label == "sport"
    assert "\u00a315.8m" in article.text


def test_load_returns_fresh_lists(bbc):
    again = load_bundled("bbc-news")
    again.train.clear()
    assert len(load_bundled("bbc-news").train) == 1463


def test_shakespeare_files_and_contents(shakespeare):
    assert shakespeare.sources["valid"] == ["macbeth_gut.txt", "twelfth_night_gut.txt"]
    assert shakespeare.sources["test"] == ["hamlet_gut.txt", "tempest_gut.txt"]
    train_files = shakespeare.sources["train"]
    assert len(train_files) == 38 and train_files == sorted(train_files)
    assert all(name.endswith("_gut.txt") for name in train_files)
    assert not set(train_files) & {"macbeth_gut.txt", "hamlet_gut.txt", "metadata.txt"}
    assert shakespeare.valid.startswith("MACBETH\n\nby William Shakespeare")
    # Files are joined by exactly one blank line (the texts carry no trailing newline).
    assert "[Flourish. Exeunt.]\n\nTWELFTH NIGHT; OR, WHAT YOU WILL\n\nby William Shakespeare" in shakespeare.valid
    assert shakespeare.test.startswith("HAMLET, PRINCE OF DENMARK\n\nby William Shakespeare")
    assert "THE TEMPEST\n\nby William Shakespeare" in shakespeare.test
    assert train_files[0] == "alls_well_that_ends_well_gut.txt"
    assert shakespeare.train.startswith("ALL'S WELL THAT ENDS WELL\n\nby William Shakespeare")
    assert "MACBETH\n\nby" not in shakespeare.train and "\r" not in shakespeare.train
    assert len(shakespeare.train) > 10 * len(shakespeare.valid) > 0


def test_list_bundled_and_unknown_name(bbc, shakespeare):
    listing = {entry["name"]: entry for entry in list_bundled()}
    assert listing["bbc-news"]["kind"] == "classification"
    assert listing["bbc-news"]["sizes"] == {"train": 1463, "valid": 214, "test": 450}
    assert listing["shakespeare"]["kind"] == "text"
    assert listing["shakespeare"]["sizes"] == {s: len(getattr(shakespeare, s)) for s in ("train", "valid", "test")}
    assert all(entry["description"] for entry in listing.values())
    with pytest.raises(ValueError, match=r"\['bbc-news', 'shakespeare'\], got 'imdb'"):
        load_bundled("imdb")
