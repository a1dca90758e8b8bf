"""Step and time budgets: the run stops there and the learning-rate decay ends there too."""

import torch

from rnnkit.training import StepResult, TrainConfig, Trainer


class _Regression:
    monitor, mode = "loss", "min"

    def __init__(self, batches: int = 50, sleep: float = 0.0):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(batches, 8, 4, generator=g)
        self.y = self.x.sum(-1, keepdim=True)
        self.sleep = sleep

    def train_batches(self, epoch):
        return list(range(len(self.x)))

    def train_step(self, model, i):
        if self.sleep:
            import time

            time.sleep(self.sleep)
        loss = torch.nn.functional.mse_loss(model(self.x[i]), self.y[i])
        return StepResult(loss=loss, tokens=8, examples=8)

    def evaluate(self, model, split):
        return {"loss": float(torch.nn.functional.mse_loss(model(self.x[0]), self.y[0]))}


def test_max_steps_stops_and_ends_the_decay():
    model = torch.nn.Linear(4, 1)
    trainer = Trainer(model, _Regression(), TrainConfig(epochs=10, max_steps=30, progress=False, warmup=0.0))
    result = trainer.fit()
    assert result.steps == 30 and result.reason == "max_time"
    assert trainer._optimizer.param_groups[0]["lr"] < 1e-6  # cosine reached its end at the budget


def test_time_budget_moves_the_decay_horizon():
    model = torch.nn.Linear(4, 1)
    config = TrainConfig(epochs=1000, max_time=1.5, progress=False, warmup=0.0)
    trainer = Trainer(model, _Regression(sleep=0.01), config)
    result = trainer.fit()
    assert result.reason == "max_time"
    # Without the time horizon the lr would still be ~2e-3 (50,000 planned steps); with it, the decay is near its end.
    assert trainer._optimizer.param_groups[0]["lr"] < 0.25 * config.lr
    assert trainer._horizon.total_steps < 1000 * 50
