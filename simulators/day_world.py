"""The world of a simulated day: puts the itinerary's state into the simulators as simulated time runs.

Everything here follows the simulated clock: the GPS reads the bus's position from the itinerary
at every epoch, and :meth:`DayWorld.apply` (called by the runner many times per real second)
changes the modem's radio, the network's link, shore power, the printer and the broker link
whenever the itinerary says they change. Only changes are applied, so calling it often is cheap.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from agent.runtime.clock import ScaledClock
from simulators.devices import SimulatedBus
from simulators.gps import Truth
from simulators.itinerary import Itinerary
from simulators.netsvc.link import LinkProfile
from simulators.network import SimulatedNetwork
from simulators.relay import TcpRelay

#: The crew plugs the shore cable in this long after parking and pulls it this long before leaving.
PLUG_AFTER_S = 30.0
UNPLUG_BEFORE_S = 60.0

#: The modem simulator speaks 2G/3G/4G; a 5G cell in a scenario is shown to the agent as LTE.
_RATS = {"GSM": "GSM", "UMTS": "UMTS", "LTE": "LTE"}
#: IPP calls it "processing"; the printer simulator's word is "printing".
_PRINTER_STATES = {"processing": "printing"}


class DayWorld:
    """Drives the simulators from an itinerary on a simulated clock."""

    def __init__(
        self,
        itinerary: Itinerary,
        bus: SimulatedBus,
        network: SimulatedNetwork,
        relay: TcpRelay,
        clock: ScaledClock,
    ) -> None:
        self.itinerary = itinerary
        self.bus = bus
        self.network = network
        self.relay = relay
        self.clock = clock
        self._applied: dict[str, Any] = {}
        assert bus.gps is not None
        bus.gps.follow(self._truth)

    def _truth(self) -> Truth:
        fix = self.itinerary.position(self.clock.wall())
        return Truth(fix.lat, fix.lon, fix.speed_mps, fix.track_deg)

    def shore_at(self, t: float) -> bool:
        """Live while parked at a stop whose socket works, give or take the crew's cable handling."""
        index = self.itinerary.stop_index_at(t)
        if index is None or not self.itinerary.scenario.stops[index].shore_power:
            return False
        expected = self.itinerary.expected_stops[index]
        if expected.departure - expected.arrival <= 2 * (PLUG_AFTER_S + UNPLUG_BEFORE_S):
            return True
        return expected.arrival + PLUG_AFTER_S <= t < expected.departure - UNPLUG_BEFORE_S

    def apply(self, t: float) -> None:
        """Bring every simulator to the state the itinerary gives at ``t`` (simulated epoch seconds)."""
        it = self.itinerary
        signal = it.signal_at(t)
        if self._changed("signal", signal):
            assert self.bus.modem is not None
            self.bus.modem.set_operator(signal.operator, _RATS.get(signal.rat, "LTE"))
            self.bus.modem.set_signal(signal.rsrp_dbm, signal.rsrq_db, signal.sinr_db)
        link = it.link_at(t)
        if self._changed("link", link):
            self.network.set_link(LinkProfile(**dataclasses.asdict(link)))
        shore = self.shore_at(t)
        if self._changed("shore", shore):
            assert self.bus.power is not None
            (self.bus.power.plug if shore else self.bus.power.unplug)()
        printer = it.printer_state_at(t)
        if self._changed("printer", printer):
            assert self.bus.printer is not None
            self.bus.printer.set_state(
                _PRINTER_STATES.get(printer.state, printer.state), list(printer.reasons)
            )
        outage = it.outage_at(t) is not None
        if self._changed("outage", outage):
            (self.relay.cut if outage else self.relay.restore)()

    def _changed(self, key: str, value: object) -> bool:
        if key in self._applied and self._applied[key] == value:
            return False
        self._applied[key] = value
        return True
