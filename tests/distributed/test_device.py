"""``--device cuda``: refused clearly without CUDA; on a GPU, cuDNN (the native back end) trains like the CPU."""

from __future__ import annotations

import math

import pytest
import torch

from rnnkit.cli.main import main
from rnnkit.training.distributed import SINGLE, World, check_device, world_from_env
from tests.distributed.jobs import _classifier_job

NO_CUDA = not torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(NO_CUDA, reason="no CUDA device on this machine (checked on a GPU machine when lent)")


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA: the refusal cannot happen here")
@pytest.mark.parametrize("verb", ["train", "train-lm"])
def test_cli_refuses_cuda_without_cuda(verb, tmp_path, capsys):
    assert main([verb, "--device", "cuda", "--out", str(tmp_path / "run"), "--max-steps", "1"]) == 2
    error = capsys.readouterr().err
    assert f"rnnkit {verb}: error: device='cuda': CUDA is not available" in error
    assert not (tmp_path / "run").exists()  # refused before any data was read or anything written


def test_device_and_autocast_arguments_are_checked():
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda"):
        check_device("tpu")
    with pytest.raises(ValueError, match="autocast='bf16' needs device='cuda'"):
        check_device("cpu", "bf16")
    with pytest.raises(ValueError, match="autocast must be one of"):
        check_device("cpu", "fp8")


def test_world_from_torchrun_variables(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert world_from_env() == SINGLE
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert world_from_env() == World(rank=3, size=4, local_rank=1)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match=r"RANK must be in \[0, WORLD_SIZE=4\), got 4"):
        world_from_env()


def _train(device: str, autocast: str | None, dtype):
    from rnnkit.training import TrainConfig, Trainer

    spec = dict(kind="classifier", backend="native", cell="lstm", examples=24, batch_size=8, seed=7)
    net, task = _classifier_job(spec, SINGLE)
    net = net.to(device=device, dtype=dtype)
    config = TrainConfig(epochs=2, batch_size=8, lr=0.02, patience=None, progress=False, seed=7)
    result = Trainer(net, task, config, world=World(device=device, autocast=autocast)).fit()
    return net, result


@needs_cuda
def test_cuda_native_trains_like_the_cpu():
    cpu, _ = _train("cpu", None, torch.float64)
    gpu, _ = _train("cuda", None, torch.float64)
    for key, value in cpu.state_dict().items():
        torch.testing.assert_close(gpu.state_dict()[key].cpu(), value, rtol=1e-6, atol=1e-8)


@needs_cuda
def test_cuda_bf16_autocast_trains():
    reference, _ = _train("cpu", None, torch.float32)
    net, result = _train("cuda", "bf16", torch.float32)
    assert result.steps == 6 and all(math.isfinite(h["train_loss"]) for h in result.history)
    # bf16 rounds (8 bits of mantissa), so the weights end near, not at, the float32 CPU run's.
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(net.state_dict()[key].cpu(), value, rtol=0.1, atol=0.05)
