"""Cache key construction.

Memcached accepts keys of at most 250 bytes of printable ASCII without whitespace. Callers pass any
string (symbols, query strings, unicode); this module turns it into a valid key that stays unique
per namespace and per namespace version, hashing what cannot be stored verbatim.
"""

from __future__ import annotations

import hashlib
import re

MAX_KEY_BYTES = 250
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
# Printable ASCII except space: the characters memcached's text protocol accepts in a key.
_VERBATIM = re.compile(r"^[\x21-\x7e]+$")


def validate_name(name: str, what: str = "namespace") -> str:
    """Reject names that could make two different keys collide (':' and '#' are separators)."""
    if not _NAME.match(name):
        raise ValueError(f"{what} {name!r} must match [A-Za-z0-9_.-]{{1,32}}")
    return name


def version_key(prefix: str, namespace: str) -> str:
    """Key under which a namespace's current version number lives."""
    return f"{prefix}:{namespace}:version"


def data_key(prefix: str, namespace: str, version: int, key: str) -> str:
    """Build the stored key for a caller's key.

    Verbatim keys are `prefix:ns:version:key`; hashed keys are `prefix:ns:version#sha256`. The
    separator after the version differs, so a caller key can never imitate a hashed one, and the
    namespace stays in clear text so that two namespaces never share a key.
    """
    head = f"{prefix}:{namespace}:{version}"
    if _VERBATIM.match(key) and len(head) + 1 + len(key) <= MAX_KEY_BYTES:
        return f"{head}:{key}"
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{head}#{digest}"


def lease_key(prefix: str, stored_key: str) -> str:
    """Key of the cross-replica lease on a stored key (see lease.py).

    `prefix:lease#sha256`: '#' right after the second field can never start a data key
    (`prefix:ns:version...`) nor a version key, and the hash keeps it short whatever the key.
    """
    return f"{prefix}:lease#{hashlib.sha256(stored_key.encode()).hexdigest()}"
