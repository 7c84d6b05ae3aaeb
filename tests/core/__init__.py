"""Tests of the pure core: stops, catalog, scheduler, timebase."""
