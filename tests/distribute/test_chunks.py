"""The chunk folder and the chunk engine in this process: ranges, resumption, refusals."""

from __future__ import annotations

import json
import os

import pytest

from deepatoms.core.errors import DeepatomsError
from deepatoms.distribute import ChunkStore, chunk_ranges, run_chunks
from deepatoms.distribute.chunks import MemoryStore


def _save(path, result):
    path.write_text(json.dumps(result))


def _load(path):
    return json.loads(path.read_text())


def _squares(items, scale, on_item=None):
    out = []
    for k, x in enumerate(items, start=1):
        out.append(scale * x * x)
        if on_item is not None:
            on_item(k)
    return out


def _store(tmp_path, n=10, **settings):
    return ChunkStore(tmp_path / "out.parts", job="test", n_items=n, settings=settings or {"a": 1},
                      save=_save, load=_load)  # fmt: skip


def test_chunk_ranges_cut_missing_ranges_and_respect_the_limit():
    assert chunk_ranges([(0, 5), (7, 10)], 2) == [(0, 2), (2, 4), (4, 5), (7, 9), (9, 10)]
    assert chunk_ranges([(0, 5), (7, 10)], 2, limit=6) == [(0, 2), (2, 4), (4, 5), (7, 8)]
    with pytest.raises(ValueError, match="chunk size"):
        chunk_ranges([(0, 1)], 0)


def test_a_run_stopped_midway_continues_with_the_missing_items_only(tmp_path):
    items = list(range(10))
    store = _store(tmp_path)
    seen = []

    def stop_at_six(done, total):
        seen.append(done)
        if done == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_chunks(_squares, items, chunk_ranges(store.missing(), 3), store, args=(2,),
                   progress=stop_at_six)  # fmt: skip
    again = _store(tmp_path)
    assert again.done() == [(0, 3), (3, 6)] and again.missing() == [(6, 10)]
    run = run_chunks(_squares, items, chunk_ranges(again.missing(), 3), again, args=(2,))
    assert (run["n_done_before"], run["n_new"], run["n_chunks"]) == (6, 4, 2)
    values = [v for _, _, chunk in again.results() for v in chunk]
    assert values == [2 * x * x for x in items] and again.complete


def test_other_settings_are_refused_and_overwrite_starts_again(tmp_path):
    store = _store(tmp_path)
    store.save(0, 2, [0, 2])
    with pytest.raises(DeepatomsError, match=r"a: 1 .saved. vs 2"):
        _store(tmp_path, a=2)
    fresh = ChunkStore(tmp_path / "out.parts", job="test", n_items=10, settings={"a": 2},
                       save=_save, load=_load, overwrite=True)  # fmt: skip
    assert fresh.done() == []


def test_a_live_process_holding_the_folder_is_refused_and_a_dead_one_taken_over(tmp_path):
    store = _store(tmp_path)
    store.save(0, 2, [0, 2])
    (store.folder / "lock").write_text(f"{os.getppid()}\n")  # a live process, not this one
    with pytest.raises(DeepatomsError, match=r"another process .pid"):
        _store(tmp_path)
    (store.folder / "lock").write_text("999999999\n")  # no such process
    assert _store(tmp_path).done() == [(0, 2)]


def test_overlapping_or_unreadable_chunk_files_give_one_clear_error(tmp_path):
    store = _store(tmp_path)
    store.save(0, 4, [0, 2, 8, 18])
    (store.folder / "chunk-000000002-000000006.part").write_text("[]")
    with pytest.raises(DeepatomsError, match="overlap"):
        store.done()
    (store.folder / "chunk-000000002-000000006.part").unlink()
    (store.folder / "chunk-000000004-000000006.part").write_text("{not json")
    with pytest.raises(DeepatomsError, match="delete it and rerun"):
        list(store.results())


def test_a_foreign_folder_is_not_taken_for_a_chunk_folder(tmp_path):
    (tmp_path / "out.parts").mkdir()
    (tmp_path / "out.parts" / "notes.txt").write_text("mine")
    with pytest.raises(DeepatomsError, match="not a chunk folder"):
        _store(tmp_path)


def test_memory_store_runs_without_files():
    store = MemoryStore(5)
    run_chunks(_squares, [1, 2, 3, 4, 5], chunk_ranges(store.missing(), 2), store, args=(1,))
    assert [v for _, _, c in store.results() for v in c] == [1, 4, 9, 16, 25]
