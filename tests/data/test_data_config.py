"""ClassifierDataConfig picks a file's reader with the one format detection (``data.readers.detect_format``)."""

from __future__ import annotations

import pytest

from rnnkit.data.config import ClassifierDataConfig, read_file


def test_a_fasttext_extension_is_read_as_fasttext(tmp_path):
    path = tmp_path / "train.fasttext"
    path.write_text("__label__pos good film\n__label__neg bad film\n", encoding="utf-8")
    examples, _ = read_file(str(path), ClassifierDataConfig(data=str(path)))
    assert [(e.text, e.label) for e in examples] == [("good film", "pos"), ("bad film", "neg")]


def test_a_txt_file_without_label_lines_is_not_taken_for_fasttext(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("just some prose\nwith no labels at all\n", encoding="utf-8")
    with pytest.raises(ValueError, match="cannot tell the format"):
        read_file(str(path), ClassifierDataConfig(data=str(path)))


def test_an_unknown_extension_is_an_error_naming_the_file_not_csv(tmp_path):
    path = tmp_path / "train.data"
    path.write_text("text,label\ngood film,pos\nbad film,neg\n", encoding="utf-8")
    with pytest.raises(ValueError, match="train.data"):
        read_file(str(path), ClassifierDataConfig(data=str(path)))


def test_the_format_field_still_overrides_detection(tmp_path):
    path = tmp_path / "train.data"
    path.write_text("text,label\ngood film,pos\nbad film,neg\n", encoding="utf-8")
    examples, _ = read_file(str(path), ClassifierDataConfig(data=str(path), format="csv"))
    assert [e.label for e in examples] == ["pos", "neg"]
