"""Shakespeare with the default language model: bits/char against wall-clock time, tokens/s, samples.

    .venv/bin/python benchmarks/lm_shakespeare.py               # a bare `rnnkit train-lm` (30-minute budget)
    .venv/bin/python benchmarks/lm_shakespeare.py --minutes 5   # a shorter budget

Prints the validation curve (bits/char after each evaluation, with elapsed seconds),
the final exact validation and test bits/char (each text read as one stream with
the state carried), the training tokens/s, and three samples at temperature 0.8.
"""

from __future__ import annotations

import argparse
import json

from rnnkit.api.language_model import LM_TRAIN_DEFAULTS, CorpusConfig, train_language_model
from rnnkit.models.config import LanguageModelConfig
from rnnkit.training import TrainConfig, read_log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=LM_TRAIN_DEFAULTS["max_time"] / 60)
    parser.add_argument("--out", default="runs/benchmark-lm")
    args = parser.parse_args()
    train = TrainConfig(**{**LM_TRAIN_DEFAULTS, "max_time": args.minutes * 60, "progress": False})
    lm, summary = train_language_model(CorpusConfig(), args.out, model=LanguageModelConfig(), train=train,
                                       overwrite=True)  # a benchmark is rerun
    print("elapsed_s  step  valid_bits_per_char  tokens_per_s")
    for record in read_log(f"{args.out}/log.jsonl"):
        print(f"{record['elapsed']:9.0f} {record['step']:5d} {record['valid_bits_per_char']:20.4f} "
              f"{record.get('tokens_per_s') or 0:13.0f}")
    print(json.dumps(summary, indent=2))
    for seed in (1, 2, 3):
        print(f"--- sample (temperature 0.8, seed {seed}) ---")
        print("KING." + lm.generate("KING.", 400, temperature=0.8, seed=seed))


if __name__ == "__main__":
    main()
