"""Connectivity probes run at every stop, and the public-service portals they target by default.

Each probe does real network I/O with timeouts and returns a frozen result from
:mod:`agent.probes.results`; none of them raises. The defaults below are the one place where the
portals the bus agents really use are named; the config overrides them.
"""

from __future__ import annotations

from urllib.parse import urlsplit

# The online procedures the public comes to the bus for: CAF, taxes, ANTS, France Travail, Assurance maladie.
DEFAULT_PORTAL_URLS: tuple[str, ...] = (
    "https://www.caf.fr/",
    "https://www.impots.gouv.fr/",
    "https://ants.gouv.fr/",
    "https://www.francetravail.fr/",
    "https://www.ameli.fr/",
)

# Resolving the portals' names is what a browser in the bus does first.
DEFAULT_DNS_NAMES: tuple[str, ...] = tuple(urlsplit(url).hostname or "" for url in DEFAULT_PORTAL_URLS)

# A HEAD round trip to a portal is the latency the agents feel; a bare TCP connect would not see it.
DEFAULT_LATENCY_TARGETS: tuple[str, ...] = DEFAULT_PORTAL_URLS[:2]
