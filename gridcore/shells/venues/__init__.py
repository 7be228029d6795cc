"""Live venue adapters, one subpackage per venue (each behind an optional extra).

Nothing here is imported by the core or by the shells that run a simulated bot: a venue's
dependencies (signing libraries, HTTP and WebSocket clients) load only when that venue is used.
"""
