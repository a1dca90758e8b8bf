"""CLI verbs for language models: train-lm, generate (and eval of a language model)."""

from __future__ import annotations

import argparse
import json
import sys

from rnnkit.cli.export_verbs import add_inference_runtime_argument, load_for_runtime
from rnnkit.cli.options import add_dataclass_arguments
from rnnkit.cli.run_flags import add_run_flags, report_stopped, run_settings
from rnnkit.cli.runtime import add_device_arguments, runtime_options
from rnnkit.data.corpus import CorpusConfig
from rnnkit.generation.config import MAX_TOKENS, SamplingConfig
from rnnkit.models.config import LanguageModelConfig
from rnnkit.saved.kinds import LANGUAGE_MODEL
from rnnkit.training.config import TrainConfig
from rnnkit.training.defaults import LM_TRAIN_DEFAULTS

TRAIN_SECTIONS = {"corpus": CorpusConfig, "model": LanguageModelConfig, "train": TrainConfig}


def register(verbs) -> None:
    tr = verbs.add_parser("train-lm", help="train a language model (default: bundled Shakespeare)",
                          description="Train a character- or word-level language model on contiguous streams "
                                      "with truncated BPTT; report bits per character on validation and test.")
    tr.add_argument("--out", default="runs/lm", help="run folder: model/, report/, log.jsonl")
    add_dataclass_arguments(tr, CorpusConfig, title="corpus")
    add_dataclass_arguments(tr, LanguageModelConfig, title="model")
    add_dataclass_arguments(tr, TrainConfig, title="training", defaults=LM_TRAIN_DEFAULTS)
    add_run_flags(tr, TRAIN_SECTIONS)
    add_device_arguments(tr)
    tr.set_defaults(run=run_train_lm)

    gen = verbs.add_parser("generate", help="sample text from a language model, streamed as it is produced")
    gen.add_argument("model", help="a saved language model folder (or a run folder holding model/)")
    gen.add_argument("--prompt", default="", help="text to prime the model with")
    gen.add_argument("-n", "--max-tokens", type=int, default=MAX_TOKENS,
                     help=f"tokens to generate (default: {MAX_TOKENS})")
    gen.add_argument("--stop", default=None, help="stop before this string appears")
    gen.add_argument("--seed", type=int, default=None, help="seed for a reproducible sample")
    gen.add_argument("--no-prompt-echo", action="store_true", help="do not print the prompt before the sample")
    add_dataclass_arguments(gen, SamplingConfig, title="sampling")
    add_inference_runtime_argument(gen)
    gen.set_defaults(run=run_generate)


def run_train_lm(args: argparse.Namespace) -> int:
    from rnnkit.api.language_model import train_language_model
    from rnnkit.training.rundir import RunStopped

    out, configs, _ = run_settings(args, TRAIN_SECTIONS)
    try:
        _, summary = train_language_model(configs["corpus"], out, model=configs["model"], train=configs["train"],
                                          overwrite=args.overwrite, resume=args.resume is not None,
                                          **runtime_options(args))
    except RunStopped as stopped:
        return report_stopped("train-lm", stopped)
    if summary:  # under torchrun only rank 0 has one
        print(json.dumps(summary))
    return 0


def run_generate(args: argparse.Namespace) -> int:
    lm = load_for_runtime(args.model, args.runtime, LANGUAGE_MODEL)
    # Built (and so checked) before the prompt is echoed: a bad option prints nothing on stdout.
    pieces = lm.generate_iter(args.prompt, args.max_tokens, temperature=args.temperature, top_k=args.top_k,
                              top_p=args.top_p, stop=args.stop, seed=args.seed)
    unknown = sorted({t for t in lm.tokenizer.tokenize(args.prompt) if t not in lm.vocab})
    if unknown:
        print(f"note: the prompt holds {len(unknown)} token(s) the model never saw in training, read as <unk>: "
              f"{' '.join(map(repr, unknown[:10]))}", file=sys.stderr)
    if not args.no_prompt_echo:
        sys.stdout.write(args.prompt)
    for piece in pieces:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def eval_language_model(args: argparse.Namespace, lm) -> int:
    """``rnnkit eval`` of ``lm``, loaded for the runtime asked for, once ``run_eval`` has checked its options."""
    from rnnkit.api.language_model import read_text

    metrics = lm.evaluate_text(read_text(args.data))
    if args.report:  # as for a classifier: metrics.json and report.txt
        from rnnkit.evaluation import write_report

        write_report(args.report, {"summary": metrics})
    print(json.dumps(metrics, indent=2) if args.json else "\n".join(f"{k:16} {v:.4f}" for k, v in metrics.items()))
    return 0
