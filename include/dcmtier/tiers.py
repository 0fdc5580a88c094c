"""The tier table: every named output dcmtier can make, as data.

A tier's ``target_ratio`` N means the encoded pixel data is N times smaller than the
uncompressed stored pixel bytes (Rows x Columns x Samples x Frames x BitsAllocated / 8).
A quality-targeted tier has a ``bound`` instead: each frame is coded at the highest ratio whose
decoded frame meets it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any, Final

from dcmtier.errors import ConfigError


class Use(StrEnum):
    """Intended use bands from the reference survey (docs/concepts/reference-survey.md)."""

    DIAGNOSIS = "diagnosis"
    REVIEW = "review"
    PREVIEW = "preview"
    THUMBNAIL = "thumbnail"
    EXTREME = "extreme"


@dataclass(frozen=True)
class Codec:
    """A codec family and what the DICOM output must say about it."""

    label: str  # registry key in dcmtier.codec.backends
    lossless_syntax: str
    lossy_syntax: str
    lossy_method: str  # Lossy Image Compression Method (0028,2114)
    description: str


J2K = Codec("j2k", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "ISO_15444_1", "JPEG 2000")
HTJ2K = Codec(
    "htj2k", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.203", "ISO_15444_15", "HTJ2K"
)
JLS = Codec("jls", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81", "ISO_14495_1", "JPEG-LS")
# JPEG XL (DICOM Supplement 232): JPEG XL Lossless (.110) and JPEG XL (.112) for pixels; the
# JPEG Recompression syntax (.111) re-encodes a source's JPEG bitstream losslessly, so both of
# its syntaxes are .111 and it never labels an output lossy itself.
JXL = Codec("jxl", "1.2.840.10008.1.2.4.110", "1.2.840.10008.1.2.4.112", "ISO_18181_1", "JPEG XL")
JXL_JPEG = Codec(
    "jxl-jpeg",
    "1.2.840.10008.1.2.4.111",
    "1.2.840.10008.1.2.4.111",
    "ISO_18181_1",
    "JPEG XL JPEG recompression",
)
# A codec-choosing tier's codec until an instance is coded: each output then names the codec
# chosen for it (`Tier.chosen`), so nothing is ever encoded or labelled as "auto".
CHOSEN = Codec("auto", "", "", "", "the smallest of its candidates")


# What a bound's SSIM is measured against (dcmtier.measure.datarange): L is the source frame's
# range of values in modality units, its 0.1st to 99.9th percentile, not (2^BitsStored - 1).
SSIM_RANGE: Final = "source frame, 0.1st-99.9th percentile"


@dataclass(frozen=True)
class Bound:
    """The quality every frame of a quality-targeted tier meets, against its original.

    ``max_abs_diff`` is in the frame's modality units (HU for CT; stored values where the
    instance has no rescale): it does not depend on the bits stored. ``min_ssim`` is SSIM with
    L = the original frame's data range (``SSIM_RANGE``), so it means the same on a 12-bit CT
    and on an image using a small part of 16 bits (``dcmtier.measure.datarange``).
    """

    max_abs_diff: float | None = None
    min_ssim: float | None = None

    def describe(self) -> str:
        """E.g. "max |diff| <= 20 (modality units)" or "SSIM >= 0.98 (L = the frame's range)"."""
        parts = []
        if self.max_abs_diff is not None:
            parts.append(f"max |diff| <= {self.max_abs_diff:g} (modality units)")
        if self.min_ssim is not None:
            parts.append(f"SSIM >= {self.min_ssim:g} (L = the frame's range)")
        return " and ".join(parts)

    def parameters(self) -> dict[str, object]:
        """The bound as it enters a derived UID: its limits, and for an SSIM limit what L is,
        so outputs of the SSIM bound as measured against the bits stored (before dcmtier
        measured SSIM against the frame's range) and since have different UIDs."""
        params: dict[str, object] = asdict(self)
        if self.min_ssim is not None:
            params["ssim_range"] = SSIM_RANGE
        return params

    def short(self) -> str:
        """E.g. "Δ≤20" (the largest |diff|) or "SSIM≥.98": a narrow table cell."""
        parts = []
        if self.max_abs_diff is not None:
            parts.append(f"Δ≤{self.max_abs_diff:g}")
        if self.min_ssim is not None:
            parts.append(f"SSIM≥{self.min_ssim:g}".replace("≥0.", "≥."))
        return ",".join(parts)


@dataclass(frozen=True)
class Tier:
    """One named output: a codec and either lossless, a target ratio, a JPEG-LS NEAR, or a
    quality bound each frame meets at the highest ratio that meets it.

    A JPEG-LS tier with a bound (``jls-maxerr20``) meets it by construction: its NEAR is derived
    per instance from the bound and the Rescale Slope. A tier with ``candidates`` chooses, per
    instance, the smallest output among those codecs that meets its bound (or, without one, is
    lossless); ties go to the earlier candidate, listed fastest decoder first.
    """

    name: str
    codec: Codec
    use: Use
    target_ratio: float | None = None  # None: no rate target
    near: int = 0  # JPEG-LS NEAR, or JPEG XL's lattice (`jpegxl.quantise`); 0 is lossless
    effort: int | None = None  # JPEG XL encoder effort (1 fastest .. 9 smallest)
    bound: Bound | None = None  # quality-targeted: no rate target, a bound per frame
    candidates: tuple[Codec, ...] = ()  # codec-choosing: these, fastest decoder first

    @property
    def chooses(self) -> bool:
        """True for a tier that picks its codec per instance."""
        return bool(self.candidates)

    def chosen(self, codec: Codec, **changes: Any) -> Tier:
        """This tier as coded for one instance by ``codec`` (its name, bound and use kept)."""
        return replace(self, codec=codec, candidates=(), **changes)

    @property
    def lossless(self) -> bool:
        return self.target_ratio is None and self.near == 0 and self.bound is None

    @property
    def transfer_syntax(self) -> str:
        return self.codec.lossless_syntax if self.lossless else self.codec.lossy_syntax

    def as_dict(self) -> dict[str, Any]:
        """The tier as plain data: what ``dcmtier tiers --json`` prints, the catalogue stores."""
        return {
            "name": self.name,
            "codec": self.codec.label,
            "lossless": self.lossless,
            "target_ratio": self.target_ratio,
            "near": self.near,
            "transfer_syntax": self.transfer_syntax,
            "use": self.use.value,
        }

    def parameters(self) -> dict[str, object]:
        """What determines this tier's bytes; part of the derived UID's entropy.

        ``effort`` appears only for tiers that have one, so the derived UIDs of the other
        tiers stay what they were before JPEG XL was added.
        ``bound`` appears only for a quality-targeted tier, likewise.
        """
        params: dict[str, object] = {
            "tier": self.name,
            "codec": self.codec.label,
            "target_ratio": self.target_ratio,
            "near": self.near,
            "transfer_syntax": self.transfer_syntax,
        }
        if self.effort is not None:
            params["effort"] = self.effort
        if self.bound is not None:
            params["bound"] = self.bound.parameters()
        return params

    def describe_target(self) -> str:
        """What a lossy output of this tier aimed at, for its Derivation Description."""
        if self.bound is not None and self.codec.label == "jls":
            return f"{self.bound.describe()} by construction, NEAR={self.near}"
        if self.bound is not None and self.near:
            return (
                f"{self.bound.describe()} by construction, NEAR={self.near}: values on a "
                f"lattice of step {2 * self.near + 1}, then coded losslessly"
            )
        if self.bound is not None:
            return f"each frame at the highest ratio meeting {self.bound.describe()}"
        if self.target_ratio:
            return f"target {self.target_ratio:g}:1"
        return f"target NEAR={self.near}"


def _use_for_ratio(ratio: float) -> Use:
    """Usage band of a rate, as the reference survey table assigns r3..r1000."""
    bands = ((5, Use.DIAGNOSIS), (20, Use.REVIEW), (50, Use.PREVIEW), (200, Use.THUMBNAIL))
    return next((use for limit, use in bands if ratio <= limit), Use.EXTREME)


def _use_for_bound(max_abs_diff: float) -> Use:
    """Usage band of a max |diff| bound in HU, as the diagnosis and review gates set them."""
    return Use.DIAGNOSIS if max_abs_diff <= 25 else Use.REVIEW


def _choosing_bound_tier(max_abs_diff: int) -> Tier:
    """``maxerr{N}``: the smallest of ``BOUND_CANDIDATES`` meeting max |diff| N per instance."""
    bound = Bound(max_abs_diff=float(max_abs_diff))
    use = _use_for_bound(max_abs_diff)
    return Tier(f"maxerr{max_abs_diff}", CHOSEN, use, bound=bound, candidates=BOUND_CANDIDATES)


J2K_RATES = (3, 5, 10, 15, 20, 30, 50, 100, 200, 300, 500, 1000)
HTJ2K_RATES = (10, 20, 50, 100)
JXL_RATES = (20, 50)
# Effort of jxl-lossless: 3 is the knee of the size/time table in docs/concepts/jpeg-xl.md (effort 1
# and 2 are larger than J2K lossless; 5, 7 and 9 are within 1.5 % of 3's size and 5-40x
# slower). The lossy tiers use libjxl's default, 7: at the same ratio it gave 1-3 dB more
# PSNR than effort 3 on the sample CT.
JXL_LOSSLESS_EFFORT = 3
JXL_LOSSY_EFFORT = 7
# Effort of the JPEG XL candidate of maxerr{N} (values on a lattice of step 2 NEAR + 1, coded
# losslessly). On the three 24 x 256^2 noisy CT series of tests/unit/work/frontier_cases.py at
# NEAR 20, effort 3 / 5 / 6 / 7 / 9 stored 0.88-1.00 / 0.69-0.91 / 0.66-0.87 / 0.65-0.86 /
# 0.62-0.83x JPEG-LS's bytes; maxerr20's whole choice cost 2.3-2.9x (5), 2.5-3.3x (6) and
# 2.8-3.6x (7) the CPU time of a J2K lossless encode. 6 is the one effort that meets the size
# target (<= 0.35x j2k-r5) on the signed series; none meets both targets there (near-lossless.md).
JXL_NEAR_EFFORT = 6
JLS_BOUNDS = (5, 20, 150)  # jls-maxerr{N}: max |diff| N in modality units, NEAR per instance
# Candidates of the codec-choosing tiers, the fastest decoder first (ties go to it): measured
# in Node on one 512x512 16-bit frame, HTJ2K 2.1 ms, JPEG-LS 7.4, JPEG XL 42, J2K 55-69.
BOUND_CANDIDATES = (HTJ2K, JLS, JXL, J2K)
LOSSLESS_CANDIDATES = (HTJ2K, JLS, JXL, J2K)
# The codec families a policy may restrict the choosing tiers to (`dcmtier.codec.candidates`)
CANDIDATE_FAMILIES = tuple(
    c.label for c in dict.fromkeys((*BOUND_CANDIDATES, *LOSSLESS_CANDIDATES))
)
# The families each web viewer decodes in every syntax dcmtier writes for them: a policy's
# ``viewers`` keeps the choosing tiers to those (the releases of `dcmtier.viewer.routing`,
# tests check that the two agree). OHIF pins dicom-image-loader 5.6.8: no JPEG XL decoder.
VIEWER_FAMILIES: dict[str, tuple[str, ...]] = {
    "cornerstone-5.6.8": ("htj2k", "jls", "j2k"),
    "cornerstone-5.14.0": ("htj2k", "jls", "jxl", "j2k"),
}

TIERS: dict[str, Tier] = {
    t.name: t
    for t in (
        Tier("j2k-lossless", J2K, Use.DIAGNOSIS),
        *(Tier(f"j2k-r{n}", J2K, _use_for_ratio(n), target_ratio=float(n)) for n in J2K_RATES),
        Tier("htj2k-lossless", HTJ2K, Use.DIAGNOSIS),
        *(
            Tier(f"htj2k-r{n}", HTJ2K, _use_for_ratio(n), target_ratio=float(n))
            for n in HTJ2K_RATES
        ),
        Tier("jls-lossless", JLS, Use.DIAGNOSIS),
        Tier("jls-near2", JLS, Use.DIAGNOSIS, near=2),
        Tier("jxl-lossless", JXL, Use.DIAGNOSIS, effort=JXL_LOSSLESS_EFFORT),
        Tier("jxl-jpeg", JXL_JPEG, Use.DIAGNOSIS),
        *(
            Tier(
                f"jxl-r{n}", JXL, _use_for_ratio(n), target_ratio=float(n), effort=JXL_LOSSY_EFFORT
            )
            for n in JXL_RATES
        ),
        # Quality-targeted: the bands are those of the rates that usually meet the bound on CT
        # (docs/concepts/reference-survey.md: r5 gave 20 HU, r20 129 HU and SSIM 0.984).
        Tier("j2k-maxerr20", J2K, Use.DIAGNOSIS, bound=Bound(max_abs_diff=20.0)),
        Tier("j2k-maxerr150", J2K, Use.REVIEW, bound=Bound(max_abs_diff=150.0)),
        Tier("j2k-ssim0.98", J2K, Use.REVIEW, bound=Bound(min_ssim=0.98)),
        *(
            Tier(f"jls-maxerr{n}", JLS, _use_for_bound(n), bound=Bound(max_abs_diff=float(n)))
            for n in JLS_BOUNDS
        ),
        # Codec-choosing: max |diff| alone, the bound near-lossless coding meets by
        # construction; an RMSE or SSIM limit would favour JPEG 2000 (smaller beyond ~7 HU RMS)
        *(_choosing_bound_tier(n) for n in (20, 150)),
        Tier("best-lossless", CHOSEN, Use.DIAGNOSIS, candidates=LOSSLESS_CANDIDATES),
    )
}

DEFAULT_TIERS: tuple[str, ...] = ("j2k-lossless", *(f"j2k-r{n}" for n in J2K_RATES))


def get_tier(name: str) -> Tier:
    """Return the tier called ``name``; an unknown name raises with the known ones."""
    try:
        return TIERS[name]
    except KeyError:
        raise ConfigError(f"unknown tier {name!r}; known tiers: {', '.join(TIERS)}") from None


def resolve_tiers(names: list[str] | tuple[str, ...] | None) -> list[Tier]:
    """Tiers for ``names`` (the default set when empty), without duplicates, in table order."""
    wanted = set(names or DEFAULT_TIERS)
    unknown = sorted(n for n in wanted if n not in TIERS)
    if unknown:
        get_tier(unknown[0])
    return [tier for name, tier in TIERS.items() if name in wanted]


def layered_tiers(tiers: Sequence[Tier]) -> list[Tier]:
    """The tiers the layered strategy serves (J2K with a rate), most compressed first."""
    rated = [t for t in tiers if t.codec.label == "j2k" and t.target_ratio is not None]
    return sorted(rated, key=lambda t: -float(t.target_ratio or 0))
