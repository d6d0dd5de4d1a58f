"""Recipes: packaged experiments, one YAML file per published claim they test."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

RECIPES_DIR = Path(__file__).parent
QUICKSTART = "knowledge-augmentation"


@dataclass(frozen=True)
class RecipeInfo:
    name: str
    claim: str
    presets: list[str]
    path: Path


def recipe_path(name: str) -> Path:
    path = RECIPES_DIR / f"{name}.yaml"
    if not path.is_file():
        names = [p.stem for p in sorted(RECIPES_DIR.glob("*.yaml"))]
        raise ValueError(f"no recipe named {name!r}; available: {names}")
    return path


def list_recipes() -> list[RecipeInfo]:
    out = []
    for path in sorted(RECIPES_DIR.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        expect = data.get("expect") or [{}]
        first = expect[0] if isinstance(expect, list) else expect  # several: the first's claim
        claim = first.get("claim", "") or data.get("description", "")
        out.append(RecipeInfo(path.stem, claim, sorted(data.get("presets", {})), path))
    return out
