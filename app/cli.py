"""`market-api`: run the service under uvicorn with the configured host and port."""

from __future__ import annotations

import logging

import uvicorn
from fastapi import FastAPI

from app.http_limits import limited_http_protocol
from app.settings import Settings
from app.ws.server import GracefulServer


def server_config(app: FastAPI, settings: Settings) -> uvicorn.Config:
    """How uvicorn serves the app: the same for `market-api` and the tests that attack it."""
    return uvicorn.Config(
        app,
        host=settings.app_host,
        port=settings.app_port,
        log_level=settings.log_level.lower(),
        lifespan="on",
        # httptools with a bounded request head (size and time): see app/http_limits.py.
        http=limited_http_protocol(settings.http_max_header_bytes, settings.http_header_timeout),
        # Past this many open connections or requests in flight, uvicorn answers 503 instead of
        # taking on more work.
        limit_concurrency=settings.http_max_concurrency,
        # Oversized client frames are refused by the protocol layer (close 1009) before the app
        # ever buffers them; the app checks the same limit for servers that do not.
        ws_max_size=settings.ws_max_message_bytes,
        # Compression would deflate every broadcast once per subscriber (the frame is serialized
        # once for all of them) and keep a compressor of tens of kilobytes per socket.
        ws_per_message_deflate=False,
    )


def main() -> None:
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from app.main import app  # built on import: after logging is configured

    config = server_config(app, settings)
    # Closes the app's WebSockets with 1001 before uvicorn closes them with 1012.
    try:
        GracefulServer(config, app).run()
    except KeyboardInterrupt:
        # uvicorn re-raises Ctrl-C once its shutdown is complete; the log already says so.
        raise SystemExit(130) from None
