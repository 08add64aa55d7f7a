from __future__ import annotations

import pytest

from app.cache.keys import MAX_KEY_BYTES, data_key, validate_name, version_key


def _valid_memcached_key(key: str) -> bool:
    raw = key.encode("ascii")
    return len(raw) <= MAX_KEY_BYTES and all(0x21 <= b <= 0x7E for b in raw)


def test_plain_keys_stay_readable() -> None:
    assert data_key("p", "market", 7, "tickers") == "p:market:7:tickers"


@pytest.mark.parametrize(
    "key",
    ["x" * 1024, "naïve-ключ-🚀", "with space", "tab\there", "new\nline", "\x00nul", "", "é" * 200],
)
def test_any_key_becomes_a_valid_memcached_key(key: str) -> None:
    built = data_key("market-api", "market", 1_700_000_000_000, key)
    assert _valid_memcached_key(built)
    assert built.startswith("market-api:market:1700000000000#")


def test_longest_verbatim_key_fits_exactly() -> None:
    head = "p:api:1:"
    fits = "k" * (MAX_KEY_BYTES - len(head))
    assert data_key("p", "api", 1, fits) == head + fits
    assert "#" in data_key("p", "api", 1, fits + "k")


def test_namespaces_and_versions_never_share_a_key() -> None:
    for key in ["same", "x" * 1024, "ü"]:
        keys = {
            data_key("p", "api", 1, key),
            data_key("p", "market", 1, key),
            data_key("p", "api", 2, key),
        }
        assert len(keys) == 3


def test_a_caller_key_cannot_imitate_a_hashed_key() -> None:
    hashed = data_key("p", "api", 1, "ü")
    digest = hashed.split("#", 1)[1]
    assert data_key("p", "api", 1, digest) != hashed
    assert data_key("p", "api", 1, "#" + digest) != hashed


def test_version_key_is_per_namespace() -> None:
    assert version_key("p", "api") != version_key("p", "market")


@pytest.mark.parametrize("name", ["", "a:b", "a#b", "a b", "x" * 33, "ü"])
def test_bad_names_are_rejected(name: str) -> None:
    with pytest.raises(ValueError, match="must match"):
        validate_name(name)
