"""The reference survey's rate-distortion curve, drawn beside ours.

A JPEG 2000 survey of a 399-slice dental CT compressed each file with
``gdcmconv --lossy --j2k -r RATE --irreversible``; its figures (docs/concepts/reference-survey.md)
are what users compare to. The x value is the *pixel* ratio (uncompressed stored pixel bytes /
encoded pixel bytes), the same ratio the catalogue records for our tiers, so the two curves
share an axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class SurveyPoint:
    rate: str
    pixel_ratio: float
    psnr_db: float
    ssim: float


SURVEY_LABEL: Final = "reference survey (gdcmconv, dental CT)"
SURVEY: Final = (
    SurveyPoint("r3", 3.0, 79.0, 1.0000),
    SurveyPoint("r5", 5.0, 64.3, 0.9997),
    SurveyPoint("r10", 9.9, 52.2, 0.9955),
    SurveyPoint("r15", 14.8, 48.2, 0.9895),
    SurveyPoint("r20", 19.7, 46.4, 0.9838),
    SurveyPoint("r30", 29.5, 44.1, 0.9735),
    SurveyPoint("r50", 48.3, 42.0, 0.9607),
    SurveyPoint("r100", 90.9, 39.5, 0.9365),
    SurveyPoint("r200", 144.3, 37.3, 0.9132),
    SurveyPoint("r300", 228.3, 35.8, 0.8954),
    SurveyPoint("r500", 350.5, 33.6, 0.8621),
    SurveyPoint("r1000", 545.3, 30.5, 0.8124),
)
