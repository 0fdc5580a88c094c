"""Quality gates: the limits a decoded frame must meet, one gate per usage band.

The values are those of the reference survey (docs/concepts/reference-survey.md); see
``DEFAULT_GATES``. A quality-targeted tier's gate is its own bound (``gate_for``). What happens
to a frame that breaks its gate is the policy's ``on_gate_failure`` (``dcmtier.codec.policy``).
"""

from __future__ import annotations

from dataclasses import dataclass

from dcmtier.measure.metrics import FrameMetrics
from dcmtier.tiers import Tier


@dataclass(frozen=True)
class Gate:
    """Limits a decoded frame must meet; ``None`` leaves a metric unchecked.

    ``max_abs_diff`` is in the frame's modality unit (HU for CT). A frame whose SSIM is
    undefined (smaller than 11x11) is judged on the other limits only.
    """

    max_abs_diff: float | None = None
    min_psnr_db: float | None = None
    min_ssim: float | None = None
    diff_unit: str | None = None  # apply max_abs_diff only to frames in this unit (None: all)

    def check(self, m: FrameMetrics) -> str | None:
        """Return the violated rules on one line (e.g. "max |diff| 130 HU > 120 HU"), or None."""
        problems = []
        diff_applies = self.diff_unit is None or m.unit == self.diff_unit
        if self.max_abs_diff is not None and diff_applies and m.max_abs_diff > self.max_abs_diff:
            problems.append(
                f"max |diff| {m.max_abs_diff:g} {m.unit} > {self.max_abs_diff:g} {m.unit}"
            )
        if self.min_psnr_db is not None and m.psnr_db < self.min_psnr_db:
            problems.append(f"PSNR {m.psnr_db:.1f} dB < {self.min_psnr_db:g} dB")
        if self.min_ssim is not None and m.ssim is not None and m.ssim < self.min_ssim:
            problems.append(f"SSIM {m.ssim:.4f} < {self.min_ssim:g}")
        return "; ".join(problems) or None


# Every lossless tier must give back the stored values exactly.
LOSSLESS_GATE = Gate(max_abs_diff=0.0)

# One gate per usage band (dcmtier.tiers.Use). Each band's limits sit a little beyond the worst
# rate the reference survey assigns to it (docs/concepts/reference-survey.md, 12-bit CT, HU),
# so a tier that behaves like the survey passes and a broken encode (wrong sign or bit depth, a
# garbled tile: thousands of HU, PSNR far below 30 dB) fails:
#   diagnosis  lossless..r5:  r5 gave max 20 HU, 64.3 dB, SSIM 0.9997
#   review     r10..r20:      r20 gave 129 HU, 46.4 dB, 0.9838
#   preview    r20..r100:     r100 gave 556 HU, 39.5 dB, 0.9365
#   thumbnail  r100..r300:    r300 gave 896 HU, 35.8 dB, 0.8954
#   extreme    r300..r1000:   r1000 gave 1284 HU, 30.5 dB, 0.8124; the noisier sample CT
#                             (dcmtier.sample) gives 0.76, hence 0.70; no |diff| limit, as
#                             grid artefacts make any bound arbitrary.
# The PSNR and SSIM limits are scale-free; the |diff| limits are in HU and apply to CT only
# (an MR's or a photograph's stored values have no such scale).
DEFAULT_GATES: dict[str, Gate] = {
    "diagnosis": Gate(max_abs_diff=25.0, min_psnr_db=60.0, min_ssim=0.999, diff_unit="HU"),
    "review": Gate(max_abs_diff=150.0, min_psnr_db=45.0, min_ssim=0.98, diff_unit="HU"),
    "preview": Gate(max_abs_diff=650.0, min_psnr_db=38.0, min_ssim=0.93, diff_unit="HU"),
    "thumbnail": Gate(max_abs_diff=1100.0, min_psnr_db=34.0, min_ssim=0.88, diff_unit="HU"),
    "extreme": Gate(min_psnr_db=28.0, min_ssim=0.70),
}


def gate_for(tier: Tier) -> Gate | None:
    """The gate a tier's frames must meet; None for lossless tiers (verified bit-exact).

    A quality-targeted tier is gated by its bound alone, in every modality's units (HU for CT,
    stored values without a rescale); a rate tier by its usage band's gate, whose |diff| limit
    applies to HU frames only.
    """
    if tier.lossless:
        return None
    if tier.bound is not None:
        return Gate(max_abs_diff=tier.bound.max_abs_diff, min_ssim=tier.bound.min_ssim)
    return DEFAULT_GATES.get(tier.use.value)
