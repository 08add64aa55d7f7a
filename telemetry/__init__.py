"""OpenTelemetry for the service: providers, instruments, processors and the hooks `app` calls.

Business code never imports the SDK; it calls small hook protocols (`app.cache.instrumentation`,
`app.ws.instrumentation`) that this package implements.
"""
