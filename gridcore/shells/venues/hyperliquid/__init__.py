"""Hyperliquid: L1 action signing, the per-signer nonce allocator, instruments from ``meta``,
the adapter, and a loopback fake of the venue for tests and demos.

Install with ``pip install 'gridcore[hyperliquid]'`` (the fake also needs
``gridcore[hyperliquid-fake]``). See ``docs/hyperliquid.md``.
"""
