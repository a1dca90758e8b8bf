"""Readers on small fixture files: good input, every malformed case, skip mode, presets."""

from __future__ import annotations

import json
import pickle

import pytest

from rnnkit.data import (
    DataError,
    Example,
    check_labels,
    detect_format,
    read_csv,
    read_examples,
    read_fasttext,
    read_folder,
    read_jsonl,
)


def write(tmp_path, name: str, content: str | bytes):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def assert_located(err: DataError, path, line, field):
    """The error names the file, the line and the field, in the attributes and in the message."""
    assert err.path == str(path)
    assert err.line == line
    assert err.field == field
    message = str(err)
    assert message.startswith(str(path))
    if line is not None:
        assert f"line {line}" in message
    if field is not None:
        assert f"field {field!r}" in message


# -- DataError -------------------------------------------------------------------------------------

def test_data_error_renders_location_and_pickles():
    err = DataError("reviews.csv", 12, "label", "empty label")
    assert str(err) == "reviews.csv, line 12, field 'label': empty label"
    assert str(DataError("reviews.csv", message="file is empty")) == "reviews.csv: file is empty"
    assert isinstance(err, ValueError)
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and again.line == 12 and again.field == "label"


# -- CSV / TSV -------------------------------------------------------------------------------------

def test_csv_by_name_with_quotes_and_blank_lines(tmp_path):
    path = write(tmp_path, "r.csv", 'id,text,label\n1,"good, really",pos\n\n2,  bad  ,neg\n3,"two\nlines",pos\n')
    result = read_csv(path)
    assert [(e.text, e.label) for e in result] == [("good, really", "pos"), ("bad", "neg"), ("two\nlines", "pos")]
    assert [e.source for e in result] == [f"{path}:2", f"{path}:4", f"{path}:5"]
    assert result.skipped == 0 and result.problems == [] and result.labels() == ["neg", "pos"]


def test_tsv_delimiter_from_extension_and_no_quoting(tmp_path):
    # A stray quote must not swallow the following lines in a TSV.
    path = write(tmp_path, "r.tsv", 'text\tlabel\nhe said "hi\tpos\nnext one\tneg\n')
    result = read_csv(path)
    assert [(e.text, e.label) for e in result] == [('he said "hi', "pos"), ("next one", "neg")]


def test_csv_columns_by_index_joined_and_unlabelled(tmp_path):
    path = write(tmp_path, "r.csv", "a,Title,Body\nx,Hello,world\ny,,only body\n")
    result = read_csv(path, text_columns=(1, "Body"), label_column=None)
    assert [(e.text, e.label) for e in result] == [("Hello world", None), ("only body", None)]


def test_utf8_bom_is_not_part_of_the_header(tmp_path):
    path = write(tmp_path, "r.csv", b"\xef\xbb\xbftext,label\nhi,a\n")
    assert read_csv(path).examples[0].text == "hi"


def test_ag_news_preset(tmp_path):
    path = write(tmp_path, "train.csv", '"3","Wall St. Bears","Short-sellers, see green."\n'
                                        '"4","New chip","Faster, cooler."\n"1","Summit",""\n')
    result = read_csv(path, preset="ag_news")
    assert [(e.label, e.text) for e in result] == [
        ("Business", "Wall St. Bears Short-sellers, see green."), ("Sci/Tech", "New chip Faster, cooler."),
        ("World", "Summit")]
    bad = write(tmp_path, "bad.csv", '"5","Title","Body"\n')
    with pytest.raises(DataError) as info:
        read_csv(bad, preset="ag_news")
    assert_located(info.value, bad, 1, "column 0")
    assert "unknown label '5'" in str(info.value)
    with pytest.raises(ValueError, match="preset 'ag_news' sets header"):
        read_csv(path, preset="ag_news", header=False)


def test_preset_conflicts_and_argument_checks(tmp_path):
    path = write(tmp_path, "r.csv", "text,label\nhi,a\n")
    with pytest.raises(ValueError, match="preset 'ag_news' sets text_columns"):
        read_csv(path, preset="ag_news", text_columns=(3,))
    with pytest.raises(ValueError, match="preset must be one of"):
        read_csv(path, preset="imdb")
    with pytest.raises(ValueError, match="on_error must be one of"):
        read_csv(path, on_error="ignore")
    with pytest.raises(ValueError, match="header=False"):
        read_csv(path, header=False)
    with pytest.raises(ValueError, match="encoding must be a known text encoding, got 'utf-9'"):
        read_csv(path, encoding="utf-9")


