"""``--pretrain-lm``: train a classifier's encoder as a word language model before it learns the labels.

The training texts (shuffled by the seed, whole texts; a ``lm_valid_fraction`` of them held out to report the
perplexity) and any ``--unlabeled`` text are joined into one token stream, read as ``pretrain_batch_size`` parallel
streams in windows of ``pretrain_bptt`` with the state carried (``LanguageModelTask``): the forward direction reads the
stream, the backward direction reads it reversed (so each text reversed), each with its own head (``EncoderLM``).
The validation and test texts are never read here.

Each direction is an ordinary ``Trainer`` run with its own resumable state (``resume/pretrain-<direction>.pt``) and log
(``pretrain/<direction>/log.jsonl``); when one ends, the encoder is written to ``RUN/encoder`` with the directions done
so far, so ``--resume`` after pre-training (or after one direction) does not redo it.
"""

from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import replace
from itertools import islice

import torch

from rnnkit.data import Example, Vocabulary
from rnnkit.data.corpus import text_files
from rnnkit.data.mmap_stream import iter_pieces, text_bytes
from rnnkit.models.encoder import Encoder
from rnnkit.models.encoder_lm import EncoderLM, LMHead, SampledSoftmax, lm_directions
from rnnkit.pipelines.encoders import ENCODER_DIR, save_encoder, strip_prefix
from rnnkit.tasks.language_model import LanguageModelTask, SampledLanguageModelTask
from rnnkit.training import TrainConfig, Trainer, load_checkpoint
from rnnkit.training.distributed import World
from rnnkit.training.pretrain_config import PretrainConfig
from rnnkit.training.rundir import RunFolder, check_result


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# The share of --pretrain-max-time that reading and tokenizing --unlabeled may take: a budget must bound the whole
# of pre-training, and a text of gigabytes takes minutes to read and tokenize before the first step.
READ_SHARE = 0.5
_READ_RECORD = "unlabeled-read.json"  # beside the training state: how much a resumed run reads again, to the piece


def read_unlabeled(run: RunFolder, path: str, tokenizer, max_time: float | None, clock=time.monotonic) -> str:
    """The ``--unlabeled`` text: all of it, or, with a time budget, what ``READ_SHARE`` of it reads and tokenizes.

    The pieces read are recorded in the run folder, so a resumed run reads exactly the same text (and builds
    the same vocabulary) however fast the machine is then.
    """
    files, record = text_files(path), run.state_dir / _READ_RECORD
    if run.resume and record.is_file():
        pieces = json.loads(record.read_text(encoding="utf-8"))["pieces"]
        return "".join(islice(iter_pieces(files), pieces))
    if max_time is None:
        return "".join(iter_pieces(files))
    deadline, read, size = clock() + READ_SHARE * max_time, [], 0
    for piece in iter_pieces(files):
        tokenizer.tokenize(piece)  # what the vocabulary and the token stream will cost again: inside the budget
        read.append(piece)
        size += len(piece.encode("utf-8", errors="surrogatepass"))
        if clock() >= deadline:
            total = text_bytes(path)
            if size < total:
                _log(f"unlabeled {path}: the pre-training time budget ({max_time:g} s) ended reading after "
                     f"{size / 2**20:.1f} of {total / 2**20:.1f} MiB; the rest is not used")
            break
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"pieces": len(read)}) + "\n", encoding="utf-8")
    return "".join(read)


