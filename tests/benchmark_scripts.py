"""The scripts in benchmarks/ imported as modules, for the tests of their pure helpers."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def import_benchmark(name: str) -> ModuleType:
    """``benchmarks/NAME.py`` as the module ``NAME``."""
    sys.path.insert(0, str(BENCHMARKS))  # the benchmarks import each other by module name
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCHMARKS))
