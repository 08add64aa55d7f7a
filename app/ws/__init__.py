"""Live market data over WebSocket: `/ws/dashboard`, its connection manager and feed.

docs/websocket.md describes the protocol. `app.ws.manager.WebSocketManager.broadcast(topic,
data)` is how other code publishes (the `alerts` topic, for instance). Modules are imported from
where they live: the telemetry package imports `app.ws.instrumentation` and `app.ws.stats` alone.
"""
