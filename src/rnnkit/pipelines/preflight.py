"""Checks that run before any work: arguments, input files, output locations and sizes.

``train_classifier``, ``train_language_model`` and ``rnnkit eval`` call a ``check_*`` here first, so a
mistake costs a second, not a training run: an unreadable ``--test-data`` or an ``--out`` below a file
used to surface only when the model was saved. (predict and generate write nothing: they check their
options before the first output, and ``load_checkpoint`` names what a model folder lacks.) Nothing here
writes anything the user can see (the writability probe makes and removes an empty folder). Every error
is one line naming the argument, file or field. The label sets are checked where the data is read
(``data.config.load_classification_data``), the token counts of a corpus once it is tokenized.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from rnnkit.data import DataError
from rnnkit.data.bundled import bundled_kind, bundled_names
from rnnkit.models.choices import parse_pooling
from rnnkit.models.config import ClassifierConfig, EncoderConfig, LanguageModelConfig
from rnnkit.models.pretrained import wants_glove
from rnnkit.outputs import output_folder_problem
from rnnkit.validation import check_probability

if TYPE_CHECKING:  # both modules import this one
    from rnnkit.data.config import ClassifierDataConfig
    from rnnkit.data.corpus import CorpusConfig
    from rnnkit.training.pretrain_config import PretrainConfig

# Float32 weights, their gradients, AdamW's two moments and the trainer's copy of the best weights.
_COPIES_IN_MEMORY = 5
_REPORT_BYTES = 2 << 20  # metrics, report text and two PNGs, generously


def check_classifier_run(data: ClassifierDataConfig, model: ClassifierConfig, out_dir: str | os.PathLike,
                         label_smoothing: float, pretrain: PretrainConfig | None = None) -> None:
    """Everything ``train_classifier`` can check before reading the data or building the model."""
    check_probability("label_smoothing", label_smoothing)
    _check_inputs(data.data, data.valid_data, data.test_data, data.format, "classification")
    if pretrain is not None:
        check_pretraining(pretrain, data, model)
    wants_glove(data.embeddings, model.embedding_dim, data.tokenizer)
    vocab = (data.max_vocab or 0) + data.glove_words
    # Two classes at least: the labels are known only once the data is read (check_classifier_sizes then).
    check_run_out(out_dir)
    check_classifier_sizes(model, vocab, 2, out_dir)


def check_cross_fit(model: ClassifierConfig, pooled: int, data: str) -> None:
    """Once the data is read, before anything is said about it: ``cross_fit`` needs an example per fold."""
    if model.cross_fit and pooled < model.ensemble:
        raise ValueError(f"cross_fit with ensemble={model.ensemble} cuts the pooled training and validation examples "
                         f"into {model.ensemble} folds, but {data} gives {pooled}: lower --ensemble to at most "
                         f"{max(2, pooled)}, drop --cross-fit, or give more data")


def check_classifier_sizes(model: ClassifierConfig, vocab_size: int, num_labels: int,
                           out_dir: str | os.PathLike) -> None:
    """Refuse a classifier too big for this machine before it is built: its head and n-gram table grow with the
    number of labels (known once the data is read), the table with ngram_buckets too."""
    per_member = stack_parameters(model, vocab_size)
    features = (model.hidden_size * (2 if model.bidirectional else 1)
                + (model.embedding_dim if model.pool_embeddings else 0)) * len(parse_pooling(model.pooling))
    hint = "hidden_size, embedding_dim, num_layers or max_vocab"
    if model.ngrams != "none":
        width = num_labels if model.ngrams == "logits" else model.ngram_dim
        table = (vocab_size + model.ngram_buckets) * width
        per_member += table
        features += 0 if model.ngrams == "logits" else model.ngram_dim
        if table * 2 > per_member:  # the n-gram table is most of the model: say how to shrink it
            shape = f"{num_labels} labels" if model.ngrams == "logits" else f"ngram_dim {model.ngram_dim}"
            hint = (f"ngram_buckets ({model.ngram_buckets}; the n-gram table has (vocabulary + ngram_buckets) x "
                    f"{shape} weights), or choose ngrams=features or ngrams=none")
    per_member += (features + 1) * num_labels
    check_sizes(model.ensemble * per_member, out_dir, "the classifier", hint)


def check_pretraining(pretrain: PretrainConfig, data: ClassifierDataConfig, model: ClassifierConfig) -> None:
    """``--pretrain-lm``, ``--unlabeled`` and ``--encoder``: readable inputs and an encoder that fits the model."""
    from rnnkit.models.encoder_lm import lm_directions
    from rnnkit.pipelines.encoders import find_encoder

    if pretrain.unlabeled:
        check_input(pretrain.unlabeled, "unlabeled", "text")
    if pretrain.pretrained and data.tokenizer != "word":
        raise ValueError(f"{'pretrain_lm' if pretrain.pretrain_lm else 'encoder'} needs tokenizer=word (the encoder "
                         f"is a word-level language model), got tokenizer={data.tokenizer!r}")
    if pretrain.pretrain_lm:
        lm_directions(model)
    if pretrain.encoder:
        find_encoder(pretrain.encoder, model)


def check_language_model_run(corpus: CorpusConfig, model: LanguageModelConfig, out_dir: str | os.PathLike) -> None:
    """Everything ``train_language_model`` can check before reading the text or building the model."""
    _check_inputs(corpus.data, corpus.valid_data, corpus.test_data, "text", "text")
    vocab = corpus.max_vocab or (256 if corpus.tokenizer == "char" else 0)
    params = language_model_parameters(model, vocab)
    check_run_out(out_dir)
    check_sizes(params, out_dir, "the language model")


def check_corpus_sizes(corpus: CorpusConfig, train_tokens: int, valid_tokens: int, batch_size: int,
                       test_tokens: int | None = None) -> None:
    """A language model needs 2 tokens a stream (an input and its target), and 2 to score a text."""
    if train_tokens < 2 * batch_size:
        raise DataError(corpus.data, message=f"the training text has {train_tokens} tokens, too few for "
                        f"batch_size={batch_size} parallel streams of at least 2: give at least {2 * batch_size} "
                        f"tokens or a batch_size of at most {max(1, train_tokens // 2)}")
    if valid_tokens < 2:
        where = corpus.valid_data or f"{corpus.data} (its held-out end)"
        raise DataError(where, message=f"the validation text has {valid_tokens} token(s); scoring needs at least 2")
    if test_tokens is not None and test_tokens < 2:
        raise DataError(corpus.test_data or "test_data",
                        message=f"the test text has {test_tokens} token(s); scoring needs at least 2")


def check_eval_run(data: str, report: str | None, format: str = "auto") -> None:
    """``rnnkit eval``: the data file can be read and the report folder written, before the model runs."""
    check_input(data, "data", format)
    if report:
        check_output_dir(report, option="report")


def check_input(path: str | os.PathLike, option: str, format: str = "auto") -> None:
    """``path`` exists and is what ``format`` reads: a regular, readable, non-empty file, or a folder."""
    if not str(path).strip():
        raise ValueError(f"{option} is empty: give a file or folder")
    p = Path(path)
    if not p.exists():
        hint = f" (not a bundled data set either: {bundled_names()})" if option == "data" else ""
        raise DataError(path, message=f"no such file or folder, given as {option}{hint}")
    if p.is_dir():
        if format not in ("auto", "folder", "text"):
            raise DataError(path, message=f"{option} is a folder, but format={format} reads one file "
                            "(format=folder reads a folder of documents)")
        if not os.access(p, os.R_OK | os.X_OK):
            raise DataError(path, message=f"{option} is a folder that cannot be read (permission denied)")
        return
    if format == "folder":
        raise DataError(path, message=f"{option} is a file, but format=folder reads a folder of documents")
    mode = p.stat().st_mode
    if stat.S_ISFIFO(mode):
        # A pipe (`--data <(zcat train.csv.gz)`) is read once: opening it here would take the data from the run.
        if not os.access(p, os.R_OK):
            raise DataError(path, message=f"{option} cannot be read (permission denied)")
        return
    if not stat.S_ISREG(mode):
        raise DataError(path, message=f"{option} is not a regular file (a device or socket)")
    try:
        with p.open("rb"):
            pass
    except OSError as err:
        raise DataError(path, message=f"{option} cannot be read ({err.strerror})") from err
    if p.stat().st_size == 0:
        raise DataError(path, message=f"{option} is empty")


def check_output_dir(path: str | os.PathLike, option: str = "out_dir") -> None:
    """``path`` is a folder that can be made or written in place (``rnnkit eval --report``)."""
    _probe_writable(_nearest_folder(path, option, Path(path)), option, Path(path))


def check_run_out(path: str | os.PathLike, option: str = "out_dir") -> None:
    """``path`` (a training run's ``--out``) can be replaced by a folder made beside it.

    A run stages everything in ``.NAME.staging-*`` beside ``--out`` and swaps it in whole when complete
    (``training.rundir``), so what must be writable is the parent, and what an existing ``--out`` holds does
    not matter: ``RunFolder.open`` refuses an existing run unless ``--overwrite`` or ``--resume`` (it also
    knows the interrupted runs beside it), and with them the old folder is replaced as a whole.
    """
    p = Path(path)
    _probe_writable(_nearest_folder(path, option, p.parent), option, p)


def _nearest_folder(path: str | os.PathLike, option: str, start: Path) -> Path | None:
    """The folder the run would write in: ``start`` or, where it is missing, its nearest existing parent."""
    problem = output_folder_problem(path, option)
    if problem is not None:
        raise ValueError(problem)
    return next((a for a in [start, *start.absolute().parents] if a.exists()), None)


def _probe_writable(folder: Path | None, option: str, target: Path) -> None:
    # os.access answers for the permission bits only (root passes everything), not for read-only or special
    # file systems, so try for real with an empty folder that is removed at once.
    if folder is None:
        return
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".rnnkit-probe-", dir=folder))
    except OSError as err:
        where = "" if folder == target else f" (written in {folder})"
        raise ValueError(f"{option} {target} is not writable{where}: {err.strerror}") from err


def stack_parameters(config: EncoderConfig, vocab_size: int) -> int:
    """Parameters of the embedding and the recurrent stack (what dominates a classifier)."""
    from rnnkit.models.encoder import make_recurrent

    return vocab_size * config.embedding_dim + _count_built(lambda: make_recurrent(config, config.embedding_dim))


def language_model_parameters(config: LanguageModelConfig, vocab_size: int) -> int:
    """Parameters of the whole language model (embedding, stack, residual blocks, decoder)."""
    from rnnkit.models.language_model import RNNLanguageModel

    return _count_built(lambda: RNNLanguageModel(config, max(vocab_size, 1)))  # 1: the pad row, when unknown


def _count_built(build) -> int:
    """Build the module on the meta device (shapes, no memory, no values) and count its parameters: the cells and
    blocks say what they hold, so no formula here repeats them (a shared parameter counts once)."""
    import torch

    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")  # what building warns of is said again when the model is built
        return sum(p.numel() for p in build().parameters())


def check_sizes(params: int, out_dir: str | os.PathLike, what: str,
                hint: str = "hidden_size, embedding_dim, num_layers or max_vocab") -> None:
    """Refuse a model that cannot fit in this machine's memory, or whose checkpoint cannot fit on the disk."""
    need = params * 4 * _COPIES_IN_MEMORY
    memory = _physical_memory()
    if memory and need > memory:
        raise ValueError(f"{what} would have about {params:.3g} parameters, {_gb(need)} to train (weights, "
                         f"gradients, optimizer state), more than this machine's memory ({_gb(memory)}): "
                         f"lower {hint}")
    folder = next((a for a in [Path(out_dir).absolute(), *Path(out_dir).absolute().parents] if a.is_dir()), None)
    if folder is None:
        return
    # The old and the new checkpoint sit side by side for a moment when one replaces the other.
    disk = 2 * params * 4 + _REPORT_BYTES
    free = shutil.disk_usage(folder).free
    if disk > free:
        raise ValueError(f"out_dir {out_dir}: {_gb(free)} free on its disk, {what} needs about {_gb(disk)}")


def _check_inputs(data: str, valid: str | None, test: str | None, format: str, kind: str) -> None:
    found = bundled_kind(data) if data and not Path(data).exists() else None
    if found is None:
        check_input(data, "data", format)
    elif found != kind:
        use = "rnnkit train-lm" if found == "text" else "rnnkit train"
        raise ValueError(f"data={data!r} is a bundled {found} data set, not a {kind} one (it is for {use})")
    for option, path in (("valid_data", valid), ("test_data", test)):
        if path:
            check_input(path, option, format)


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gb(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"
