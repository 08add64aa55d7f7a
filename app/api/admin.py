"""Fault injection over HTTP: `/api/admin/faults`.

Mounted only with `ENABLE_FAULT_INJECTION=true`; otherwise the paths do not exist and answer the
same 404 as any unknown path, so a production service does not even reveal them.

- `GET` the faults in force and the ballast held right now;
- `PUT` a complete set of faults (fields left out take their harmless defaults);
- `DELETE` every fault at once.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from app.api.responses import json_bytes
from app.errors import error_response
from app.faults import FaultInjector, FaultSettings, InsufficientMemory
from app.services import services_of

router = APIRouter(prefix="/api/admin", tags=["admin"])


async def get_fault_injector(request: Request) -> FaultInjector:
    injector = services_of(request).faults
    # The router is mounted only when the injector exists; this guards a miswired app.
    assert injector is not None, "fault injection router mounted without an injector"
    return injector


Injector = Annotated[FaultInjector, Depends(get_fault_injector)]


@router.get("/faults")
async def get_faults(injector: Injector) -> Response:
    """The faults in force, the ballast held (MiB) and whether a leak is growing it."""
    return json_bytes(injector.state())


@router.put(
    "/faults",
    responses={409: {"description": "The machine cannot spare the ballast asked for"}},
)
async def put_faults(settings: FaultSettings, injector: Injector) -> Response:
    """Replace every fault with these; the ballast is resized before the answer."""
    try:
        await injector.apply(settings)
    except InsufficientMemory as exc:
        return error_response(409, "insufficient_memory", str(exc))
    return json_bytes(injector.state())


@router.delete("/faults")
async def delete_faults(injector: Injector) -> Response:
    """Clear every fault: normal upstream and cache, ballast released, leak stopped."""
    await injector.reset()
    return json_bytes(injector.state())
