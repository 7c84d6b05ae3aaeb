"""The pure core of busagent: stops, catalog, probe scheduling and time; no I/O, ``now`` passed in."""
