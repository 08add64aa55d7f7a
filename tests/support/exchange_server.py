"""The exchange simulator (devstack/exchange_sim.py) under a real uvicorn, in a thread, on a port
that stays the same across `stop()` and `start()`: an exchange that goes away and comes back."""

from __future__ import annotations

import threading

import uvicorn

from app.upstream.simulator import ExchangeSimulator, SimulatorConditions
from devstack.exchange_sim import create_simulator_app
from devstack.process import free_port, wait_for_port


class ExchangeServer:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.simulator = ExchangeSimulator(60, SimulatorConditions(0, 0, 0), seed=5)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ExchangeServer:
        config = uvicorn.Config(
            create_simulator_app(self.simulator),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        wait_for_port("127.0.0.1", self.port)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
            if self._thread.is_alive():
                raise RuntimeError("the exchange simulator did not stop")
        self._server = self._thread = None

    def __enter__(self) -> ExchangeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
