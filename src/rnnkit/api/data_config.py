"""Kept for the CLI's ``from rnnkit.api.data_config import ...``: the config lives in ``rnnkit.data.config``."""

from rnnkit.data.config import ClassifierDataConfig, load_classification_data, read_file

__all__ = ["ClassifierDataConfig", "load_classification_data", "read_file"]
