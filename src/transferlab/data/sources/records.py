"""What sources of records share (jsonl lines, parquet rows, Hugging Face dataset rows): which
field holds the text, which the id, and which others are kept as metadata."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from transferlab.data.sources.base import Skip, SourceConfig, SourceError, SourceStats, TextDocument


class RecordSourceConfig(SourceConfig):
    """``text_field`` holds the text; ``id_field`` (optional) the id, else the id is the record's
    position; ``metadata_fields`` are copied into ``metadata["fields"]`` (None: every field but
    the text and the id; a list also limits which columns parquet and datasets read)."""

    text_field: str = Field(default="text", min_length=1)
    id_field: str | None = Field(default=None, min_length=1)
    metadata_fields: list[str] | None = None

    def _columns(self) -> list[str] | None:
        """The fields to read, or None for all of them."""
        if self.metadata_fields is None:
            return None
        wanted = [self.text_field, self.id_field, *self.metadata_fields]
        return list(dict.fromkeys(f for f in wanted if f is not None))

    def _check_columns(self, available: list[str], where: str) -> None:
        """One-line error when a configured field is not among the ``available`` columns."""
        named = [("text_field", self.text_field), ("id_field", self.id_field)]
        named += [("metadata_fields", f) for f in self.metadata_fields or []]
        for option, column in named:
            if column is not None and column not in available:
                raise SourceError(
                    f"{self.name}: {where} has no field {column!r} (fields: "
                    f"{', '.join(available)}); set {option} to one of them"
                )

    def _record_document(
        self, record: dict[str, Any], where: str, location: dict[str, Any], stats: SourceStats
    ) -> TextDocument | None:
        """The document of one record (``where`` is its default id, ``location`` its metadata
        besides its fields), or None after counting why it has none."""
        text = record.get(self.text_field)
        if text is None:
            stats.skip(Skip.MISSING_FIELD, where)
            return None
        if not isinstance(text, str):
            stats.skip(Skip.INVALID_FIELD, where)
            return None
        doc_id = where
        if self.id_field is not None:
            value = record.get(self.id_field)
            if value is None:
                stats.skip(Skip.MISSING_FIELD, where)
                return None
            doc_id = str(value)
        fields = {k: record[k] for k in self._field_names(record) if k in record}
        return TextDocument(doc_id, text, self.source_name, {**location, "fields": fields})

    def _field_names(self, record: dict[str, Any]) -> list[str]:
        if self.metadata_fields is not None:
            return self.metadata_fields
        return [k for k in record if k not in (self.text_field, self.id_field)]
