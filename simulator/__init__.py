"""GPS ping simulator: couriers riding Bengaluru's streets, with faults of every reject kind on demand.

Read top to bottom: :mod:`simulator.fleet` (streets, couriers, GPS noise) -> :mod:`simulator.faults` (one
corruption per reject code) -> :mod:`simulator.stream` (schedule and fault draws; pure, no Kafka) ->
:mod:`simulator.run` (the Kafka loop) -> :mod:`simulator.cli` (``tracker simulate``).
"""

from simulator.config import SimConfig
from simulator.faults import DUPLICATE, FaultKind
from simulator.stream import SimPing, iter_pings

__all__ = ["DUPLICATE", "FaultKind", "SimConfig", "SimPing", "iter_pings"]
