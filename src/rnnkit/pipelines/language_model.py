"""Train a language model on text: ``train_language_model(...)`` (the saved object is ``saved.language_model``).

A saved language model is a folder like a classifier's: ``model.safetensors`` and
``config.json`` (model config, vocabulary, tokenizer settings, metrics).
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from rnnkit.data import DataError, Vocabulary
from rnnkit.data.corpus import CorpusConfig, load_corpus
from rnnkit.data.mmap_stream import build_cache, open_cache, text_bytes
from rnnkit.data.tokenizers import make_tokenizer
from rnnkit.evaluation import plot_training_curves, write_report
from rnnkit.models.config import LanguageModelConfig
from rnnkit.models.language_model import RNNLanguageModel
from rnnkit.pipelines.preflight import check_corpus_sizes, check_language_model_run
from rnnkit.saved.language_model import LanguageModel
from rnnkit.tasks.language_model import LanguageModelTask, score_ids
from rnnkit.training import TrainConfig, Trainer
from rnnkit.training.defaults import LM_TRAIN_DEFAULTS
from rnnkit.training.distributed import World, setup_world
from rnnkit.training.rundir import RunDiverged, RunFolder, abandon, check_result

# mmap="auto" streams texts larger than this through a memory-mapped token-id cache instead of reading them whole.
MMAP_AUTO_BYTES = 256 << 20


def train_language_model(data: str | CorpusConfig = "shakespeare", out_dir: str | Path = "runs/lm",
                         model: LanguageModelConfig | None = None, train: TrainConfig | None = None,
                         device: str = "cpu", autocast: str | None = None, overwrite: bool = False,
                         resume: bool = False, **corpus_options) -> tuple[LanguageModel, dict]:
    """Train on a corpus, keep the best model by validation bits per character (or perplexity), report.

    Output safety and ``overwrite`` / ``resume`` work as for ``train_classifier``. Under torchrun every
    process calls this; ``train.batch_size`` streams are shared among them and rank 0 alone writes and
    reports (the other ranks return an empty summary).
    """
    corpus = data if isinstance(data, CorpusConfig) else CorpusConfig(data=data, **corpus_options)
    model_config = model or LanguageModelConfig()
    train_config = train or TrainConfig(**LM_TRAIN_DEFAULTS)
    check_language_model_run(corpus, model_config, out_dir)
    world = setup_world(device, autocast)
    settings = {"corpus": asdict(corpus), "model": asdict(model_config), "train": asdict(train_config)}
    run = RunFolder(out_dir, overwrite=overwrite, resume=resume, command="rnnkit train-lm").open_in(world, settings)
    try:
        return _train_language_model(run, corpus, model_config, train_config, world)
    except BaseException as error:
        abandon(run, error)
        raise


def _train_language_model(run: RunFolder, corpus: CorpusConfig, model_config: LanguageModelConfig,
                          train_config: TrainConfig, world: World) -> tuple[LanguageModel, dict]:
    """The run's steps: data and vocabulary, the model, training, report, publish."""
    start = time.monotonic()
    tokenizer = make_tokenizer(corpus.tokenizer, corpus.lowercase)
    vocab, train_ids, valid_ids, test_ids = _read_corpus(run, corpus, tokenizer, train_config, world)
    lm, task, result = _train(run, corpus, model_config, train_config, world, tokenizer, vocab, train_ids, valid_ids)
    diverged = check_result(run, result)
    if not world.is_main:
        return lm, {}
    summary = _report(lm, task, result, valid_ids, test_ids, time.monotonic() - start)
    _publish(run, lm, summary, result.history, task.monitor)
    if diverged:
        raise RunDiverged(diverged)
    return lm, summary


def _read_corpus(run: RunFolder, corpus: CorpusConfig, tokenizer, train_config: TrainConfig, world: World):
    """(vocabulary, train, valid and test token ids): the text read, encoded, and checked against the batch."""
    vocab, name, train_ids, valid_ids, test_ids = _corpus_ids(corpus, tokenizer, run.path, world, run.out)
    check_corpus_sizes(corpus, train_ids.numel(), valid_ids.numel(), train_config.batch_size,
                       None if test_ids is None else test_ids.numel())
    if world.is_main:
        print(f"corpus {name}: {train_ids.numel()} train / {valid_ids.numel()} valid tokens, "
              f"vocabulary {len(vocab)}", file=sys.stderr, flush=True)
    return vocab, train_ids, valid_ids, test_ids


