"""The tests' S3 API server: ``dcmtier.bench.s3server`` (the scale benchmark starts it too).

Run: ``python -m tests.s3server [--fail-on-part N]``.
"""

from __future__ import annotations

from dcmtier.bench.s3server import Server, main

__all__ = ["Server", "main"]

if __name__ == "__main__":
    main()