@pytest.mark.parametrize(
    ("content", "line", "field", "reason"),
    [
        ("text,label\n   ,pos\n", 2, "text", "empty text"),
        ("text,label\nhello,\n", 2, "label", "empty label"),
        ("text,label\nhello\n", 2, "label", "row has 1 fields, expected 2"),
        ("text,label\nhello,pos,extra\n", 2, None, "row has 3 fields, expected 2"),
        (b"text,label\nok,pos\ncaf\xe9,pos\n", 3, "text", "not valid utf-8"),
        ('text,label\nok,pos\n"bad"quote,neg\n', 3, None, "malformed CSV row: ',' expected after '\"'"),
        ('text,label\nok,pos\n"never closed,neg\nmore,pos\n', 3, None, "(lines 3-4): unexpected end of data, an "),
    ],
    ids=["empty-text", "empty-label", "short-row", "long-row", "undecodable", "bad-quote", "unclosed-quote"],
)
def test_csv_malformed_rows_raise_located_errors(tmp_path, content, line, field, reason):
    path = write(tmp_path, "reviews.csv", content)
    with pytest.raises(DataError) as info:
        read_csv(path)
    assert_located(info.value, path, line, field)
    assert reason in str(info.value)


def test_csv_missing_column_and_empty_file(tmp_path):
    path = write(tmp_path, "r.csv", "body,label\nhi,a\n")
    with pytest.raises(DataError) as info:
        read_csv(path, on_error="skip")  # a wrong column is fatal even when skipping
    assert_located(info.value, path, 1, "text")
    assert "column not found; the header has ['body', 'label']" in str(info.value)
    empty = write(tmp_path, "empty.csv", "\n  \n")
    with pytest.raises(DataError, match="empty.csv: file is empty"):
        read_csv(empty)
    header_only = write(tmp_path, "h.csv", "text,label\n")
    with pytest.raises(DataError, match="no usable examples"):
        read_csv(header_only)


def test_csv_skip_mode_counts_and_reports(tmp_path):
    path = write(tmp_path, "r.csv", b"text,label\ngood,a\n,b\nc\xff,c\nfine,\nshort\nlast,b\n")
    result = read_csv(path, on_error="skip")
    assert [e.text for e in result] == ["good", "last"]
    assert result.skipped == 4
    assert [p.split(":")[0] for p in result.problems] == [f"{path}, line {n}, field {f!r}" for n, f in
                                                           [(3, "text"), (4, "text"), (5, "label"), (6, "label")]]


def test_csv_skip_mode_recovers_after_a_quoting_error(tmp_path):
    path = write(tmp_path, "r.csv", 'text,label\n"bad"quote,a\nfine,b\n')
    result = read_csv(path, on_error="skip")
    assert [(e.text, e.source) for e in result] == [("fine", f"{path}:3")]
    assert result.skipped == 1 and "line 2" in result.problems[0]


def test_all_rows_bad_is_an_error_even_when_skipping(tmp_path):
    path = write(tmp_path, "r.csv", "text,label\n,a\n,b\n")
    with pytest.raises(DataError, match=r"no usable examples \(2 records skipped; first: .*line 2"):
        read_csv(path, on_error="skip")


def test_latin1_fallback_per_field(tmp_path):
    path = write(tmp_path, "r.csv", b"text,label\n" + "caf\u00e9 \u00a315,a\n".encode("latin-1")
                 + "na\u00efve,b\n".encode())
    result = read_csv(path, fallback_encoding="latin-1")
    assert [e.text for e in result] == ["caf\u00e9 \u00a315", "na\u00efve"]


# -- JSON Lines --------------------------------------------------------------------------------------

def test_jsonl_reads_fields_and_int_labels(tmp_path):
    rows = [{"text": "hi there", "label": "pos"}, {"text": "bye", "label": 3}, {"text": "line\u2028sep", "label": "x"}]
    path = write(tmp_path, "d.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n\n")
    result = read_jsonl(path)
    assert [(e.text, e.label) for e in result] == [("hi there", "pos"), ("bye", "3"), ("line\u2028sep", "x")]
    assert [e.source for e in result] == [f"{path}:1", f"{path}:2", f"{path}:3"]


@pytest.mark.parametrize(
    ("line", "field", "reason"),
    [
        ('{"text": "a", "label": "x"', None, "invalid JSON"),
        ('["a", "x"]', None, "expected a JSON object, got list"),
        ('{"label": "x"}', "text", "missing text"),
        ('{"text": 5, "label": "x"}', "text", "text must be a string"),
        ('{"text": "a"}', "label", "missing label"),
        ('{"text": "a", "label": null}', "label", "missing label"),
        ('{"text": "a", "label": " "}', "label", "empty label"),
        ('{"text": "a", "label": [1]}', "label", "label must be a string or an integer"),
    ],
)
def test_jsonl_malformed_lines(tmp_path, line, field, reason):
    path = write(tmp_path, "d.jsonl", '{"text": "fine", "label": "x"}\n' + line + "\n")
    with pytest.raises(DataError) as info:
        read_jsonl(path)
    assert_located(info.value, path, 2, field)
    assert reason in str(info.value)
    skipped = read_jsonl(path, on_error="skip")
    assert len(skipped) == 1 and skipped.skipped == 1


