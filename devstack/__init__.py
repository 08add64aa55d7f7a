"""Run the real servers (memcached, Prometheus, Alertmanager) as local processes, the whole local
stack (`market-stack`) and the load generator (`market-load`).

Used by those commands and by the tests, so both start everything the same way.
"""
