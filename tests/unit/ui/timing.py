"""How long the two pages take to build on a catalogue: queries plus HTML, as the routes do.

``overview (first)`` computes every aggregate; ``overview (unchanged)`` is what each later
view costs while the catalogue has not changed (the app keeps the aggregates until then).
"""

from __future__ import annotations

import time

from dcmtier.catalogue import Catalogue
from dcmtier.ui import app, pages, queries
from dcmtier.ui.frames import read_frames
from dcmtier.ui.pages import Links

LINKS = Links(app="/dcmtier", airflow="")


def render_times(url: str, *, study: str, tier: str, runs: int = 3) -> dict[str, list[float]]:
    """Seconds per run for the overview (first and unchanged) and one study x tier page."""
    catalogue = Catalogue.connect(url)
    times: dict[str, list[float]] = {"overview (first)": [], "overview (unchanged)": [],
                                     "study": []}  # fmt: skip
    try:
        for _ in range(runs):
            app._FIGURES.clear()
            for name in ("overview (first)", "overview (unchanged)"):
                started = time.perf_counter()
                with catalogue.engine.connect() as connection:
                    data = queries.overview(connection, app._figures(url, connection))
                    html = pages.render_overview(data, LINKS, "x")
                times[name].append(time.perf_counter() - started)
                assert "<svg" in html
            started = time.perf_counter()
            with catalogue.engine.connect() as connection:
                found = queries.study_tier(connection, study, tier)
                frames = read_frames(connection, study, tier, None)
                html = pages.render_study(found, frames, None, "", LINKS)
            times["study"].append(time.perf_counter() - started)
            assert "PSNR" in html
    finally:
        catalogue.close()
    return times
