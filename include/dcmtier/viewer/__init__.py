"""What a web viewer sees of each tier: whether its own decoders open the frames, whether the
pixels come out exact, how long decoding takes, and how long the download would.

- ``routing``: which codec each viewer (a Cornerstone3D dicom-image-loader release) decodes
  each transfer syntax with, as its source routes them.
- ``node``: one long-lived Node.js process that runs those codecs' WASM builds (the packages
  ``node/package.json`` pins, installed by ``make install``), JSON lines over its stdin/stdout.
- ``listing``: the tiers, studies, files and packages under an output root (local or a store)
  and the source files the catalogue says they were made from.
- ``check``: a sample of frames decoded by each viewer, compared with dcmtier's own decode and
  the source, summed up per (tier, viewer).
- ``runs``: the check of some of a pipeline run's studies, recorded in the catalogue and
  counted (the DAG's ``viewer_check`` task).

May import: the root modules, ``codec``, ``catalogue`` and ``storage``.
"""