# -- fastText ----------------------------------------------------------------------------------------

def test_fasttext_first_label_wins(tmp_path):
    path = write(tmp_path, "d.txt", "__label__sport __label__news Great game __label__x\n\n__label__tech\tNew phone\n")
    result = read_fasttext(path)
    assert [(e.label, e.text) for e in result] == [("sport", "Great game __label__x"), ("tech", "New phone")]


@pytest.mark.parametrize(("line", "field", "reason"), [("no label here", "label", "missing label"),
                                                       ("__label__a   ", "text", "empty text"),
                                                       ("__label__ text", "label", "empty label")])
def test_fasttext_malformed(tmp_path, line, field, reason):
    path = write(tmp_path, "d.txt", "__label__a ok\n" + line + "\n")
    with pytest.raises(DataError) as info:
        read_fasttext(path)
    assert_located(info.value, path, 2, field)
    assert reason in str(info.value)


# -- folders -----------------------------------------------------------------------------------------

def test_folder_reader_sorted_with_latin1_fallback(tmp_path):
    write(tmp_path, "corpus/pos/b.txt", "  second  \n")
    write(tmp_path, "corpus/pos/a.txt", "first")
    write(tmp_path, "corpus/neg/1.txt", "\u00a3 price".encode("latin-1"))
    write(tmp_path, "corpus/neg/.DS_Store", b"\x00\x01")
    write(tmp_path, "corpus/README", "not a document")
    root = tmp_path / "corpus"
    with pytest.raises(DataError) as info:
        read_folder(root)
    assert_located(info.value, root / "neg" / "1.txt", 1, "text")
    result = read_folder(root, fallback_encoding="latin-1")
    assert [(e.label, e.text) for e in result] == [("neg", "\u00a3 price"), ("pos", "first"), ("pos", "second")]
    assert result.examples[1].source == f"{root / 'pos' / 'a.txt'}:1"


def test_folder_reader_empty_document_and_no_classes(tmp_path):
    write(tmp_path, "c/a/1.txt", "text")
    write(tmp_path, "c/a/2.txt", "\n \n")
    result = read_folder(tmp_path / "c", on_error="skip")
    assert len(result) == 1 and result.skipped == 1
    assert result.problems == [f"{tmp_path / 'c' / 'a' / '2.txt'}, line 1, field 'text': empty text"]
    write(tmp_path, "flat/doc.txt", "x")
    with pytest.raises(DataError, match="no class sub-folders"):
        read_folder(tmp_path / "flat")


# -- dispatch and label check ------------------------------------------------------------------------

def test_read_examples_dispatch(tmp_path):
    csv_path = write(tmp_path, "a.csv", "text,label\nhi,x\n")
    tsv_path = write(tmp_path, "a.tab", "text\tlabel\nhi,there\tx\n")
    jsonl_path = write(tmp_path, "a.jsonl", '{"body": "hi", "label": "x"}\n')
    ft_path = write(tmp_path, "a.txt", "\n__label__x hi\n")
    write(tmp_path, "dir/x/1.txt", "hi")
    assert detect_format(tmp_path / "dir") == "folder" and detect_format(ft_path) == "fasttext"
    assert read_examples(csv_path).examples == [Example("hi", "x", f"{csv_path}:2")]
    assert read_examples(tsv_path).examples[0].text == "hi,there"
    assert read_examples(jsonl_path, text_field="body").examples[0].text == "hi"
    assert read_examples(ft_path).examples[0].label == "x"
    assert read_examples(tmp_path / "dir").examples[0].label == "x"
    plain = write(tmp_path, "notes.txt", "just text\n")
    with pytest.raises(ValueError, match="cannot tell the format"):
        read_examples(plain)
    with pytest.raises(ValueError, match="format must be 'auto' or one of"):
        read_examples(csv_path, format="xml")


def test_check_labels_names_file_and_line(tmp_path):
    path = write(tmp_path, "test.csv", "text,label\na,pos\nb,maybe\nc,unsure\n")
    examples = read_csv(path).examples
    check_labels(examples[:1], {"pos", "neg"})
    with pytest.raises(DataError) as info:
        check_labels(examples, ["pos", "neg"])
    assert_located(info.value, path, 3, "label")
    assert "label 'maybe' was not seen in training (known: ['neg', 'pos']); 2 examples" in str(info.value)
