"""Content-addressed, atomic artifact directories."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from conftest import temp_of
from transferlab.artifacts import (
    CorruptArtifact,
    OutputRefused,
    atomic_dir,
    cached_dir,
    check_output,
    content_key,
    is_complete,
)


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
    # No temporary copy is left; the stage's lock file stays (removing it would race).
    assert sorted(p.name for p in tmp_path.iterdir()) == [".art.lock", "art"]


def test_stale_temporaries_of_dead_writers_go_and_live_writers_stay(tmp_path, dead_pid, live_pid):
    """A killed writer's temporary folder and file (and a replaced copy it was deleting) are
    removed by the next write in that folder; a live writer's are left alone."""
    final = tmp_path / "art"
    dead = [temp_of(final, dead_pid), temp_of(tmp_path / "info.json", dead_pid)]
    dead[0].mkdir()
    dead[1].write_text("{")
    live = temp_of(final, live_pid)
    live.mkdir()
    with atomic_dir(tmp_path / "other") as tmp:
        (tmp / "x").write_text("1")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([live.name, "other"])


def test_a_stage_is_built_by_one_process_while_the_others_wait(tmp_path):
    """Two builders of one stage at once (threads here, each with its own lock handle as two
    processes have): one builds, the other waits and reuses it."""
    final, calls, started = tmp_path / "art", [], threading.Barrier(2)

    def build(tmp):
        calls.append(tmp)
        time.sleep(0.3)  # long enough for the other to arrive while this one builds
        (tmp / "data.txt").write_text("built")

    def worker():
        started.wait()
        cached_dir(final, build)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert (final / "data.txt").read_text() == "built"


def test_a_corrupt_cached_stage_is_rebuilt_saying_so(tmp_path, caplog):
    final = tmp_path / "art"
    cached_dir(final, lambda tmp: (tmp / "data.txt").write_text("good"))
    (final / "data.txt").write_text("bad")

    def verify(path):
        if (path / "data.txt").read_text() != "good":
            raise CorruptArtifact(f"{path / 'data.txt'} does not match")

    with caplog.at_level(logging.WARNING):
        cached_dir(final, lambda tmp: (tmp / "data.txt").write_text("good"), verify=verify)
    assert (final / "data.txt").read_text() == "good"
    assert caplog.messages == [f"{final / 'data.txt'} does not match; rebuilding {final}"]


def test_check_output_accepts_a_new_path_or_an_empty_folder(tmp_path):
    check_output(tmp_path / "new", "world", force=False)
    (tmp_path / "empty").mkdir()
    check_output(tmp_path / "empty", "world", force=False)


def test_check_output_refuses_another_kind_a_link_and_a_file_even_with_force(tmp_path):
    with atomic_dir(tmp_path / "export", kind="hf-export") as tmp:
        (tmp / "config.json").write_text("{}")
    (tmp_path / "link").symlink_to(tmp_path / "export")
    (tmp_path / "file.txt").write_text("mine")
    for name in ("export", "link", "file.txt"):
        with pytest.raises(OutputRefused, match=f"{name} exists and is not a world transferlab"):
            check_output(tmp_path / name, "world", force=True)
