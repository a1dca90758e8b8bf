"""Kept for the CLI's ``from rnnkit.api.preflight import check_eval_run``: pre-flight lives in ``pipelines``."""

from rnnkit.pipelines.preflight import check_eval_run

__all__ = ["check_eval_run"]
