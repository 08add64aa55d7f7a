"""Which memcached node holds a key, and which nodes are in the ring right now.

pymemcache's HashClient keeps this state in plain dicts that its calls mutate from whatever thread
runs them; under a thread pool that races (a server popped twice, a dict changing size while it is
iterated), and while a node is "failing" it answers misses silently instead of raising. So the
backend keeps the ring itself, touched only from the event loop thread, and uses pymemcache's
rendezvous hash for placement: keys land on the same node a HashClient with default settings
would pick.

A node leaves the ring after `eject_after` consecutive failed calls, never the last one in it:
with a single node left, its failures go up to the manager's breaker, which then protects the
whole cluster. A node that left is probed after `dead_timeout` (the backend does that) and
comes back only when the probe answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from pymemcache.client.rendezvous import RendezvousHash

PLACEMENTS_KEPT: Final = 4096
"""Placements remembered: pymemcache's murmur3 is pure Python, about 12 µs per node and key,
which would add a quarter of a memcached hit's cost on the event loop for every call."""


@dataclass(slots=True)
class NodeState:
    """Loop-thread bookkeeping of one node."""

    address: str
    failures: int = 0
    in_ring: bool = True
    ejected_at: float = 0.0
    """Clock reading when it last left the ring."""
    ejections: int = 0


class NodeRing:
    """Rendezvous placement over the nodes currently in the ring."""

    def __init__(
        self, addresses: Iterable[str], *, eject_after: int, clock: Callable[[], float]
    ) -> None:
        self.nodes = {address: NodeState(address) for address in addresses}
        if not self.nodes:
            raise ValueError("a ring needs at least one node")
        if eject_after < 1:
            raise ValueError("eject_after must be >= 1")
        self.eject_after = eject_after
        self._clock = clock
        self._hash = RendezvousHash()
        self._placed: dict[str, str] = {}
        for address in self.nodes:
            self._hash.add_node(address)

    @property
    def members(self) -> list[str]:
        """Nodes keys are placed on right now."""
        return list(self._hash.nodes)

    def node_for(self, key: str) -> str:
        """The node that holds `key` among those in the ring (there is always one)."""
        node = self._placed.get(key)
        if node is None:
            node = self._hash.nodes[0] if len(self._hash.nodes) == 1 else self._hash.get_node(key)
            if len(self._placed) >= PLACEMENTS_KEPT:
                self._placed.clear()  # bounded without LRU bookkeeping on the hot path
            self._placed[key] = node
        return node

    def record_success(self, address: str) -> None:
        self.nodes[address].failures = 0

    def record_failure(self, address: str) -> bool:
        """Count a failed call; True if the node is out of the ring (now or already)."""
        node = self.nodes[address]
        if not node.in_ring:
            return True
        node.failures += 1
        if node.failures < self.eject_after or len(self._hash.nodes) == 1:
            return False
        self._hash.remove_node(address)
        self._placed.clear()
        node.in_ring = False
        node.ejected_at = self._clock()
        node.ejections += 1
        return True

    def rejoin(self, address: str) -> None:
        """Put a node that answered its probe back; its keys are placed on it again."""
        node = self.nodes[address]
        if node.in_ring:
            return
        node.in_ring = True
        node.failures = 0
        self._hash.add_node(address)
        self._placed.clear()
