"""The packaging stage: one deterministic ZIP per study x tier with a checksummed manifest.

May import: ``dcmtier.records``, ``dcmtier.tiers``, ``dcmtier.errors``.
"""
