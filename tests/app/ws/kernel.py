"""The kernel's table of TCP sockets (/proc/net/tcp, what `ss -tn` shows), to see what a
server really still holds: a socket the app forgot can still hold megabytes of unsent data."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

#: TCP states as the kernel numbers them (include/net/tcp_states.h).
STATES = {
    1: "ESTABLISHED",
    2: "SYN-SENT",
    3: "SYN-RECV",
    4: "FIN-WAIT-1",
    5: "FIN-WAIT-2",
    6: "TIME-WAIT",
    7: "CLOSE",
    8: "CLOSE-WAIT",
    9: "LAST-ACK",
    10: "LISTEN",
    11: "CLOSING",
}
#: States that hold no buffer and no place in the server: the listener, and TIME-WAIT (a few
#: dozen bytes the kernel keeps after a clean close).
NOT_HELD = frozenset({"LISTEN", "TIME-WAIT"})


@dataclass(frozen=True, slots=True)
class TcpSocket:
    state: str
    local_port: int
    remote_port: int
    #: Bytes sent but not yet acknowledged by the peer (ss's Send-Q).
    send_queue: int


def tcp_sockets() -> list[TcpSocket]:
    found: list[TcpSocket] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, state, queues = fields[1], fields[2], fields[3], fields[4]
            send_queue = queues.split(":")[0]
            found.append(
                TcpSocket(
                    STATES.get(int(state, 16), state),
                    int(local.rsplit(":", 1)[1], 16),
                    int(remote.rsplit(":", 1)[1], 16),
                    int(send_queue, 16),
                )
            )
    return found


def held_by_server(port: int, clients: Collection[int] | None = None) -> list[TcpSocket]:
    """The server-side sockets on `port` still held by the kernel (optionally only those of
    the clients with these local ports)."""
    return [
        s
        for s in tcp_sockets()
        if s.local_port == port
        and s.state not in NOT_HELD
        and (clients is None or s.remote_port in clients)
    ]
