"""Graceful interruption: SIGINT/SIGTERM ask the trainer to checkpoint and stop after this step.

A second SIGINT while a stop is pending raises KeyboardInterrupt, so a user can still force quit.
The previous handlers are restored on exit.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Context manager; ``requested`` turns True once SIGINT or SIGTERM arrives.

    Handlers can only be installed from the main thread; elsewhere (training started from a
    worker thread) signals keep their previous behaviour and ``requested`` stays False.
    """

    def __init__(self) -> None:
        self.requested = False
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = signal.Signals(signum).name
