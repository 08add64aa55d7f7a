"""Run an app's lifespan and talk to it in-process over httpx's ASGI transport."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from app.services import Services


@asynccontextmanager
async def running_app(app: FastAPI) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client, app.state.services
