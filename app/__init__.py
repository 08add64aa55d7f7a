"""Market-data service: REST and WebSocket API over a unified cache."""

__version__ = "0.1.0"
