"""The codec stage: from a source instance's stored values to the frames and header of a
derived instance.

- ``pixels``: reading a source (header, frame layout, stored values);
- ``policy``: which tiers a modality and a pixel layout may take;
- ``backends/``: the codec registry (``j2k``, ``htj2k``, ``jls``) and rate control;
- ``layering``: J2K rate tiers cut from one layered encode;
- ``derive``: the derived instance's header (UIDs, lossy labelling, encapsulation).

May import: ``dcmtier.records``, ``dcmtier.tiers``, ``dcmtier.errors``, ``dcmtier.versions``.
"""
