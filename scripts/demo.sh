#!/usr/bin/env bash
# Run the whole stack locally: broker, bridge, web UI and simulators (demo rate), SQLite by default.
# Prints the dashboard URL and the mosquitto_sub line; Ctrl-C stops everything.
source "$(dirname "$0")/bootstrap.sh"
ensure_system_packages
ensure_venv ""
exec .venv/bin/python -m stack "$@"
