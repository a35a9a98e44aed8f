"""The bridge against a 3-node MariaDB Galera cluster on loopback, through bench/bench_galera.py's
own code (a short run): node 1, the one DATABASE_URL names, is killed mid-stream and started again;
with DATABASE_FAILOVER_HOSTS the bridge carries on on node 2, and every published reading is
stored exactly once.

Opt-in (a cluster costs ~1 min and galera-4, NEED_GALERA=1 scripts/bootstrap.sh): skipped unless run
with ``-m galera`` or PLANT_TEST_GALERA=1, so scripts/test.sh never runs it:

    .venv/bin/python -m pytest -m galera tests/integration/test_galera.py
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from bench.bench_galera import Options, report, run

pytestmark = [pytest.mark.galera, pytest.mark.integration]


def opted_in(config: pytest.Config) -> bool:
    """PLANT_TEST_GALERA=1, or a -m expression that asks for galera (not "not galera")."""
    markexpr = config.getoption("markexpr", "") or ""
    return os.environ.get("PLANT_TEST_GALERA") == "1" or re.search(r"(?<!not )\bgalera\b", markexpr) is not None


@pytest.fixture(autouse=True)
def _opt_in(request: pytest.FixtureRequest) -> None:
    if not opted_in(request.config):
        pytest.skip("opt-in: run with -m galera or PLANT_TEST_GALERA=1 (needs galera-4: NEED_GALERA=1)")


def test_killing_the_bridges_node_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    lines: list[str] = []

    def out(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    opts = Options(seconds=20, units=3, automates=5, rate=150, kill_after=8, kill_node=1, rejoin_after=5,
                   baseline=False, settle=45)
    galera, single = run(opts, tmp_path, out)
    report(galera, out)
    assert single is None
    assert galera.errors == (), "\n".join(lines)
    assert galera.published == int(opts.rate * opts.seconds)
    assert (galera.lost, galera.duplicated, galera.unexpected) == (0, 0, 0), "\n".join(lines)
    assert galera.stored == galera.published
    # The bridge moved to a failover node and wrote again while node 1 was down.
    assert galera.failover_s is not None and galera.timeline.resume() is not None, "\n".join(lines)
    assert galera.timeline.kill_t is not None and galera.timeline.resume() < opts.seconds - opts.kill_after
    # Node 1 came back and holds every reading too.
    assert galera.rejoin is not None
    assert galera.node_counts == {"node1": galera.published, "node2": galera.published, "node3": galera.published}
