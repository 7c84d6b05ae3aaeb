"""The central side: MQTT subscriber, idempotent store and the planners' per-stop maps."""
