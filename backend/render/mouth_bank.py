"""A mouth bank: a person's own lower-face frames with their landmarks, the source of every dubbed
mouth's teeth, tongue, lips and shading.

Each item is a crop around the lower face at the footage's own resolution (capped at CROP_MAX
pixels a side), JPEG-encoded (quality 95) so a minute of footage is ~20 MB, with its 68 dlib
landmarks in crop pixels and where it came from (source index, frame index: consecutive frames
let the selection play a real run of mouth motion). Saved as one npz of plain arrays (no pickle)
and loaded strictly (format, kind and array shapes checked)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadRequest

FORMAT = 1
KIND = "flowvq-mouth-bank"
CROP_MAX = 320  # px per side: sharp enough for a 1080p close-up's mouth, small enough to keep minutes
MAX_ITEMS = 3000  # two minutes at 25 fps; longer footage is sampled with a stride
JPEG_QUALITY = 95
# stable points (eye corners, nose bridge and base) that place a face without its mouth
STABLE = np.array([36, 39, 42, 45, 27, 28, 29, 30, 31, 33, 35])


def align_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 similarity (rotation, uniform scale, translation) taking src points onto dst (least squares)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    var = (a * a).sum()
    if var < 1e-9:
        return np.array([[1.0, 0, md[0] - ms[0]], [0, 1.0, md[1] - ms[1]]])
    # complex-number form: dst ~ s e^{i theta} src
    c = ((a[:, 0] * b[:, 0] + a[:, 1] * b[:, 1]).sum()) / var
    s = ((a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]).sum()) / var
    m = np.array([[c, -s], [s, c]])
    t = md - m @ ms
    return np.concatenate([m, t[:, None]], 1)


def apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return (np.asarray(pts, np.float64) @ m[:, :2].T + m[:, 2]).astype(np.float32)


def invert(m: np.ndarray) -> np.ndarray:
    (p, q), (r, t) = m[:, :2]
    det = p * t - q * r
    a = np.array([[t, -q], [-r, p]]) / det
    return np.concatenate([a, (-a @ m[:, 2])[:, None]], 1)


def face_width(lm: np.ndarray) -> float:
    """Jaw width (landmark 1 to 15), the unit every size in dubbing is measured in."""
    return float(np.linalg.norm(lm[15] - lm[1]))


def canonical(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A face's landmarks in a pose-free frame: the eye centres at (-0.5, 0) and (0.5, 0).
    Returns (points (68,2), the 2x3 frame->canonical similarity)."""
    eyes = np.stack([lm[36:42].mean(0), lm[42:48].mean(0)])
    m = align_similarity(eyes, np.array([[-0.5, 0.0], [0.5, 0.0]]))
    return apply(m, lm), m


# the mouth shape compared between a wanted frame and a bank frame: lips (inner ones count double)
# and chin, relative to the nose base, in the canonical frame
SHAPE_POINTS = np.r_[48:68, 6:11]
SHAPE_WEIGHTS = np.r_[np.ones(12), 2.0 * np.ones(8), 0.5 * np.ones(5)]


def shape_feature(lm: np.ndarray) -> np.ndarray:
    c, _ = canonical(lm)
    rel = c[SHAPE_POINTS] - c[33]
    return (rel * np.sqrt(SHAPE_WEIGHTS)[:, None]).ravel().astype(np.float32)


def crop_box(lm: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    """Square box over the lower face and its surroundings (cheeks, chin, a band of neck)."""
    fw = face_width(lm)
    cx = float(lm[[1, 15, 33, 8], 0].mean())
    cy = float(0.5 * (lm[30, 1] + lm[8, 1]))
    half = 0.85 * fw
    x0, y0 = int(np.floor(cx - half)), int(np.floor(cy - half))
    x1, y1 = int(np.ceil(cx + half)), int(np.ceil(cy + half))
    return max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)


