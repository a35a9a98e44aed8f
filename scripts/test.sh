#!/usr/bin/env bash
# Run the whole test suite against a real Mosquitto and a real MariaDB (the fixtures start both).
# Extra arguments go to pytest, e.g. scripts/test.sh -k schema
source "$(dirname "$0")/bootstrap.sh"
NEED_MARIADB=1 NEED_BROWSER=1 NEED_NGINX=1 ensure_system_packages
ensure_venv "[test]"
echo ">> ruff"
.venv/bin/ruff check .
echo ">> pytest"
# Two workers (pytest-xdist): most tests wait on processes, brokers and databases, not on the CPU.
# loadfile: a module's tests stay on one worker, in order (some build on the one before, on a
# module-scoped rig); each worker that runs browser tests starts its own demo stack. PYTEST_WORKERS=0: serial.
exec .venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@"
