"""The reader scrolls pages larger than a batch and splits them: every batch keeps a cursor that resumes
exactly after it (what a checkpoint stores), on the in-memory source and on a real local-mode folder."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from conftest import write_points
from pytest_cutover.migrate.engine import _chunks
from pytest_cutover.migrate.source import FakeSource, SourceSpec


def _ids(points: list) -> list[str]:
    return [str(p[0]) for p in points]


def _check_resumable(source, scroll_size: int, batch: int, total: int) -> None:
    chunks = list(_chunks(source.pages(None, scroll_size), batch))
    read = [pid for page, _ in chunks for pid in _ids(page)]
    assert len(read) == total and len(set(read)) == total  # every point once, in scroll order
    assert all(0 < len(page) <= batch for page, _ in chunks)
    assert chunks[-1][1] is None  # the last batch says the source is exhausted
    done = 0
    for page, cursor in chunks[:-1]:
        done += len(page)
        rest = [pid for p, _ in _chunks(source.pages(cursor, scroll_size), batch) for pid in _ids(p)]
        assert rest == read[done:], f"resuming after {done} points from cursor {cursor!r} reads the wrong points"


@pytest.mark.parametrize(("scroll_size", "batch"), [(10, 3), (9, 3), (4, 4), (2, 5)])
def test_batches_split_from_large_pages_resume_exactly_after_themselves(scroll_size, batch):
    points = [(f"{i:04d}", "org", [float(i)]) for i in range(23)]
    _check_resumable(FakeSource(1, points), scroll_size, batch, 23)


def test_a_local_mode_folder_resumes_from_a_split_batch_cursor_and_reads_only_the_org_field(tmp_path):
    rng = np.random.default_rng(7)
    ids = sorted(str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(17))
    write_points(tmp_path / "q", [(pid, rng.standard_normal(1536).astype(np.float32),
                                   {"org_id": f"org_{i % 3}", "body": "x" * 50}) for i, pid in enumerate(ids)])
    source = SourceSpec(collection="dac_memory", path=str(tmp_path / "q")).open()
    try:
        _check_resumable(source, 8, 3, 17)
        page, _ = next(iter(source.pages(None, 17)))
        assert [org for _, org, _ in page] == [f"org_{i % 3}" for i in range(17)]
        record = source.client.scroll("dac_memory", limit=1, with_payload=["org_id"])[0][0]
        assert record.payload == {"org_id": "org_0"}  # what pages() asks for: the other fields are not read
    finally:
        source.close()
