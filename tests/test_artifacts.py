"""Content-addressed, atomic artifact directories."""

from __future__ import annotations

import pytest

from transferlab.artifacts import atomic_dir, cached_dir, content_key, is_complete


def test_content_key_ignores_dict_order_and_sees_values():
    assert content_key({"a": 1, "b": 2}) == content_key({"b": 2, "a": 1})
    assert content_key({"a": 1}) != content_key({"a": 2})
    assert len(content_key("x")) == 16


def test_failed_build_leaves_nothing_that_looks_finished(tmp_path):
    final = tmp_path / "art"
    with pytest.raises(RuntimeError), atomic_dir(final) as tmp:
        (tmp / "half.bin").write_bytes(b"x")
        raise RuntimeError("killed")
    assert not final.exists()
    assert list(tmp_path.iterdir()) == []


def test_cached_dir_builds_once(tmp_path):
    calls = []

    def build(tmp):
        calls.append(tmp)
        (tmp / "data.txt").write_text("v1")

    final = tmp_path / "art"
    assert cached_dir(final, build) == final
    cached_dir(final, build)
    assert len(calls) == 1
    assert is_complete(final) and (final / "data.txt").read_text() == "v1"


def test_incomplete_leftover_is_rebuilt(tmp_path):
    final = tmp_path / "art"
    final.mkdir()
    (final / "data.txt").write_text("partial")  # no COMPLETE marker: a crashed writer
    cached_dir(final, lambda tmp: (tmp / "data.txt").write_text("whole"))
    assert (final / "data.txt").read_text() == "whole"


def test_concurrent_finisher_keeps_the_first_complete_copy(tmp_path):
    final = tmp_path / "art"
    with atomic_dir(final, replace=False) as tmp:
        (tmp / "data.txt").write_text("second")
        # Another process completes the same artifact while we are still writing.
        cached_dir(final, lambda other: (other / "data.txt").write_text("first"))
    assert (final / "data.txt").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["art"]
