"""Tests of the MQTT publisher, payloads and broker configuration, against the real mosquitto."""
