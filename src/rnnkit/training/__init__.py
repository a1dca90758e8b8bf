"""Training: one loop for classifiers and language models, with schedules, seeding and checkpoints."""

from typing import TYPE_CHECKING

from rnnkit.lazy_names import lazy_names

# Imported on first use: TrainConfig and the defaults the command line is generated from live in this package,
# and reading them must not load torch.
_HOMES = {
    **dict.fromkeys(["FORMAT_VERSION", "load_checkpoint", "save_checkpoint"], "rnnkit.training.checkpoint"),
    "TrainConfig": "rnnkit.training.config",
    **dict.fromkeys(["make_optimizer", "parameter_groups"], "rnnkit.training.optim"),
    **dict.fromkeys(["RunLog", "read_log"], "rnnkit.training.runlog"),
    **dict.fromkeys(["lr_factor", "make_scheduler"], "rnnkit.training.schedule"),
    **dict.fromkeys(["make_generator", "seed_everything"], "rnnkit.training.seed"),
    **dict.fromkeys(["StepResult", "Task"], "rnnkit.training.task"),
    **dict.fromkeys(["Trainer", "TrainResult"], "rnnkit.training.trainer"),
}
__getattr__, __dir__ = lazy_names(__name__, _HOMES)

if TYPE_CHECKING:
    from rnnkit.training.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
    from rnnkit.training.config import TrainConfig
    from rnnkit.training.optim import make_optimizer, parameter_groups
    from rnnkit.training.runlog import RunLog, read_log
    from rnnkit.training.schedule import lr_factor, make_scheduler
    from rnnkit.training.seed import make_generator, seed_everything
    from rnnkit.training.task import StepResult, Task
    from rnnkit.training.trainer import Trainer, TrainResult

__all__ = [
    "TrainConfig",
    "Trainer", "TrainResult", "Task", "StepResult",
    "make_scheduler", "lr_factor",
    "make_optimizer", "parameter_groups",
    "seed_everything", "make_generator",
    "save_checkpoint", "load_checkpoint", "FORMAT_VERSION",
    "RunLog", "read_log",
]
