"""Every text a run's model was trained on, over its whole chain of stages (a continued-
pretraining child has also seen what its parent pretrained on), as ``data.digests.TextDigests``.

Each stage's data stage is found by the data key its trainer recorded in ``run_info.json``; its
``train_digests.npy`` gives the texts (see ``data.digests.training_digests`` for a stage that
predates the file). A stage trained on ``data.path`` (a tokenized folder) has no texts to compare
with, so the chain's texts are then unknown.
"""

from __future__ import annotations

import json
from pathlib import Path

from transferlab.data.digests import TextDigests, training_digests
from transferlab.data.prepare import keyed_data_dir
from transferlab.train.checkpoint import read_run_config
from transferlab.train.run_dir import RUN_INFO_FILE


def trained_texts(run_dir: Path) -> TextDigests | None:
    """The digests of the training texts of the run in ``run_dir`` and of every stage it
    started from; None when a stage trained on ``data.path``, whose texts are unknown."""
    digests = TextDigests.of([])
    stage: Path | None = Path(run_dir)
    while stage is not None:
        cfg = read_run_config(stage)
        if cfg.data.path is not None:
            return None
        info = json.loads((stage / RUN_INFO_FILE).read_text())
        digests = digests.union(training_digests(keyed_data_dir(info["data_key"]), cfg))
        stage = Path(cfg.init.from_run) if cfg.init is not None else None
    return digests
