"""Synthetic CT series: a chest/abdomen phantom in HU, written as real Part-10 DICOM files.

Tests, the demo and the benchmarks need CT-like data that anyone can regenerate: the same
arguments give byte-identical files (UIDs come from the arguments, never from the clock), and
the pixel content compresses like real CT (lossless JPEG 2000 about 3:1) because it has
anatomy-like regions, bone, contrast, lung texture and correlated noise rather than flat shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid

FOV_MM = 350.0  # reconstruction field of view across the columns
SLICE_MM = 2.5  # slice thickness and spacing
HU_MIN, HU_MAX = -1024, 2047  # fits both 12-bit encodings: unsigned HU+1024 and signed HU
_NOISE_HU = 36.0  # before the 3x3 binomial smoothing, which leaves about 13.5 HU
_LUNG_VESSELS = 48
_RIB_ANGLES = np.deg2rad([-70, -45, -20, 20, 45, 70, 110, 135, 160, 200, 225, 250])

Image = NDArray[np.float32]


@dataclass(frozen=True)
class _Layout:
    """Per-series anatomy that persists along z: lung vessel positions, drifts and sizes."""

    vessels: NDArray[np.float64]  # columns: side, u, v, du, dv, radius_mm

    @classmethod
    def from_seed(cls, seed: int) -> _Layout:
        rng = np.random.default_rng([seed, 1])
        n = _LUNG_VESSELS
        radius = np.sqrt(rng.uniform(0.0, 0.8, n))  # uniform over a disc
        angle = rng.uniform(0.0, 2 * np.pi, n)
        return cls(
            np.column_stack(
                [
                    rng.choice([-1.0, 1.0], n),
                    radius * np.cos(angle),
                    radius * np.sin(angle),
                    rng.normal(0.0, 0.15, n),
                    rng.normal(0.0, 0.15, n),
                    rng.uniform(1.0, 3.2, n),
                ]
            )
        )


class _Canvas:
    """An HU image with patient coordinates in mm; paints shapes inside their bounding box."""

    def __init__(self, rows: int, columns: int) -> None:
        self.spacing = FOV_MM / columns
        self.x = ((np.arange(columns) - (columns - 1) / 2) * self.spacing).astype(np.float32)
        self.y = ((np.arange(rows) - (rows - 1) / 2) * self.spacing).astype(np.float32)
        self.hu: Image = np.full((rows, columns), -1000.0, dtype=np.float32)

    def ellipse(
        self, centre: tuple[float, float], axes: tuple[float, float], value: float
    ) -> tuple[tuple[slice, slice], NDArray[np.bool_]] | None:
        """Set ``value`` inside the ellipse; return its box and mask for further painting."""
        (cx, cy), (ax, ay) = centre, axes
        if ax < self.spacing or ay < self.spacing:
            return None
        c0, c1 = np.searchsorted(self.x, [cx - ax, cx + ax])
        r0, r1 = np.searchsorted(self.y, [cy - ay, cy + ay])
        box = (slice(int(r0), int(r1)), slice(int(c0), int(c1)))
        dx = (self.x[box[1]] - cx) / ax
        dy = (self.y[box[0], None] - cy) / ay
        mask = dx * dx + dy * dy <= 1.0
        self.hu[box][mask] = value
        return box, mask


def _bump(z: float, start: float, stop: float) -> float:
    """0 outside [start, stop], rising as a half sine to 1 in the middle: organ extent in z."""
    t = (z - start) / (stop - start)
    return float(np.sin(np.pi * t)) if 0.0 < t < 1.0 else 0.0


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], width: int) -> Image:
    """Unit-variance noise averaged over ``width`` x ``width`` boxes: parenchymal texture."""
    rows, columns = shape
    noise: NDArray[np.float64] = rng.standard_normal((rows + width, columns + width))
    s = noise.cumsum(axis=0).cumsum(axis=1)  # summed-area table
    box: NDArray[np.float64] = (
        s[width:, width:] - s[:-width, width:] - s[width:, :-width] + s[:-width, :-width]
    )
    return (box / width).astype(np.float32)


def _smooth3(image: Image) -> Image:
    """3x3 binomial smoothing ([1, 2, 1] / 4 each way), like a soft reconstruction kernel."""
    p = np.pad(image, 1, mode="edge")
    v = 0.25 * (p[:-2] + p[2:]) + 0.5 * p[1:-1]
    return (0.25 * (v[:, :-2] + v[:, 2:]) + 0.5 * v[:, 1:-1]).astype(np.float32, copy=False)


def _body(c: _Canvas, z: float) -> None:
    """Subcutaneous fat around soft tissue; the torso widens towards the abdomen."""
    grow = 1.0 + 0.06 * z
    c.ellipse((0.0, 5.0), (165.0 * grow, 118.0 * grow), -100.0)
    c.ellipse((0.0, 5.0), (165.0 * grow - 14.0, 118.0 * grow - 12.0), 40.0)


def _organs(c: _Canvas, z: float) -> None:
    """Liver, kidneys (contrast-enhanced cortex), heart with a contrast chamber, and aorta."""
    liver = min(max((z - 0.5) / 0.3, 0.0), 1.0)
    c.ellipse((-55.0, 0.0), (85.0 * liver, 72.0 * liver), 62.0)
    kidney = _bump(z, 0.72, 1.1)
    for side in (-1.0, 1.0):
        if c.ellipse((70.0 * side, 62.0), (26.0 * kidney, 38.0 * kidney), 160.0):
            c.ellipse((70.0 * side, 62.0), (12.0 * kidney, 20.0 * kidney), 30.0)
    heart = _bump(z, 0.22, 0.7)
    c.ellipse((18.0, -15.0), (58.0 * heart, 48.0 * heart), 45.0)
    c.ellipse((28.0, -22.0), (22.0 * heart, 17.0 * heart), 230.0)
    c.ellipse((22.0, 52.0), (12.5, 12.5), 250.0)


def _lungs(c: _Canvas, z: float, layout: _Layout, rng: np.random.Generator) -> None:
    """Two lungs (-850 HU) with parenchymal texture and vessels that drift smoothly with z."""
    scale = _bump(z, -0.15, 0.78)
    axes = (52.0 * scale, 76.0 * scale)
    for side in (-1.0, 1.0):
        painted = c.ellipse((68.0 * side, -8.0), axes, -850.0)
        if painted is None:
            continue
        box, mask = painted
        texture = _smooth_noise(rng, mask.shape, 7)
        c.hu[box] += np.where(mask, 70.0 * texture, 0.0).astype(np.float32)
        for _, u, v, du, dv, radius in layout.vessels[layout.vessels[:, 0] == side]:
            centre = (68.0 * side + (u + du * z) * axes[0], -8.0 + (v + dv * z) * axes[1])
            c.ellipse(centre, (radius, radius * 1.3), -40.0 + 60.0 * (radius - 1.0))


def _skeleton(c: _Canvas, z: float) -> None:
    """Vertebra (cortex, cancellous core, discs every 28 mm), spinous process and ribs."""
    z_mm = z * 400.0
    disc = (z_mm % 28.0) < 5.0
    c.ellipse((0.0, 82.0), (19.0, 17.0), 80.0 if disc else 1150.0)
    if not disc:
        c.ellipse((0.0, 82.0), (15.5, 13.5), 280.0)
    c.ellipse((0.0, 110.0), (5.5, 12.0), 900.0)
    if z > 0.8:
        return
    for phi in _RIB_ANGLES:
        if np.cos(2 * np.pi * z_mm / 22.0 + 3.0 * phi) > -0.2:  # ribs cross the plane obliquely
            c.ellipse((140.0 * np.cos(phi), 5.0 + 100.0 * np.sin(phi)), (7.0, 5.0), 950.0)


def ct_phantom(
    rows: int = 512,
    columns: int = 512,
    *,
    z: float = 0.4,
    seed: int = 0,
    index: int = 0,
    noise_hu: float = 0.0,
) -> NDArray[np.int16]:
    """One axial slice of the phantom, in HU.

    Parameters
    ----------
    rows, columns : int
        Image size; the field of view is 350 mm across the columns.
    z : float
        Position from the top of the chest (0) to the lower abdomen (1); organs vary with it.
    seed : int
        Selects the lung-vessel layout and, with ``index``, the noise.
    index : int
        Slice number within the series, so that neighbouring slices have independent noise.
    noise_hu : float
        Extra white Gaussian noise, its standard deviation in HU where the body is thickest
        (shoulders, pelvis: ``z`` near 0 or 1), falling to 55 % of it mid-way, as quantum
        noise follows attenuation on a scanner at fixed tube current. 0 (default): the
        phantom's own mild noise only. About 50 gives a scanner's low-dose noise, on which
        j2k-r20 breaks the review gate's 150 HU.

    Returns
    -------
    numpy.ndarray
        ``int16`` HU values clipped to [-1024, 2047].
    """
    rng = np.random.default_rng([seed, 2, index])
    canvas = _Canvas(rows, columns)
    _body(canvas, z)
    _organs(canvas, z)
    _lungs(canvas, z, _Layout.from_seed(seed), rng)
    _skeleton(canvas, z)
    noisy = _smooth3(canvas.hu + rng.standard_normal((rows, columns), dtype=np.float32) * _NOISE_HU)
    if noise_hu:
        thickness = 0.55 + 0.45 * abs(2.0 * z - 1.0)
        noisy = noisy + rng.standard_normal((rows, columns), dtype=np.float32) * (
            noise_hu * thickness
        )
    return np.clip(np.rint(noisy), HU_MIN, HU_MAX).astype(np.int16)


@dataclass(frozen=True)
class _Series:
    """What every slice of one ``write_ct_series`` call shares."""

    study_uid: str
    series_uid: str
    frame_uid: str
    seed: int
    slices: int
    rows: int
    columns: int
    signed: bool
    noise_hu: float
    study_date: str
    patient_id: str
    modality: str

    @property
    def spacing(self) -> float:
        return FOV_MM / self.columns

    def sop_uid(self, index: int) -> UID:
        return generate_uid(entropy_srcs=[self.series_uid, "instance", str(index)])


def _series(
    *,
    seed: int,
    slices: int,
    rows: int,
    columns: int,
    signed: bool,
    study_uid: str | None,
    study_date: str,
    patient_id: str,
    modality: str,
    noise_hu: float = 0.0,
) -> _Series:
    """Derive the UIDs from the arguments, so that the same call writes the same bytes."""
    study = study_uid or str(
        generate_uid(entropy_srcs=["dcmtier-sample", "study", str(seed), patient_id, study_date])
    )
    params = [str(v) for v in (seed, slices, rows, columns, signed, modality)]
    params += [f"noise {noise_hu:g}"] if noise_hu else []  # the UIDs without it are unchanged
    series = str(generate_uid(entropy_srcs=[study, "series", *params]))
    frame = str(generate_uid(entropy_srcs=[series, "frame-of-reference"]))
    return _Series(
        study, series, frame, seed, slices, rows, columns, signed, noise_hu, study_date,
        patient_id, modality,
    )  # fmt: skip


def _identity(ds: Dataset, s: _Series) -> None:
    """Patient, study and series attributes, identical on every slice."""
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = s.patient_id
    ds.PatientID = s.patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = s.study_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = s.study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = f"{8 + s.seed % 10:02d}{s.seed * 7 % 60:02d}00"
    ds.AccessionNumber = f"A{s.study_date}{s.seed % 1000:03d}"
    ds.StudyID = f"{s.seed % 100000}"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "dcmtier synthetic chest-abdomen phantom"
    ds.SeriesInstanceUID = s.series_uid
    ds.SeriesNumber = 1
    ds.SeriesDescription = f"Phantom {SLICE_MM} mm"
    ds.Modality = s.modality
    ds.Manufacturer = "dcmtier-sample"
    ds.BodyPartExamined = "CHEST"
    ds.PatientPosition = "HFS"
    ds.FrameOfReferenceUID = s.frame_uid
    ds.PositionReferenceIndicator = ""


def _geometry(ds: Dataset, s: _Series, index: int) -> None:
    """Axial slices from head to feet: z falls by the slice thickness, centred on the isocentre."""
    z = round(((s.slices - 1) / 2 - index) * SLICE_MM, 4)
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    x0 = round(-(s.columns - 1) / 2 * s.spacing, 4)
    y0 = round(-(s.rows - 1) / 2 * s.spacing, 4)
    ds.ImagePositionPatient = [x0, y0, z]
    ds.SliceLocation = z
    ds.SliceThickness = SLICE_MM
    ds.PixelSpacing = [round(s.spacing, 6)] * 2
    ds.InstanceNumber = index + 1
    ds.AcquisitionNumber = 1


def _pixels(ds: Dataset, s: _Series, hu: NDArray[np.int16]) -> None:
    """12 bits stored in 16: signed stores HU itself, unsigned stores HU + 1024."""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = s.rows, s.columns
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 1 if s.signed else 0
    ds.RescaleIntercept = 0 if s.signed else -1024
    ds.RescaleSlope = 1
    ds.RescaleType = "HU"
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.KVP = 120
    stored = hu if s.signed else (hu.astype(np.int32) + 1024).astype(np.uint16)
    ds.PixelData = stored.astype("<i2" if s.signed else "<u2").tobytes()


def _slice_dataset(s: _Series, index: int) -> Dataset:
    """The complete Part-10 dataset of slice ``index``."""
    sop_uid = s.sop_uid(index)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    _identity(ds, s)
    _geometry(ds, s, index)
    z = index / max(s.slices - 1, 1)
    hu = ct_phantom(s.rows, s.columns, z=z, seed=s.seed, index=index, noise_hu=s.noise_hu)
    _pixels(ds, s, hu)
    return ds


def write_ct_series(
    out_dir: Path,
    *,
    slices: int = 40,
    rows: int = 512,
    columns: int = 512,
    signed: bool = True,
    seed: int = 0,
    study_uid: str | None = None,
    study_date: str = "20240115",
    patient_id: str = "SAMPLE^CT",
    modality: str = "CT",
    noise_hu: float = 0.0,
) -> list[Path]:
    """Write one synthetic CT series, one explicit VR little endian Part-10 file per slice.

    Parameters
    ----------
    out_dir : Path
        Folder for the files (created if missing); files are named ``CT0001.dcm``...
    slices, rows, columns : int
        Series size. The slices span the phantom from upper chest to lower abdomen.
    signed : bool
        Pixel Representation 1 storing HU, or 0 storing HU + 1024 with Rescale Intercept -1024.
    seed : int
        Selects the anatomy variant and noise; with the other arguments it also derives every UID,
        so the same arguments always give byte-identical files.
    study_uid : str, optional
        Study Instance UID to use instead of the derived one (to put several series in a study).
    study_date, patient_id, modality : str
        Written as given; ``modality`` lets tests exercise modality rules (the SOP class stays
        CT Image Storage).
    noise_hu : float
        Extra noise (see `ct_phantom`); 0 writes the same files as before it existed.

    Returns
    -------
    list of Path
        The files written, in instance order.
    """
    s = _series(
        seed=seed,
        slices=slices,
        rows=rows,
        columns=columns,
        signed=signed,
        study_uid=study_uid,
        study_date=study_date,
        patient_id=patient_id,
        modality=modality,
        noise_hu=noise_hu,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(slices):
        path = out_dir / f"CT{index + 1:04d}.dcm"
        _slice_dataset(s, index).save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


# A mixed archive for the estimate's checks: (modality, slices (low, high), side, noise_hu choices)
MIXED_ARCHIVE = (
    ("DX", (1, 2), 128, (0.0, 10.0)),
    ("DX", (1, 1), 128, (0.0, 30.0)),
    ("DX", (1, 2), 96, (0.0, 10.0)),
    ("CT", (8, 40), 64, (0.0, 20.0, 60.0)),
    ("CT", (8, 24), 96, (0.0, 20.0)),
    ("MR", (6, 24), 64, (0.0, 15.0, 40.0)),
)


def write_mixed_landing(landing: Path, studies: int, *, seed: int = 0) -> int:
    """``studies`` studies of varying modality, size and noise under ``landing`` (radiographs of
    one or two images, CT and MR series of varying slice counts and noise), chosen from
    ``seed``; the same arguments give the same files. Returns the files written."""
    rng = np.random.default_rng(seed)
    written = 0
    for n in range(studies):
        modality, (low, high), side, noises = MIXED_ARCHIVE[int(rng.integers(len(MIXED_ARCHIVE)))]
        slices = int(rng.integers(low, high + 1))
        noise = float(noises[int(rng.integers(len(noises)))])
        day = f"2024{1 + n % 12:02d}{1 + n % 28:02d}"
        files = write_ct_series(
            landing / f"{modality.lower()}{n:05d}", slices=slices, rows=side, columns=side,
            seed=seed * 100_000 + n, study_date=day, modality=modality, noise_hu=noise,
        )  # fmt: skip
        written += len(files)
    return written
