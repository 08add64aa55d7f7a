"""Run the real servers (memcached, Prometheus, Alertmanager) as local processes.

Used by the `market-stack` command and by the tests, so both start them the same way.
"""
