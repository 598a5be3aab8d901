"""Benchmark: how long the star-graph domain takes to generate its training graphs.

Run ``python plugins/loflex-graphs/tests/bench_dataset.py [COUNT]``; it prints the seconds
and graphs per second for COUNT (default 50,000) easy graphs, without the disk cache. A
time is a measurement of the machine it runs on, so it is reported here, not asserted by
the test suite (``test_fifty_thousand_easy_graphs_generate`` checks the data itself).
"""

from __future__ import annotations

import sys
import time

from loflex_graphs.domain import StarGraphDomain


def main(count: int = 50_000) -> None:
    """Generate ``count`` easy training graphs and print the time it took."""
    start = time.perf_counter()
    options = StarGraphDomain.Options(difficulty="easy", cache=False, train_size=count)
    data = StarGraphDomain(options).examples("train")
    seconds = time.perf_counter() - start
    print(f"{len(data)} easy star graphs in {seconds:.2f} s ({len(data) / seconds:,.0f} per s)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000)
