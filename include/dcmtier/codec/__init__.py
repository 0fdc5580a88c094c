"""The codec stage: from a source instance's stored values to the frames and header of a
derived instance.

- ``pixels``: reading a source (frame layout, stored values); ``header`` checks its header,
  ``decoding`` decodes pixel data through pydicom (JPEG XL included);
- ``policy``: which tiers a modality and a pixel layout may take; ``candidates``: which codecs
  the codec-choosing tiers may choose from;
- ``backends/``: the codec registry (``j2k``, ``htj2k``, ``jls``, ``jxl``, ``jxl-jpeg``), one
  typed ``Backend`` each with its capability checks, and rate control;
- ``layering``: J2K rate tiers cut from one layered encode;
- ``derive``: the derived instance's header (UIDs, lossy labelling, encapsulation).

May import: ``dcmtier.records``, ``dcmtier.tiers``, ``dcmtier.errors``, ``dcmtier.versions``.
"""
