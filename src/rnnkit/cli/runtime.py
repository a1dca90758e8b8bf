"""Where a training verb runs: ``--device`` and ``--autocast``, shared by ``train`` and ``train-lm``.

Several processes need no option: ``torchrun --nproc-per-node N -m rnnkit train ...`` sets the
variables ``rnnkit.training.distributed`` reads.
"""

from __future__ import annotations

import argparse

from rnnkit.training.config import AUTOCAST


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--autocast``: where a training verb runs (not ``--runtime``, see ``export_verbs``)."""
    group = parser.add_argument_group("device")
    group.add_argument("--device", default="cpu",
                       help="cpu, or cuda (cuda:N) to train on a GPU with torch's cuDNN kernels (the native back "
                            "end); under torchrun each process takes the GPU of its local rank (default: cpu)")
    group.add_argument("--autocast", default=None, choices=[a for a in AUTOCAST if a],
                       help="bf16: run training forwards in bfloat16 autocast (CUDA only; default: off)")


def runtime_options(args: argparse.Namespace) -> dict:
    return {"device": args.device, "autocast": args.autocast}
