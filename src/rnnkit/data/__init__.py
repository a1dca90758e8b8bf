"""Data layer: reading labelled text files, bundled corpora, tokenizers, vocabularies and batching.

Typical classification pipeline::

    result = read_examples("reviews.csv")                  # ReadResult: examples, skipped, problems
    tok = WordTokenizer()
    vocab = Vocabulary.build([tok.tokenize(ex.text) for ex in result], min_freq=2)
    data = EncodedDataset.from_examples(result.examples, tok, vocab, labels=result.labels())
    for indices in BucketBatchSampler(data.lengths, batch_size=32):
        x, lengths, y = data.batch(indices)               # (B, T), (B,), (B,)

Language modelling::

    text, chars = load_bundled("shakespeare"), CharTokenizer()
    vocab = Vocabulary.build([chars.tokenize(text.train)])
    ids = torch.tensor(vocab.encode(chars.tokenize(text.train)))
    for x, y in StreamBatcher(ids, batch_size=32, bptt=70): ...
"""

from typing import TYPE_CHECKING

from rnnkit.lazy_names import lazy_names

# Imported on first use: the data configs the command line is generated from live in this package, and reading
# them must not load torch (batching, encoded datasets and streams need it).
_HOMES = {
    **dict.fromkeys(["BucketBatchSampler", "pad_batch", "padding_fraction"], "rnnkit.data.batching"),
    **dict.fromkeys(["ClassificationSplits", "TextSplits", "list_bundled", "load_bundled"], "rnnkit.data.bundled"),
    **dict.fromkeys(["EncodedDataset", "label_index"], "rnnkit.data.encoded"),
    "DataError": "rnnkit.data.errors",
    **dict.fromkeys(["Example", "ReadResult"], "rnnkit.data.examples"),
    **dict.fromkeys(["stratified_folds", "stratified_holdout"], "rnnkit.data.folds"),
    **dict.fromkeys(["check_labels", "detect_format", "read_csv", "read_examples", "read_fasttext", "read_folder",
                     "read_jsonl"], "rnnkit.data.readers"),
    "StreamBatcher": "rnnkit.data.streams",
    **dict.fromkeys(["CharTokenizer", "WordTokenizer", "tokenizer_from_config"], "rnnkit.data.tokenizers"),
    "Vocabulary": "rnnkit.data.vocab",
}
__getattr__, __dir__ = lazy_names(__name__, _HOMES)

if TYPE_CHECKING:
    from rnnkit.data.batching import BucketBatchSampler, pad_batch, padding_fraction
    from rnnkit.data.bundled import ClassificationSplits, TextSplits, list_bundled, load_bundled
    from rnnkit.data.encoded import EncodedDataset, label_index
    from rnnkit.data.errors import DataError
    from rnnkit.data.examples import Example, ReadResult
    from rnnkit.data.folds import stratified_folds, stratified_holdout
    from rnnkit.data.readers import (
        check_labels,
        detect_format,
        read_csv,
        read_examples,
        read_fasttext,
        read_folder,
        read_jsonl,
    )
    from rnnkit.data.streams import StreamBatcher
    from rnnkit.data.tokenizers import CharTokenizer, WordTokenizer, tokenizer_from_config
    from rnnkit.data.vocab import Vocabulary

__all__ = [
    "DataError", "Example", "ReadResult", "stratified_folds", "stratified_holdout",
    "read_csv", "read_jsonl", "read_fasttext", "read_folder", "read_examples", "detect_format", "check_labels",
    "ClassificationSplits", "TextSplits", "load_bundled", "list_bundled",
    "WordTokenizer", "CharTokenizer", "tokenizer_from_config",
    "Vocabulary",
    "BucketBatchSampler", "pad_batch", "padding_fraction", "EncodedDataset", "label_index",
    "StreamBatcher",
]
