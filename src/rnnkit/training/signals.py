"""Stop a run cleanly on SIGINT (Ctrl-C) or SIGTERM (``kill``, a job scheduler) instead of dying mid-step.

While ``StopRequests`` is active, the first such signal only sets ``requested``; the
trainer looks at it between steps, where the training state is consistent, saves a
resumable checkpoint and returns. A second Ctrl-C raises ``KeyboardInterrupt`` at once
for a user who does not want to wait. Handlers can only be installed from the main
thread; elsewhere the object does nothing and signals keep their usual effect.
"""

from __future__ import annotations

import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequests:
    """Context manager that turns SIGINT/SIGTERM into a polite request to stop (``requested`` = the signal)."""

    def __init__(self) -> None:
        self.requested: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for number in SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _handle(self, number: int, frame) -> None:
        if self.requested is not None and number == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = number
        print(f"\n{signal.Signals(number).name} received: stopping after the current step "
              "(Ctrl-C again to stop at once)", file=sys.stderr, flush=True)
