"""Market analytics served by the API: movers, overview, regime."""
