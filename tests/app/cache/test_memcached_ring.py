"""Placement and ejection in the ring, without servers."""

from __future__ import annotations

import pytest
from pymemcache.client.hash import HashClient

from app.cache.backends.memcached_ring import PLACEMENTS_KEPT, NodeRing

NODES = ["127.0.0.1:11001", "127.0.0.1:11002", "127.0.0.1:11003"]
KEYS = [f"market-api:api:17:key-{i}" for i in range(300)]


def ring(nodes: list[str] = NODES, eject_after: int = 2) -> NodeRing:
    return NodeRing(nodes, eject_after=eject_after, clock=lambda: 100.0)


def test_keys_land_where_a_pymemcache_hash_client_puts_them() -> None:
    """Another service reading the same cluster through HashClient finds the same keys."""
    hash_client = HashClient([tuple(n.split(":")) for n in NODES])
    placement = ring()
    for key in KEYS:
        assert placement.node_for(key) == hash_client.hasher.get_node(key)
    assert {placement.node_for(k) for k in KEYS} == set(NODES)


def test_a_node_leaves_after_consecutive_failures_and_only_its_keys_move() -> None:
    placement = ring()
    before = {k: placement.node_for(k) for k in KEYS}
    gone = NODES[1]
    assert placement.record_failure(gone) is False
    placement.record_success(gone)  # a success in between: not consecutive
    assert placement.record_failure(gone) is False
    assert placement.record_failure(gone) is True
    assert placement.members == [NODES[0], NODES[2]]
    assert placement.nodes[gone].ejections == 1
    assert placement.record_failure(gone) is True  # already out: another node may answer
    after = {k: placement.node_for(k) for k in KEYS}
    for key in KEYS:
        if before[key] == gone:
            assert after[key] != gone
        else:
            assert after[key] == before[key]


def test_a_rejoined_node_gets_its_keys_back() -> None:
    placement = ring(eject_after=1)
    before = {k: placement.node_for(k) for k in KEYS}
    assert placement.record_failure(NODES[0]) is True
    placement.rejoin(NODES[0])
    assert {k: placement.node_for(k) for k in KEYS} == before
    assert placement.nodes[NODES[0]].failures == 0


def test_the_last_node_never_leaves() -> None:
    """Its failures belong to the manager's breaker, which guards the whole cluster."""
    placement = ring(NODES[:2], eject_after=1)
    assert placement.record_failure(NODES[0]) is True
    for _ in range(5):
        assert placement.record_failure(NODES[1]) is False
    assert placement.members == [NODES[1]]
    assert all(placement.node_for(k) == NODES[1] for k in KEYS[:20])


def test_a_single_node_is_never_ejected() -> None:
    placement = ring(NODES[:1], eject_after=1)
    assert placement.record_failure(NODES[0]) is False
    assert placement.node_for("k") == NODES[0]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="at least one node"):
        NodeRing([], eject_after=1, clock=lambda: 0.0)
    with pytest.raises(ValueError, match="eject_after"):
        NodeRing(NODES, eject_after=0, clock=lambda: 0.0)


def test_remembered_placements_stay_bounded_and_right() -> None:
    placement = ring()
    hash_client = HashClient([tuple(n.split(":")) for n in NODES])
    keys = [f"k{i}" for i in range(PLACEMENTS_KEPT + 100)]
    for key in keys:
        placement.node_for(key)
    assert len(placement._placed) <= PLACEMENTS_KEPT
    for key in keys[:50] + keys[-50:]:  # forgotten and remembered ones alike
        assert placement.node_for(key) == hash_client.hasher.get_node(key)
