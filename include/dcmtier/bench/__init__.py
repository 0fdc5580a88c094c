"""The benchmark (``dcmtier bench``, ``make bench``): dcmtier against the gdcmconv-per-file
chain, a developer tool apart from the product.

``run`` drives it; ``ours``, ``gdcmconv``, ``rss`` and ``dag`` measure; ``memory`` measures
peak RSS against the size of one multi-frame instance (``multiframe`` writes them);
``timing`` holds the clocks and statistics; ``layers``, ``report`` and ``table`` turn figures
into targets and tables.

May import anything in the package; nothing in the package imports it.
"""
