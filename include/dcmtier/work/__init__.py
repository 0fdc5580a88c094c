"""The unit of work: sources into tiers, verified, measured, packaged and recorded.

- ``compress``: one file into every requested tier (how: a frozen ``CompressConfig``);
- ``writing``: one output built, written atomically, verified before it takes its name;
- ``verify``: an output decoded and compared with its source;
- ``gating``: per-frame metrics, the tier's gate, and what a broken gate does;
- ``peak``: the peak resident memory a piece of work reached, in the process doing it;
- ``spool``: codestreams kept in a temporary file, not in memory (a choosing tier's candidates);
- ``batch``: many files over worker processes (``allocator`` tunes their heap);
- ``study``: one study x its tiers: compress, Parquet partition, ZIP, catalogue rows, under
  a frozen ``RunConfig`` (``config``: also what each attempt records of it);
- ``finish``: a study x tier's status, quality partition and package;
- ``layout``: where outputs go under the output root;
- ``quarantine``: copies of failed sources with their reasons.

May import: ``codec``, ``measure``, ``packaging``, ``catalogue``, and the root modules.
"""
