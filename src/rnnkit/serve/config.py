"""The server's typed settings: limits, micro-batching, timeouts. ``rnnkit serve``'s options come from here."""

from __future__ import annotations

from dataclasses import dataclass

from rnnkit.config_fields import help_field as _help
from rnnkit.validation import check_positive_int

LOOPBACK = "127.0.0.1"


@dataclass
class ServeConfig:
    max_batch: int = _help("micro-batching: most texts run together in one classify forward pass", default=64)
    max_wait_ms: float = _help("micro-batching: how long a batch may wait for more requests once the model is "
                               "busy (an idle model starts at once)", default=2.0)
    max_body_bytes: int = _help("largest request body accepted (413 beyond)", default=1_000_000)
    max_texts: int = _help("most texts in one classify request", default=256)
    max_chars: int = _help("longest text accepted, in characters", default=100_000)
    max_input_tokens: int = _help("longest text accepted, in tokens (classify, generate's prompt)", default=4096)
    max_inspect_tokens: int = _help("longest text /v1/inspect traces, in tokens", default=400)
    max_generate_tokens: int = _help("most tokens one /v1/generate request may ask for", default=2000)
    timeout_s: float = _help("a request still running after this many seconds gets a 504 (generation ends "
                             "with finish_reason 'timeout')", default=30.0)
    max_streams: int = _help("generations and inspections running at once; more wait their turn", default=8)
    graceful_timeout_s: float = _help("on shutdown, how long in-flight requests may take to finish", default=30.0)
    workers: int = _help("processes serving from the same socket, each with its own copy of the models and its "
                         "own micro-batcher; more than one lets many concurrent clients use more than one core",
                         default=1)
    threads: int | None = _help("torch threads for the models (default: torch's choice). On a machine shared with "
                                "other busy processes, 1 keeps single-text latency steady: a one-text forward "
                                "split over threads waits for every thread at every step. With workers > 1 the "
                                "default is cores // workers per worker", default=None)

    def __post_init__(self):
        for name in ("max_batch", "max_body_bytes", "max_texts", "max_chars", "max_input_tokens",
                     "max_inspect_tokens", "max_generate_tokens", "max_streams", "workers"):
            check_positive_int(name, getattr(self, name))
        if self.threads is not None:
            check_positive_int("threads", self.threads)
        for name in ("max_wait_ms", "timeout_s", "graceful_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a number ≥ 0, got {value!r}")
        if self.timeout_s == 0:
            raise ValueError("timeout_s must be > 0, got 0")
