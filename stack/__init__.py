"""Runs the whole stack locally (broker, bridge, web UI, simulators) for a demo or a trial."""
