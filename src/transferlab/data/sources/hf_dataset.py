"""Hugging Face ``datasets``: a dataset saved with ``save_to_disk``, or a hub dataset streamed.

``datasets`` is imported only when a pass starts: it is heavy, and optional.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from transferlab.config.registry import SOURCES
from transferlab.data.sources.base import SourceError, SourceStats, TextDocument
from transferlab.data.sources.records import RecordSourceConfig


@SOURCES.register("hf_dataset")
class HfDatasetConfig(RecordSourceConfig):
    """A Hugging Face ``datasets`` dataset, saved on disk or streamed from the hub.

    Exactly one of ``path`` (a directory written by ``save_to_disk``, memory-mapped, read
    ``batch_size`` rows at a time) or ``dataset`` (a hub name, streamed, needs the network;
    ``subset`` is its config name and ``revision`` pins a commit). ``split`` picks a split of a
    saved ``DatasetDict`` or of the hub dataset. The default id is the 0-based row; metadata
    holds ``row`` and ``fields``.
    """

    name: Literal["hf_dataset"] = "hf_dataset"
    path: str | None = None  # a directory written by save_to_disk (read offline)
    dataset: str | None = None  # a hub dataset name, streamed (needs the network)
    subset: str | None = None  # the hub dataset's config (subset) name; None: its default
    split: str = "train"
    revision: str | None = None  # the hub commit, tag or branch read; None: the latest
    batch_size: int = Field(default=1024, gt=0)  # rows read at a time from a saved dataset

    @model_validator(mode="after")
    def _one_location(self) -> HfDatasetConfig:
        if (self.path is None) == (self.dataset is None):
            raise ValueError(
                "hf_dataset needs exactly one of path (a dataset saved with save_to_disk) "
                "or dataset (a hub name)"
            )
        return self

    def input_files(self) -> list[Path]:
        """Every file of the saved dataset's directory; none for a hub dataset (keyed by its
        name and ``revision``: pin one to key the content)."""
        if self.path is None:
            return []
        root = Path(self.path).expanduser()
        return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]

    def _candidates(self, stats: SourceStats) -> Iterator[TextDocument]:
        datasets = _import_datasets()
        data = self._load_saved(datasets) if self.path is not None else self._load_hub(datasets)
        if data.column_names is not None:  # a streamed hub dataset may not know them up front
            self._check_columns(data.column_names, self.path or self.dataset)
        if self.metadata_fields is not None:
            data = data.select_columns(self._columns())
        return self._read(data, stats)

    def _load_saved(self, datasets: Any) -> Any:
        path = Path(self.path).expanduser()
        if not path.exists():
            raise SourceError(
                f"hf_dataset.path: {self.path!r} does not exist; point it at a directory "
                "written by Dataset.save_to_disk"
            )
        try:
            data = datasets.load_from_disk(str(path))
        except FileNotFoundError:
            raise SourceError(
                f"hf_dataset.path: {self.path!r} is not a dataset saved with save_to_disk; "
                "point it at a directory that save_to_disk wrote"
            ) from None
        if isinstance(data, datasets.DatasetDict):
            if self.split not in data:
                raise SourceError(
                    f"hf_dataset.split: {self.split!r} is not a split of {self.path!r} "
                    f"(splits: {', '.join(data)}); set split to one of them"
                )
            data = data[self.split]
        return data

    def _load_hub(self, datasets: Any) -> Any:
        return datasets.load_dataset(
            self.dataset, self.subset, split=self.split, revision=self.revision, streaming=True
        )

    def _read(self, data: Any, stats: SourceStats) -> Iterator[TextDocument]:
        row = 0
        for batch in data.iter(batch_size=self.batch_size):
            for record in _rows(batch):
                doc = self._record_document(record, str(row), {"row": row}, stats)
                row += 1
                if doc is not None:
                    yield doc


def _rows(batch: dict[str, list[Any]]) -> Iterator[dict[str, Any]]:
    """Records of a column-wise batch."""
    names = list(batch)
    for values in zip(*batch.values(), strict=True):
        yield dict(zip(names, values, strict=True))


def _import_datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise SourceError(
            "hf_dataset needs the Hugging Face datasets package; install it with "
            "`pip install datasets`"
        ) from None
    return datasets
