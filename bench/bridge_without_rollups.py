"""``python -m bench.bridge_without_rollups run``: the bridge with the rollup upkeep switched off, the
baseline bench_ingest measures that upkeep against (same process, same batches, the readings and
samples stored without adding them to ``readings_minute/hour``, ``power_readings_minute/hour``).
Never for a plant: its charts would miss what it stored."""

from __future__ import annotations

import sys
from functools import partial

from store import queries


def main() -> int:
    # The bridge calls these through the module (bridge/service.py), so the patch reaches it.
    queries.insert_readings = partial(queries.insert_readings, rollups=False)  # type: ignore[assignment]
    queries.insert_power_samples = partial(queries.insert_power_samples, rollups=False)  # type: ignore[assignment]
    from bridge.__main__ import main as bridge_main

    return bridge_main()


if __name__ == "__main__":
    sys.exit(main())
