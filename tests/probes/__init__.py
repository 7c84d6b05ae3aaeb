"""Tests of the connectivity probes against the simulated network services."""
