"""Simulated plant devices: production units (automates) and Shelly Pro 1PM power meters.

The simulation logic (:mod:`devices.units`, :mod:`devices.shelly`, :mod:`devices.faults`,
:mod:`devices.buffer`) is pure and unit-tested; :mod:`devices.runner` does the MQTT I/O and
``python -m devices`` is the command line. Importing this package does nothing.
"""
