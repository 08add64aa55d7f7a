from __future__ import annotations

from app.cache.backends.memory import ENTRY_OVERHEAD_BYTES, MemoryBackend


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_lru_evicts_the_least_recently_used_entry() -> None:
    mem = MemoryBackend(max_entries=3, max_bytes=1 << 20)
    for k in "abc":
        mem.set_now(k, b"v", 0)
    assert mem.get_now("a") == b"v"  # a becomes most recent
    mem.set_now("d", b"v", 0)
    assert mem.get_now("b") is None
    assert {k for k in "acd" if mem.get_now(k) is not None} == {"a", "c", "d"}
    assert mem.entries == 3
    assert mem.evictions == 1


def test_byte_bound_holds_whatever_is_stored() -> None:
    limit = 10 * (ENTRY_OVERHEAD_BYTES + 1 + 100)
    mem = MemoryBackend(max_entries=10_000, max_bytes=limit)
    for i in range(1000):
        mem.set_now(str(i % 10), b"x" * 100, 0)
        mem.set_now(f"k{i}", b"y" * 100, 0)
        assert mem.bytes_used <= limit
    assert mem.entries <= 10


def test_value_larger_than_the_whole_cache_is_refused() -> None:
    mem = MemoryBackend(max_entries=10, max_bytes=2048)
    assert not mem.set_now("big", b"x" * 4096, 0)
    assert mem.entries == 0
    assert mem.bytes_used == 0


def test_replacing_a_key_does_not_leak_bytes() -> None:
    mem = MemoryBackend(max_entries=10, max_bytes=1 << 20)
    for _ in range(100):
        mem.set_now("k", b"x" * 1000, 0)
    assert mem.bytes_used == len("k") + 1000 + ENTRY_OVERHEAD_BYTES


def test_ttl_expires_lazily_on_read_and_in_sweep() -> None:
    clock = FakeClock()
    mem = MemoryBackend(max_entries=100, max_bytes=1 << 20, clock=clock)
    mem.set_now("short", b"1", 5)
    mem.set_now("long", b"2", 60)
    mem.set_now("forever", b"3", 0)
    clock.now += 10
    assert mem.get_now("short") is None
    assert mem.get_now("long") == b"2"
    mem.set_now("short2", b"1", 5)
    clock.now += 100
    assert mem.sweep() == 2  # short2 and long; short already went on read
    assert mem.entries == 1
    assert mem.get_now("forever") == b"3"


async def test_add_and_incr_follow_memcached_semantics() -> None:
    mem = MemoryBackend(max_entries=100, max_bytes=1 << 20)
    assert await mem.incr("n", 1) is None
    assert await mem.add("n", b"41", 0)
    assert not await mem.add("n", b"0", 0)
    assert await mem.incr("n", 1) == 42
    assert await mem.get("n") == b"42"
    assert await mem.delete("n")
    assert not await mem.delete("n")
