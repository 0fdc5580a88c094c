"""The sources, tiers and strategies whose outputs must stay byte-identical (issue #17).

``python -m tests.unit.work.identity_cases OUT.json`` writes the SHA-256 of every output the
cases make with the ``dcmtier`` on ``PYTHONPATH``. ``fixtures/outputs_before_17.json`` was
written so with main's ``include/`` at 3abfbf3, before the fast path existed; main at f86f942
writes the same 188 files (`test_byte_identity.py` compares with them). Issue #27 changed the
jls-near2 outputs of signed sources on purpose (near-lossless JPEG-LS now codes signed values in
offset binary, and refuses signed sources without a Rescale Intercept): those five entries
were rewritten, or removed where the source is now refused; every other digest is as before.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from dcmtier.records import LAYERED, PER_TIER
from dcmtier.sample import write_ct_series
from dcmtier.tiers import get_tier
from dcmtier.versions import software_versions
from dcmtier.work.compress import CompressConfig, compress_file
from tests.support import reference_file

TIERS = (
    "j2k-lossless",
    "j2k-r20",
    "j2k-r100",
    "htj2k-lossless",
    "htj2k-r20",
    "jls-lossless",
    "jls-near2",
    "jxl-lossless",
    "jxl-jpeg",
    "j2k-maxerr150",
)
# explicit VR little endian sources of the common kind, and others that take pydicom's path
REFERENCE_FILES = (
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_jp2klossless.dcm",
    "SC_rgb_small_odd.dcm",
    "examples_overlay.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",  # JPEG baseline: the one source jxl-jpeg recompresses
)
VERSIONS = ("pydicom", "pylibjpeg-openjpeg", "imagecodecs", "pyjpegls", "dcmtier")


def sources(folder: Path) -> list[Path]:
    """The cases' source files, written under ``folder``: two small sample CT series (signed,
    unsigned) and pydicom's reference files."""
    files = write_ct_series(folder / "signed", slices=3, rows=64, columns=64, signed=True)
    files += write_ct_series(
        folder / "unsigned", slices=3, rows=64, columns=64, signed=False, seed=1, noise_hu=20.0
    )
    return files + [reference_file(name) for name in REFERENCE_FILES]


def make_outputs(folder: Path, out: Path, strategy: str) -> dict[str, str]:
    """Compress every case into ``out``; return each output's path (relative) and SHA-256."""
    tiers = [get_tier(name) for name in TIERS]
    options = CompressConfig(out, strategy=strategy, layer_cache=out / "cache")
    for source in sources(folder):
        compress_file(source, tiers, options)
    return {
        str(path.relative_to(out)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(out.rglob("*.dcm"))
        if "cache" not in path.relative_to(out).parts
    }


def versions() -> dict[str, str]:
    found = software_versions()
    return {name: str(found.get(name)) for name in VERSIONS}


def main(target: Path) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        outputs = {
            strategy: make_outputs(root / "sources", root / strategy, strategy)
            for strategy in (PER_TIER, LAYERED)
        }
    target.write_text(
        json.dumps({"versions": versions(), "outputs": outputs}, indent=1, sort_keys=True) + "\n"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
