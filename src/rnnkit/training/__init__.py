"""Training: one loop for classifiers and language models, with schedules, seeding and checkpoints."""

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
