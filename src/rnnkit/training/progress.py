"""What a run shows while it trains: a tqdm bar per epoch and one summary line per evaluation.

The bar is only drawn for a human at a terminal (``progress=True`` and stderr a
TTY): in a log file or CI its carriage-return redraws are noise. Summary lines
are printed either way, so a redirected run still records how it went.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from tqdm import tqdm


def _is_tty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def format_summary(record: dict[str, Any], monitor_key: str, improved: bool) -> str:
    """One line for one evaluation record, best-so-far marked with ``*``."""
    parts = [f"epoch {record['epoch']} step {record['step']}"]
    train = f"train_loss {_number(record.get('train_loss'))}"
    if record.get("train_accuracy") is not None:
        train += f" acc {_number(record['train_accuracy'])}"
    parts.append(train)
    valid = [
        f"{key} {_number(value)}{' *' if key == monitor_key and improved else ''}"
        for key, value in record.items() if key.startswith("valid_")
    ]
    if valid:
        parts.append(" ".join(valid))
    parts.append(f"{record.get('tokens_per_s', 0.0):.0f} tok/s")
    parts.append(f"lr {record.get('lr', 0.0):.2e}")
    elapsed = record.get("elapsed", 0.0)
    parts.append(f"{elapsed:.1f}s" if elapsed < 60 else tqdm.format_interval(elapsed))
    return " | ".join(parts)


def _number(value: Any) -> str:
    if value is None:
        return "nan"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


class Progress:
    """Progress bar and summary printer for one ``Trainer.fit`` call."""

    def __init__(self, enabled: bool, stream: TextIO | None = None):
        # Resolve sys.stderr now, not at import, so redirection (and pytest's capture) is honoured.
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and _is_tty(self.stream)
        self._bar: tqdm | None = None

    def start_epoch(self, epoch: int, epochs: int, total: int | None) -> None:
        """Open the bar for ``epoch`` (0-based) of ``epochs``; ``total`` batches if known."""
        self.end_epoch()
        if self.enabled:
            self._bar = tqdm(
                total=total, desc=f"epoch {epoch + 1}/{epochs}", unit="batch",
                leave=False, file=self.stream, dynamic_ncols=True,
            )

    def step(self, loss: float, accuracy: float | None, tokens_per_s: float, seconds_left: float | None) -> None:
        """Advance the bar by one batch and refresh its running figures."""
        if self._bar is None:
            return
        postfix = {"loss": f"{loss:.4f}"}
        if accuracy is not None:
            postfix["acc"] = f"{accuracy:.3f}"
        postfix["tok/s"] = f"{tokens_per_s:.0f}"
        if seconds_left is not None:
            # tqdm's own ETA covers this epoch only; this one covers the run.
            postfix["left"] = tqdm.format_interval(seconds_left)
        self._bar.set_postfix(postfix, refresh=False)
        self._bar.update(1)

    def summary(self, line: str) -> None:
        """Print ``line`` to the stream without breaking an open bar."""
        if self._bar is not None:
            tqdm.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def end_epoch(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
