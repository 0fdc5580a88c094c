"""The unit of work: sources into tiers, verified, measured, packaged and recorded.

- ``compress``: one file into every requested tier, written atomically and verified;
- ``batch``: many files over worker processes (``allocator`` tunes their heap);
- ``study``: one study x its tiers: compress, Parquet partition, ZIP, catalogue rows;
- ``layout``: where outputs go under the output root;
- ``quarantine``: copies of failed sources with their reasons.

May import: ``codec``, ``measure``, ``packaging``, ``catalogue``, and the root modules.
"""
