"""The bridge: MQTT -> validation -> thresholds/alarms -> batched, idempotent database writes,
with each MQTT message acknowledged only after the batch holding it is committed."""
