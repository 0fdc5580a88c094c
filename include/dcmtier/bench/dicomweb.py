"""What a DICOMweb archive costs per instance: ``python -m dcmtier.bench.dicomweb URL``.

Against a server already holding studies (credentials from the environment, as for the
command line), measures on a fresh embedded catalogue in a temporary folder: the first
discovery pass (QIDO-RS study and instance searches, metadata of every instance), a second
pass (one study search, nothing new), the metadata read one instance per request, and the
WADO-RS retrieval of every instance as stored (``$DCMTIER_DICOMWEB_REQUESTS`` at a time).
Prints one JSON object: seconds, and milliseconds per instance.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from dcmtier.catalogue import Catalogue
from dcmtier.discovery.index import index_landing
from dcmtier.storage.dicomweb import (
    Server,
    instance_uris,
    requests_allowed,
    retrieve_all,
    split_uri,
)


def measure(url: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="dcmtier-bench-dicomweb-") as folder:
        db = f"sqlite:///{folder}/catalogue.db"
        Catalogue.upgrade(db)
        catalogue = Catalogue.connect(db)
        try:
            first = index_landing(url, catalogue).as_dict()
            second = index_landing(url, catalogue).as_dict()
        finally:
            catalogue.close()
        started = time.perf_counter()
        uris = instance_uris(url)
        listing = time.perf_counter() - started
        refs = [split_uri(u)[1] for u in uris]
        started = time.perf_counter()
        with Server(url) as server:
            for ref in refs:
                server.metadata(ref.study, ref.series, ref.sop)
        metadata = time.perf_counter() - started
        targets = [Path(folder) / f"{n:06d}.dcm" for n in range(len(uris))]
        started = time.perf_counter()
        retrieve_all(uris, targets)
        retrieval = time.perf_counter() - started
        size = sum(t.stat().st_size for t in targets)
    count = max(1, len(uris))
    return {
        "instances": len(uris), "studies": len({r.study for r in refs}), "bytes": size,
        "first_pass": first, "second_pass": second,
        "qido_listing_s": round(listing, 3),
        "qido_listing_ms_per_instance": round(1000 * listing / count, 3),
        "metadata_per_instance_ms": round(1000 * metadata / count, 3),
        "first_pass_ms_per_instance": round(1000 * first["seconds"] / count, 3),
        "wado_requests_at_once": requests_allowed(),
        "wado_ms_per_instance": round(1000 * retrieval / count, 3),
        "wado_mib_per_s": round(size / (1 << 20) / retrieval, 1) if retrieval else None,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="dicomweb+http(s)://host/prefix")
    print(json.dumps(measure(parser.parse_args().url), indent=1))


if __name__ == "__main__":
    main()
