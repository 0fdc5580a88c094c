"""Quality gates: the limits a decoded frame must meet, one gate per usage band.

The values are those of the reference survey (docs/concepts/reference-survey.md); see
``DEFAULT_GATES``. A quality-targeted tier's gate is its own bound (``gate_for``). What happens
to a frame that breaks its gate is the policy's ``on_gate_failure`` (``dcmtier.codec.policy``).

PSNR and SSIM limits are judged against the source frame's own data range
(``FrameMetrics.psnr_db_range``, ``ssim_range``; ``dcmtier.measure.datarange``), not against the
nominal peak (2^BitsStored - 1)|slope|: against the nominal peak an image that uses a small part
of its bits passes any limit (a CT stored in 16 bits with values 0..1,200 coded at 400:1 gave SSIM
0.9999 and PSNR 71 dB that way, 0.87 and 32 dB against its range). The survey's PSNR limits are
converted to the range of a typical CT (``DEFAULT_GATES``).
"""

from __future__ import annotations

from dataclasses import dataclass

from dcmtier.measure.metrics import FrameMetrics
from dcmtier.tiers import Tier


@dataclass(frozen=True)
class Gate:
    """Limits a decoded frame must meet; ``None`` leaves a metric unchecked.

    ``max_abs_diff`` is in the frame's modality unit (HU for CT). ``min_psnr_db`` and
    ``min_ssim`` apply to PSNR and SSIM against the frame's data range (``psnr_db_range``,
    ``ssim_range``). A frame whose SSIM is undefined (smaller than 11x11) is judged on the other
    limits only.
    """

    max_abs_diff: float | None = None
    min_psnr_db: float | None = None
    min_ssim: float | None = None
    diff_unit: str | None = None  # apply max_abs_diff only to frames in this unit (None: all)

    def check(self, m: FrameMetrics) -> str | None:
        """Return the violated rules on one line, or None.

        E.g. "max |diff| 130 HU > 120 HU" or "PSNR 40.2 dB < 45 dB; SSIM 0.9470 < 0.98
        (against the frame's range 1196 HU)": a PSNR or SSIM rule names the range it used.
        """
        problems = []
        diff_applies = self.diff_unit is None or m.unit == self.diff_unit
        if self.max_abs_diff is not None and diff_applies and m.max_abs_diff > self.max_abs_diff:
            problems.append(
                f"max |diff| {m.max_abs_diff:g} {m.unit} > {self.max_abs_diff:g} {m.unit}"
            )
        relative = []
        if self.min_psnr_db is not None and m.psnr_db_range < self.min_psnr_db:
            relative.append(f"PSNR {m.psnr_db_range:.1f} dB < {self.min_psnr_db:g} dB")
        ssim = m.ssim_range
        if self.min_ssim is not None and ssim is not None and ssim < self.min_ssim:
            relative.append(f"SSIM {ssim:.4f} < {self.min_ssim:g}")
        if relative:
            relative[-1] += f" (against the frame's range {m.data_range:g} {m.unit})"
        return "; ".join(problems + relative) or None


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
#   extreme    r300..r1000:   r1000 gave 1284 HU, 30.5 dB, 0.8124; no |diff| limit, as grid
#                             artefacts make any bound arbitrary.
# The survey measured PSNR against the 12-bit peak 4095; the gates judge it against the frame's
# own range. The survey's CT is taken to span what the sample CT (dcmtier.sample) spans, about
# 2,170 HU (HU -1024..~1150): a CT's content seldom fills 4095 HU. So each PSNR limit is the
# survey's less 20 log10(4095 / 2170) = 5.5 dB, the same error in HU on such a CT (a CT filling
# its 12 bits gets that much more room than before). SSIM has no such conversion (the survey's
# was computed on HU, where air at -1024 dulls the luminance term); its limits are the survey's
# where the sample CT meets them against its range at the band's worst rate, and below its
# values there otherwise (OpenJPEG, five slices z = 0.05..0.85, worst slice: r5 63.7 dB /
# 0.9996, r20 48.0 dB / 0.9881, r100 38.8 dB / 0.9468, r300 31.7 dB / 0.8477, r1000 25.5 dB /
# 0.6560).
# The |diff| limits are in HU and apply to CT only (an MR's or a photograph's stored values
# have no such scale).
DEFAULT_GATES: dict[str, Gate] = {
    "diagnosis": Gate(max_abs_diff=25.0, min_psnr_db=54.5, min_ssim=0.999, diff_unit="HU"),
    "review": Gate(max_abs_diff=150.0, min_psnr_db=39.5, min_ssim=0.98, diff_unit="HU"),
    "preview": Gate(max_abs_diff=650.0, min_psnr_db=32.5, min_ssim=0.93, diff_unit="HU"),
    "thumbnail": Gate(max_abs_diff=1100.0, min_psnr_db=28.5, min_ssim=0.82, diff_unit="HU"),
    "extreme": Gate(min_psnr_db=22.5, min_ssim=0.60),
}


def gate_for(tier: Tier) -> Gate | None:
    """The gate a tier's frames must meet; None for lossless tiers (verified bit-exact).

    A quality-targeted tier is gated by its bound alone: a |diff| limit in every modality's
    units (HU for CT, stored values without a rescale), an SSIM limit against the frame's data
    range; a rate tier by its usage band's gate, whose |diff| limit applies to HU frames only.
    """
    if tier.lossless:
        return None
    if tier.bound is not None:
        return Gate(max_abs_diff=tier.bound.max_abs_diff, min_ssim=tier.bound.min_ssim)
    return DEFAULT_GATES.get(tier.use.value)
