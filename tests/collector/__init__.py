"""Tests of the collector: ingest, store, stats."""