def lm_streams(train: list[Example], unlabeled: str, tokenizer, vocab: Vocabulary, config: PretrainConfig,
               seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(training ids, held-out ids): whole training texts in a seeded order, the last share held out."""
    texts = [e.text for e in train]
    random.Random(seed).shuffle(texts)
    held = max(1, round(len(texts) * config.lm_valid_fraction)) if len(texts) > 1 else 0
    encode = lambda items: [i for text in items for i in vocab.encode(tokenizer.tokenize(text))]  # noqa: E731
    train_ids = encode(texts[:len(texts) - held]) + (encode([unlabeled]) if unlabeled else [])
    valid_ids = encode(texts[len(texts) - held:]) if held else train_ids[-max(2, len(train_ids) // 20):]
    return torch.tensor(train_ids, dtype=torch.long), torch.tensor(valid_ids, dtype=torch.long)


def lm_train_config(config: PretrainConfig, train: TrainConfig, directions: int) -> TrainConfig:
    """The trainer settings of one direction's pre-training."""
    budget = None if config.pretrain_max_time is None else config.pretrain_max_time / directions
    return replace(train, epochs=config.pretrain_epochs, batch_size=config.pretrain_batch_size, lr=config.pretrain_lr,
                   schedule="stlr", warmup=0.1, patience=None, max_time=budget, max_steps=None, eval_every=None)


def pretrain_encoder(run: RunFolder, encoder: Encoder, config: PretrainConfig, train: TrainConfig,
                     texts: list[Example], unlabeled: str, tokenizer, vocab: Vocabulary, world: World) -> dict:
    """Train ``encoder`` in place as a language model per direction; return the figures (also saved with it)."""
    folder = run.path / ENCODER_DIR
    directions = lm_directions(encoder.config)
    done: dict = {}
    heads = {}
    if run.resume and folder.is_dir():
        # A resumed run: the directions pre-trained before the interruption are taken as they were saved.
        weights, meta = load_checkpoint(folder)
        encoder.load_state_dict(strip_prefix(weights, "encoder."))
        done = meta.get("pretraining", {})
        for direction in done:
            heads[direction] = LMHead(encoder.config.hidden_size, encoder.config.embedding_dim, len(vocab))
            heads[direction].load_state_dict(strip_prefix(weights, f"head_{direction}."))
        _log(f"pre-training: resumed with {', '.join(done)} done")
    train_ids, valid_ids = lm_streams(texts, unlabeled, tokenizer, vocab, config, train.seed)
    streams = min(config.pretrain_batch_size, max(1, train_ids.numel() // 2))
    settings = lm_train_config(config, replace(train, batch_size=streams), len(directions))
    _log(f"pre-training the encoder as a word language model ({' and '.join(directions)}): {train_ids.numel()} "
         f"tokens, {valid_ids.numel()} held out, vocabulary {len(vocab)}, {settings.epochs} epoch(s)"
         + (f" or {settings.max_time:.0f} s" if settings.max_time else "") + " per direction")
    for direction in directions:
        if direction in done:
            continue
        start = time.monotonic()
        torch.manual_seed(train.seed)
        lm = EncoderLM(encoder, direction, config.pretrain_dropout).to(world.device)
        flip = (lambda ids: ids.flip(0)) if direction == "backward" else (lambda ids: ids)
        if config.pretrain_samples and config.pretrain_samples < len(vocab):
            sampler = SampledSoftmax(torch.bincount(train_ids, minlength=len(vocab)), config.pretrain_samples)
            task = SampledLanguageModelTask(flip(train_ids), flip(valid_ids), streams, config.pretrain_bptt,
                                            seed=train.seed, unit="word", sampler=sampler)
        else:
            task = LanguageModelTask(flip(train_ids), flip(valid_ids), streams, config.pretrain_bptt,
                                     seed=train.seed, unit="word")
        state_path = run.state_path(f"pretrain-{direction}")
        trainer = Trainer(lm, task, settings, run.path / "pretrain" / direction, state_path=state_path, world=world)
        if run.resume and state_path.is_file():
            trainer.load_state(state_path)
        result = trainer.fit()
        check_result(run, result)
        best = result.best or {}
        done[direction] = {"valid_perplexity": best.get("valid_perplexity"), "epochs": best.get("epoch"),
                           "steps": result.steps, "stopped": result.reason,
                           "seconds": round(time.monotonic() - start, 1)}
        _log(f"pre-training {direction}: held-out perplexity {best.get('valid_perplexity', float('nan')):.1f} "
             f"after {result.steps} steps ({result.reason}, {done[direction]['seconds']} s)")
        heads[direction] = lm.head
        save_encoder(folder, encoder, heads, vocab, tokenizer, pretraining=done)
    encoder.train()
    return done


__all__ = ["pretrain_encoder", "lm_streams", "lm_train_config", "read_unlabeled"]
