"""Mosquitto configuration: generated credentials, password file and ACL, and the runtime
rendering of our ``mosquitto.conf`` for a local broker."""