def _train(run: RunFolder, corpus: CorpusConfig, model_config: LanguageModelConfig, train_config: TrainConfig,
           world: World, tokenizer, vocab: Vocabulary, train_ids, valid_ids):
    """(the language model, its task, the fit's result); the best model is saved as it is found."""
    out_dir = run.path
    torch.manual_seed(train_config.seed)
    net = RNNLanguageModel(model_config, len(vocab), vocab.pad_id)
    net.to(world.device)
    lm = LanguageModel(net, tokenizer, vocab, {"corpus_config": asdict(corpus), "train_config": asdict(train_config)})
    task = LanguageModelTask(train_ids, valid_ids, train_config.batch_size, corpus.bptt, corpus.random_length,
                             seed=train_config.seed, unit=corpus.tokenizer, eval_streams=corpus.eval_streams,
                             world=world)
    trainer = Trainer(net, task, train_config, out_dir, save_best=lambda _: lm.save(out_dir / "model"),
                      state_path=run.state_path(), world=world)
    if run.resume:
        trainer.load_state(run.state_path())
    return lm, task, trainer.fit()


def _report(lm: LanguageModel, task: LanguageModelTask, result, valid_ids, test_ids, seconds: float) -> dict:
    """The run's summary, also kept in the model's metrics."""
    net = lm.model
    summary = {"stopped": result.reason, "train_seconds": round(seconds, 1), "steps": result.steps,
               **{k: v for k, v in (result.best or {}).items() if k.startswith("valid_")}}
    # The reported figures read each split as one stream with the state carried (exact, slower than training-time
    # validation, which may score several streams side by side).
    summary.update({f"final_valid_{k}": v for k, v in task.metrics(*score_ids(net, valid_ids)).items()})
    if test_ids is not None and test_ids.numel() > 1:
        test = task.metrics(*score_ids(net, test_ids))
        summary.update({f"test_{k}": v for k, v in test.items()})
    rates = [h["tokens_per_s"] for h in result.history if h.get("tokens_per_s")]
    summary["train_tokens_per_s"] = round(sum(rates) / len(rates), 1) if rates else None
    lm.meta["metrics"] = summary
    return summary


def _publish(run: RunFolder, lm: LanguageModel, summary: dict, history: list[dict], monitor: str) -> None:
    """The model, its report and the validation-against-time figure, then the folder moved to ``out_dir``."""
    out_dir = run.path
    lm.save(out_dir / "model")
    write_report(out_dir / "report", {"summary": summary}, history)
    if history:
        # Validation bits per character against wall-clock time: what a time budget buys.
        plot_training_curves(history, out_dir / "report" / "valid_vs_time.png",
                             metrics=["train_loss", f"valid_{monitor}"], x="elapsed")
    run.publish()
    print(f"saved {run.out / 'model'}; report in {run.out / 'report'}", file=sys.stderr, flush=True)


def _corpus_ids(corpus: CorpusConfig, tokenizer, out_dir: Path, world: World, previous: Path | None = None):
    """(vocabulary, corpus name, train, valid and test ids or None): read whole, or memory-mapped from a cache.

    ``previous``: the ``--out`` this run will replace; a token-id cache of the same files there is reused (the run
    itself writes into a new staging folder, so it would otherwise encode the whole corpus again)."""
    path = Path(corpus.data)
    streamed = corpus.mmap == "on" or (corpus.mmap == "auto" and path.exists()
                                       and text_bytes(path) > MMAP_AUTO_BYTES)
    if streamed:
        if not path.exists():
            raise DataError(corpus.data, message="mmap='on' needs a text file or folder (not a bundled corpus)")
        # Rank 0 writes the cache (an error there is raised on every rank), then every rank maps it.
        folder = world.on_main(lambda: build_cache(
            out_dir / "token-ids", corpus.data, tokenizer, corpus.min_freq, corpus.max_vocab, corpus.valid_fraction,
            corpus.valid_data, corpus.test_data, reuse=None if previous is None else previous / "token-ids"))
        cached = open_cache(folder)
        return cached.vocab, path.name, cached.train, cached.valid, cached.test
    splits = load_corpus(corpus)
    train_tokens = tokenizer.tokenize(splits.train)
    vocab = Vocabulary.build([train_tokens], min_freq=corpus.min_freq, max_size=corpus.max_vocab)
    as_ids = lambda text: torch.tensor(vocab.encode(tokenizer.tokenize(text)), dtype=torch.long)  # noqa: E731
    test = as_ids(splits.test) if splits.test else None
    return vocab, splits.name, torch.tensor(vocab.encode(train_tokens), dtype=torch.long), as_ids(splits.valid), test
