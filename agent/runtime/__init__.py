"""The daemon's I/O side: device pollers, probe worker and the loop that feeds the pure core."""
