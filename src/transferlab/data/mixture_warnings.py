"""Warnings about what a corpus of sources became: a domain the mixture repeats for more epochs
than ``data.warnings.max_epochs``, and a curated domain of which curation kept less than
``data.warnings.min_kept_fraction``. They read the data stage's ``info.json`` (its ``domains``)
and the run's thresholds, which are not part of any key: changing one changes what is warned
about, never the data. ``prepare_data`` issues them as ``DataWarning`` in the terminal; the
experiment's ``results/data.parquet`` keeps them per domain for the report."""

from __future__ import annotations

import warnings
from typing import Any

from transferlab.config.schemas import DataWarningsConfig


class DataWarning(UserWarning):
    """The training data may not be what the config meant: see ``domain_warnings``."""


def domain_warnings(domain: dict[str, Any], limits: DataWarningsConfig) -> list[str]:
    """One line per problem of a domain of ``info.json``, naming the setting that fixes it."""
    name, found = domain["name"], []
    if domain["epochs"] > limits.max_epochs:
        found.append(
            f"domain {name!r} is repeated {domain['epochs']:.1f} times ({domain['sampled_docs']:,}"
            f" documents drawn from {domain['docs']:,}), more than data.warnings.max_epochs="
            f"{limits.max_epochs:g}: give it more documents, a smaller mixture weight or a "
            "smaller mixture.tokens"
        )
    curation = domain.get("curation")
    if curation and curation["input_docs"]:
        kept, read = curation["kept_docs"], curation["input_docs"]
        if kept / read < limits.min_kept_fraction:
            found.append(
                f"curation kept {kept:,} of the {read:,} documents of domain {name!r} "
                f"({kept / read:.2%}), less than data.warnings.min_kept_fraction="
                f"{limits.min_kept_fraction:g}: loosen its filters (`transferlab data inspect "
                f"{curation['dir']}` shows what removed them)"
            )
    return found


def warn_data(info: dict[str, Any], limits: DataWarningsConfig) -> None:
    """Issue each domain's warnings for the data stage described by ``info``."""
    for domain in info.get("domains", []):
        for message in domain_warnings(domain, limits):
            warnings.warn(f"data {info['key']}: {message}", DataWarning, stacklevel=3)
