"""HTML building blocks that escape by default: every value is escaped as it enters the page,
and only ``Markup`` (HTML built here) passes through unchanged, so a caller cannot forget to
escape a name, a description or a prediction that came from data."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from html import escape
from typing import Any


class Markup(str):
    """HTML built by these helpers; any other string is escaped before it enters the page."""


def esc(value: Any) -> Markup:
    return value if isinstance(value, Markup) else Markup(escape(str(value), quote=True))


def join(parts: Iterable[Any]) -> Markup:
    return Markup("".join(esc(part) for part in parts))


def tag(name: str, *children: Any, cls: str | None = None) -> Markup:
    attrs = f' class="{esc(cls)}"' if cls else ""
    return Markup(f"<{name}{attrs}>{join(children)}</{name}>")


def table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Collection[int] = ()
) -> Markup:
    """A table; the columns in ``numeric`` are set in tabular figures and never wrap."""
    head = tag("tr", *(tag("th", h) for h in headers))
    body = [
        tag(
            "tr",
            *(tag("td", cell, cls="num" if i in numeric else None) for i, cell in enumerate(row)),
        )
        for row in rows
    ]
    return tag("table", tag("thead", head), tag("tbody", *body))


def figure(uri: str, alt: str, caption: str) -> Markup:
    img = Markup(f'<img src="{esc(uri)}" alt="{esc(alt)}">')
    return tag("figure", img, tag("figcaption", caption))