@dataclass
class MouthBank:
    jpeg: np.ndarray        # (B,) uint8: every crop's JPEG bytes, concatenated
    offsets: np.ndarray     # (N+1,) int64 into jpeg
    landmarks: np.ndarray   # (N,68,2) float32, crop pixels
    source: np.ndarray      # (N,) int32: which video
    frame: np.ndarray       # (N,) int32: frame index in that video
    features: np.ndarray    # (N,F) float32 shape_feature of each item
    sources: list[str]      # file names of the videos (for the sidecar)

    def __len__(self) -> int:
        return len(self.landmarks)

    def crop(self, i: int) -> np.ndarray:
        import cv2

        buf = self.jpeg[self.offsets[i]:self.offsets[i + 1]]
        bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        return np.ascontiguousarray(bgr[:, :, ::-1])

    def successor(self) -> np.ndarray:
        """(N,) index of the item filmed right after each one (-1 if none): a run plays on."""
        nxt = np.full(len(self), -1, np.int64)
        same = (self.source[1:] == self.source[:-1]) & (self.frame[1:] == self.frame[:-1] + 1)
        nxt[:-1][same] = np.arange(1, len(self))[same]
        return nxt

    def save(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp.npz")
        np.savez(tmp, format=np.int64(FORMAT), kind=np.str_(KIND), jpeg=self.jpeg, offsets=self.offsets,
                 landmarks=self.landmarks, source=self.source, frame=self.frame, features=self.features,
                 sources=np.array(self.sources, dtype=np.str_))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path) -> "MouthBank":
        path = Path(path)
        if not path.is_file():
            raise BadRequest(f"no mouth bank at {path}")
        try:
            with np.load(path, allow_pickle=False) as z:
                d = {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            raise BadRequest(f"cannot read mouth bank {path}: {e}") from None
        need = {"format", "kind", "jpeg", "offsets", "landmarks", "source", "frame", "features", "sources"}
        if set(d) != need or str(d["kind"]) != KIND or int(d["format"]) != FORMAT:
            raise BadRequest(f"{path} is not a FlowVQ mouth bank (format {FORMAT})")
        n = len(d["landmarks"])
        if (d["landmarks"].shape != (n, 68, 2) or d["offsets"].shape != (n + 1,) or len(d["source"]) != n
                or len(d["frame"]) != n or d["features"].shape[0] != n or n == 0
                or int(d["offsets"][-1]) != len(d["jpeg"])):
            raise BadRequest(f"{path}: the mouth bank's arrays do not agree (damaged file?)")
        return cls(jpeg=d["jpeg"], offsets=d["offsets"].astype(np.int64), landmarks=d["landmarks"].astype(np.float32),
                   source=d["source"].astype(np.int32), frame=d["frame"].astype(np.int32),
                   features=d["features"].astype(np.float32), sources=[str(s) for s in d["sources"]])


class BankBuilder:
    """Collects (frame, landmarks) pairs into a MouthBank; frames without a face are skipped."""

    def __init__(self, stride: int = 1):
        self.stride = max(1, int(stride))
        self._jpeg: list[bytes] = []
        self._lm, self._src, self._frame, self._feat = [], [], [], []
        self.sources: list[str] = []

    def add_source(self, name: str) -> int:
        self.sources.append(str(name))
        return len(self.sources) - 1

    def add(self, source: int, index: int, rgb: np.ndarray, lm: np.ndarray | None) -> None:
        import cv2

        if lm is None or not np.isfinite(lm).all() or index % self.stride or len(self._lm) >= MAX_ITEMS:
            return
        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = crop_box(lm, w, h)
        if x1 - x0 < 16 or y1 - y0 < 16:
            return
        crop = rgb[y0:y1, x0:x1]
        local = lm - np.array([x0, y0], np.float32)
        s = min(1.0, CROP_MAX / max(crop.shape[:2]))
        if s < 1.0:
            crop = cv2.resize(crop, (max(1, round(crop.shape[1] * s)), max(1, round(crop.shape[0] * s))),
                              interpolation=cv2.INTER_AREA)
            local = local * s
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(crop[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            return
        self._jpeg.append(buf.tobytes())
        self._lm.append(local.astype(np.float32))
        self._src.append(source)
        self._frame.append(index)
        self._feat.append(shape_feature(lm))

    def __len__(self) -> int:
        return len(self._lm)

    def build(self) -> MouthBank:
        if not self._lm:
            raise BadRequest("no frame with a face to build a mouth bank from")
        sizes = np.array([len(b) for b in self._jpeg], np.int64)
        return MouthBank(jpeg=np.frombuffer(b"".join(self._jpeg), np.uint8).copy(),
                         offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
                         landmarks=np.stack(self._lm), source=np.array(self._src, np.int32),
                         frame=np.array(self._frame, np.int32), features=np.stack(self._feat),
                         sources=list(self.sources))


def bank_from_videos(videos, max_seconds: float | None = None, progress=None,
                     cancel=None) -> MouthBank:
    """A mouth bank from footage of one person (every frame with a face, up to max_seconds of each)."""
    import math
    from dataclasses import replace

    from ..tracker.follow import Shot, find_landmarks

    report = progress or (lambda f, s: None)
    shots = [Shot.open(v) for v in videos]
    total = sum(min(s.frames, int(s.fps * max_seconds) if max_seconds else s.frames) for s in shots)
    builder = BankBuilder(stride=max(1, math.ceil(total / MAX_ITEMS)))
    for k, shot in enumerate(shots):
        if max_seconds:
            shot = replace(shot, frames=min(shot.frames, int(math.floor(shot.fps * max_seconds))))
        lms = find_landmarks(shot, lambda f, s: report((k + f) / len(shots), s), cancel)
        src = builder.add_source(shot.path.name)
        for i, rgb in enumerate(shot.frames_rgb()):
            if i >= shot.frames:
                break
            if lms.found[i]:
                builder.add(src, i, rgb, lms.landmarks[i])
    return builder.build()
