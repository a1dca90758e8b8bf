import math

import pytest
import torch

from rnnkit.training import TrainConfig, lr_factor, make_scheduler


def _lrs(config: TrainConfig, total_steps: int | None, steps: int) -> list[float]:
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=config.lr)
    scheduler = make_scheduler(optimizer, config, total_steps)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_warmup_rises_to_peak_then_decays(schedule):
    config = TrainConfig(lr=1.0, warmup=0.1, schedule=schedule)
    lrs = _lrs(config, total_steps=100, steps=100)
    warm, decay = lrs[:10], lrs[10:]
    assert all(a < b for a, b in zip(warm, warm[1:], strict=False))
    assert warm[0] == pytest.approx(0.1)  # the first update already moves the weights
    assert warm[-1] == pytest.approx(1.0)
    assert decay[0] == pytest.approx(1.0)
    assert all(a > b for a, b in zip(decay, decay[1:], strict=False))
    assert 0 < decay[-1] < 0.05


def test_cosine_and_linear_midpoints():
    kwargs = {"warmup_steps": 0, "total_steps": 100}
    assert lr_factor(50, schedule="cosine", **kwargs) == pytest.approx(0.5)
    assert lr_factor(25, schedule="cosine", **kwargs) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_factor(25, schedule="linear", **kwargs) == pytest.approx(0.75)
    # Past the planned end (a longer epoch than the first), the rate stays at 0 instead of rising again.
    assert lr_factor(150, schedule="cosine", **kwargs) == pytest.approx(0.0)


def test_constant_after_warmup_and_integer_warmup():
    lrs = _lrs(TrainConfig(lr=2.0, warmup=4, schedule="constant"), total_steps=20, steps=20)
    assert lrs[:4] == pytest.approx([0.5, 1.0, 1.5, 2.0])
    assert lrs[4:] == pytest.approx([2.0] * 16)


def test_unknown_total_keeps_peak_after_step_count_warmup():
    lrs = _lrs(TrainConfig(lr=1.0, warmup=2, schedule="cosine"), total_steps=None, steps=6)
    assert lrs == pytest.approx([0.5, 1.0, 1.0, 1.0, 1.0, 1.0])


def test_warmup_longer_than_run_is_capped():
    lrs = _lrs(TrainConfig(lr=1.0, warmup=50), total_steps=5, steps=5)
    assert lrs[-1] == pytest.approx(1.0)


def test_bad_arguments():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match="total_steps"):
        make_scheduler(optimizer, TrainConfig(), 0)
    with pytest.raises(TypeError, match="config"):
        make_scheduler(optimizer, {"lr": 1}, 10)
    with pytest.raises(ValueError, match="schedule"):
        lr_factor(0, warmup_steps=0, total_steps=10, schedule="exp")
