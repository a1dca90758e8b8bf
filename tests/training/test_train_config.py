import dataclasses

import pytest

from rnnkit.training import TrainConfig


def test_defaults_are_valid_and_documented():
    config = TrainConfig()
    assert (config.epochs, config.batch_size, config.lr, config.schedule) == (20, 32, 2e-3, "cosine")
    for field in dataclasses.fields(TrainConfig):
        assert field.metadata.get("help"), f"{field.name} has no help text"


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("epochs", 0, ValueError),
        ("epochs", 2.0, TypeError),
        ("batch_size", True, TypeError),
        ("lr", 0.0, ValueError),
        ("lr", float("nan"), ValueError),
        ("weight_decay", -0.1, ValueError),
        ("warmup", -0.1, ValueError),
        ("warmup", 2.5, ValueError),
        ("schedule", "step", ValueError),
        ("clip_norm", 0.0, ValueError),
        ("patience", 0, ValueError),
        ("seed", -1, ValueError),
        ("max_time", 0, ValueError),
        ("eval_every", 0, ValueError),
        ("progress", "yes", TypeError),
    ],
)
def test_invalid_values_are_rejected_naming_the_field(field, value, error):
    with pytest.raises(error, match=field):
        TrainConfig(**{field: value})


def test_optional_fields_accept_none():
    config = TrainConfig(clip_norm=None, patience=None, max_time=None, eval_every=None)
    assert config.clip_norm is None and config.patience is None


def test_warmup_fraction_and_step_count():
    assert TrainConfig(warmup=0.1).warmup_steps(200) == 20
    assert TrainConfig(warmup=0.0).warmup_steps(None) == 0
    # >= 1 is a count of steps, independent of the run's length.
    assert TrainConfig(warmup=50).warmup_steps(200) == 50
    assert TrainConfig(warmup=50.0).warmup_steps(None) == 50
    with pytest.raises(ValueError, match="fraction"):
        TrainConfig(warmup=0.1).warmup_steps(None)
