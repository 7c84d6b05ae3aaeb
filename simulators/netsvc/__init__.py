"""Simulated network services of a stop (portal, DNS, Speedtest Mini) behind one shaped link.

The connectivity probes are tested against these over real sockets on 127.0.0.1, so the values
they measure can be checked against what the simulated link really delivered.
"""
