"""The floor under any delta final sync in local mode: open a qdrant folder and scroll every point.

Qdrant keeps no change log, so a delta must read the whole collection; this times just that (opening the
folder, ``QdrantSource.pages`` with a given page size, and the engine's screening: float32, encoding,
digests), in one process, nothing written anywhere::

    python bench/bench_read.py /tmp/cutover-bench/qdrant-100000 --page 10000 [--page 2000]
"""

from __future__ import annotations

import argparse
import time

from pytest_cutover.migrate.batch import screen_page
from pytest_cutover.migrate.source import SourceSpec


def read_all(path: str, page: int, collection: str = "dac_memory") -> dict[str, float]:
    """Seconds to open ``path`` and to scroll and screen every point in pages of ``page``."""
    t0 = time.perf_counter()
    source = SourceSpec(collection=collection, path=path).open()
    opened = time.perf_counter() - t0
    try:
        dim, scroll, screen, points = source.dimension(), 0.0, 0.0, 0
        pages = source.pages(None, page)
        while True:
            t1 = time.perf_counter()
            step = next(pages, None)
            t2 = time.perf_counter()
            scroll += t2 - t1
            if step is None:
                break
            screen_page(step[0], seq=0, dim=dim, seen=set(), next_offset=step[1])
            screen += time.perf_counter() - t2
            points += len(step[0])
    finally:
        source.close()
    return {"page": page, "points": points, "open_s": round(opened, 1), "scroll_s": round(scroll, 1),
            "screen_s": round(screen, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="a qdrant local-mode folder (bench_vectors.py / bench_delta.py seed one)")
    parser.add_argument("--page", type=int, action="append", help="scroll page size (repeatable)")
    parser.add_argument("--collection", default="dac_memory")
    args = parser.parse_args()
    for page in args.page or [10000]:
        print(read_all(args.path, page, args.collection), flush=True)


if __name__ == "__main__":
    main()
