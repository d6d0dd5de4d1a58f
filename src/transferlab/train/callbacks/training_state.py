"""The training state's size in bytes (parameters, buffers, gradients, optimizer state),
measured once the optimizer's state exists."""

from __future__ import annotations

from collections.abc import Callable

from transferlab.optim import TrainingStateBytes, training_state_bytes
from transferlab.train.engine import Callback, Engine, StepOutput


class TrainingStateCallback(Callback):
    """Hands ``training_state_bytes`` of the engine's model and optimizer to ``record`` (the
    trainer writes it into ``run_info.json``) once per call: at its start when the call resumed
    (the optimizer's state is loaded), else after its first step (torch optimizers create their
    state then). Listed before the checkpoint callback, so a run has recorded it before any
    checkpoint it can resume from."""

    name = "training_state"

    def __init__(self, record: Callable[[TrainingStateBytes], None]) -> None:
        self.record = record
        self.measured = False

    def on_train_start(self, engine: Engine) -> None:
        if engine.step:
            self._measure(engine)

    def on_step_end(self, engine: Engine, out: StepOutput) -> None:
        if not self.measured:
            self._measure(engine)

    def _measure(self, engine: Engine) -> None:
        self.record(training_state_bytes(engine.model, engine.optimizer))
        self.measured = True
