"""gridcore's I/O shells: the command line, the runtime loop, the journal and venue adapters.

Shells make no trading decision: they turn the core's commands into requests and what venues
say into events. Every decision is in :func:`gridcore.step`.
"""
