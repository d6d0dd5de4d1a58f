"""Graceful stop: SIGINT/SIGTERM set a flag instead of killing the process, until released."""

from __future__ import annotations

import os
import signal

import pytest

from transferlab.train.signals import StopRequest


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stop_request_catches_the_signal_and_restores_the_previous_handler(sig):
    before = signal.getsignal(sig)
    with StopRequest() as stop:
        assert not stop.requested
        os.kill(os.getpid(), sig)
        assert stop.requested and stop.signal_name == signal.Signals(sig).name
    assert signal.getsignal(sig) is before


def test_second_sigint_forces_a_keyboard_interrupt():
    with StopRequest(), pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
