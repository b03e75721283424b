"""Live Link Face CSV: the take file of Epic's iPhone app, written and read (stdlib + numpy only).

Layout (what the app records and what Unreal, Maya and Blender importers read):

    Timecode,BlendShapeCount,EyeBlinkLeft,EyeLookDownLeft,...,TongueOut,
        HeadYaw,HeadPitch,HeadRoll,LeftEyeYaw,LeftEyePitch,LeftEyeRoll,RightEyeYaw,RightEyePitch,RightEyeRoll
    00:00:00:00.000,61,0.0123,...

- the 52 ARKit blendshapes, capitalised, in Apple's order (channels.ARKIT_NAMES), then the head
  and eye rotations in radians: BlendShapeCount is 61 (52 + 9);
- `Timecode` is HH:MM:SS:FF.fff: FF the frame within the second at the take's rate and .fff the
  sub-frame fraction (non-integer rates such as 23.976 give fractional frames).

Writing: FlowVQ's 12 extra channels (channels.EXTRA_NAMES) have no column and are NOT exported;
the head's yaw/pitch/roll come from the take's pose (channels.POSE_NAMES: pitch, yaw, roll in
radians), its translation is dropped, the eye rotations are written as 0 (the eyes move through
the eyeLook* shapes).

Reading: rows are consecutive frames; the rate comes from the timecodes (frames counted across a
change of second); a file shorter than one second cannot tell its rate and is read at `fps`
(default 60, the app's rate). Columns are found by name, case-insensitively, so a file with extra
or reordered columns reads; the extras and the translation read as 0, the eye rotations are
ignored, and the take's source is "livelink:<file name>". Every malformed file raises
ProtocolError(bad_request) with one readable line.
"""
from __future__ import annotations

import csv
import io
import math
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from .channels import ARKIT_NAMES, CHANNEL_INDEX, EXPRESSION_NAMES, N_EXPRESSION, N_POSE, POSE_NAMES
from .protocol import BAD_REQUEST, ProtocolError
from .settings import FPS_RANGE, GenerateSettings

BLENDSHAPE_COLUMNS: tuple[str, ...] = tuple(n[0].upper() + n[1:] for n in ARKIT_NAMES)
HEAD_COLUMNS: tuple[str, ...] = ("HeadYaw", "HeadPitch", "HeadRoll")
EYE_COLUMNS: tuple[str, ...] = ("LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                                "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
HEADER: tuple[str, ...] = ("Timecode", "BlendShapeCount", *BLENDSHAPE_COLUMNS, *HEAD_COLUMNS,
                           *EYE_COLUMNS)
BLENDSHAPE_COUNT = len(BLENDSHAPE_COLUMNS) + len(HEAD_COLUMNS) + len(EYE_COLUMNS)  # 61
DEFAULT_FPS = 60.0  # the app's recording rate: used when a file is too short to tell its own
NOT_EXPORTED: tuple[str, ...] = EXPRESSION_NAMES[len(ARKIT_NAMES):]  # FlowVQ's extras
# column -> pose channel (POSE_NAMES order: pitch, yaw, roll, tx, ty, tz)
_HEAD_TO_POSE = {"HeadYaw": POSE_NAMES.index("yaw"), "HeadPitch": POSE_NAMES.index("pitch"),
                 "HeadRoll": POSE_NAMES.index("roll")}
_COMMON_RATES = (23.976, 24.0, 25.0, 29.97, 30.0, 47.952, 48.0, 50.0, 59.94, 60.0, 90.0, 100.0,
                 119.88, 120.0)
_TIMECODE = re.compile(r"^\s*(\d+):(\d{1,2}):(\d{1,2})[:;](\d+)(?:\.(\d+))?\s*$")
MAX_BYTES = 512 * 1024 * 1024  # a larger file is refused before reading


def _bad(msg: str) -> ProtocolError:
    return ProtocolError(BAD_REQUEST, msg)


# ---- writing ---------------------------------------------------------------------------------
def timecode(frame: int, fps: float) -> str:
    """HH:MM:SS:FF.fff of frame `frame` at `fps` (the fraction is of a frame)."""
    t = frame / fps
    whole = int(math.floor(t + 1e-9))
    ff = max(0.0, (t - whole) * fps)
    if ff >= math.ceil(fps) - 5e-4:  # rounding put the frame into the next second
        whole, ff = whole + 1, 0.0
    h, rem = divmod(whole, 3600)
    m, s = divmod(rem, 60)
    fi = int(math.floor(ff + 5e-4))
    frac = int(round((ff - fi) * 1000))
    if frac >= 1000:
        fi, frac = fi + 1, 0
    return f"{h:02d}:{m:02d}:{s:02d}:{fi:02d}.{max(frac, 0):03d}"


def _resample(a: np.ndarray, src_fps: float, dst_fps: float) -> np.ndarray:
    n = a.shape[0]
    dur = (n - 1) / src_fps
    m = int(math.floor(dur * dst_fps + 1e-6)) + 1
    t_src = np.arange(n) / src_fps
    t_dst = np.arange(m) / dst_fps
    return np.stack([np.interp(t_dst, t_src, a[:, j]) for j in range(a.shape[1])], axis=1)


def rows(take, fps: float | None = None) -> tuple[list[str], list[list[str]]]:
    """Header and text rows of `take` as Live Link Face CSV (at `fps`, resampled if it differs)."""
    src = float(take.fps)
    fps = src if fps is None else float(fps)
    if not math.isfinite(fps) or not FPS_RANGE[0] <= fps <= FPS_RANGE[1]:
        raise _bad(f"fps must be between {FPS_RANGE[0]:g} and {FPS_RANGE[1]:g}, got {fps}")
    names = list(take.names)
    exp = np.asarray(take.expression, dtype=np.float64)
    cols = []
    for n in ARKIT_NAMES:
        cols.append(exp[:, names.index(n)] if n in names else np.zeros(exp.shape[0]))
    shapes = np.stack(cols, axis=1)
    pose = np.asarray(take.pose, dtype=np.float64)
    head = np.stack([pose[:, _HEAD_TO_POSE[c]] for c in HEAD_COLUMNS], axis=1)
    data = np.concatenate([shapes, head, np.zeros((exp.shape[0], len(EYE_COLUMNS)))], axis=1)
    if abs(fps - src) > 1e-9:
        data = _resample(data, src, fps)
    out = [[timecode(t, fps), str(BLENDSHAPE_COUNT), *(f"{v:.6f}" for v in data[t])]
           for t in range(data.shape[0])]
    return list(HEADER), out


def write_csv(take, path: str | os.PathLike, fps: float | None = None) -> Path:
    """Write `take` (a flowvq_shared.takes.Take) as a Live Link Face CSV, atomically."""
    path = Path(path)
    header, body = rows(take, fps)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(body)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(buf.getvalue())
        os.replace(tmp, path)  # a reader never sees a half-written file
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


# ---- reading ---------------------------------------------------------------------------------
def parse_timecode(text: str) -> tuple[int, float]:
    """(whole seconds, frame within the second incl. fraction) of HH:MM:SS:FF[.fff]."""
    m = _TIMECODE.match(text)
    if not m:
        raise ValueError(f"timecode {text!r} is not HH:MM:SS:FF.fff")
    h, mi, s, ff = (int(g) for g in m.groups()[:4])
    if mi > 59 or s > 59:
        raise ValueError(f"timecode {text!r} has minutes or seconds above 59")
    frac = float("0." + m.group(5)) if m.group(5) else 0.0
    return h * 3600 + mi * 60 + s, ff + frac


def infer_fps(codes: list[tuple[int, float]], default: float = DEFAULT_FPS) -> float:
    """The frame rate of consecutive frames' timecodes; `default` when they span < 1 second."""
    (s0, f0), (s1, f1) = codes[0], codes[-1]
    if s1 == s0 or len(codes) < 2:
        return float(default)
    if s1 < s0:
        raise ValueError("timecodes run backwards")
    fps = ((len(codes) - 1) - (f1 - f0)) / (s1 - s0)
    if not math.isfinite(fps) or fps <= 0:
        raise ValueError("timecodes do not advance one frame per row")
    near = min(_COMMON_RATES, key=lambda r: abs(fps - r))
    return near if abs(fps - near) <= 0.005 else round(fps, 3)


def _find_columns(header: list[str], where: str) -> dict[str, int]:
    index = {}
    for i, h in enumerate(header):
        index.setdefault(h.strip().lower(), i)
    if "timecode" not in index:
        raise _bad(f"{where}: not a Live Link Face CSV (no Timecode column in the header)")
    missing = [c for c in BLENDSHAPE_COLUMNS if c.lower() not in index]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise _bad(f"{where}: not a Live Link Face CSV (header lacks {', '.join(missing[:3])}{more})")
    return index


def read_csv(path: str | os.PathLike, fps: float | None = None):
    """A Live Link Face CSV as a Take (flowvq_shared.takes.Take); ProtocolError if malformed.

    `fps` overrides the rate read from the timecodes (and is the rate of a file under a second).
    """
    from .takes import Take  # late: takes imports settings, both light

    path = Path(path)
    where = path.name or str(path)
    if not path.is_file():
        raise _bad(f"{where}: file not found")
    try:
        if path.stat().st_size > MAX_BYTES:
            raise _bad(f"{where}: larger than {MAX_BYTES // (1024 * 1024)} MiB")
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise _bad(f"{where}: not a text file (not UTF-8)") from None
    except OSError as e:
        raise _bad(f"{where}: cannot read ({e.strerror or e})") from None
    try:
        table = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    except csv.Error as e:
        raise _bad(f"{where}: not a CSV file ({e})") from None
    if not table:
        raise _bad(f"{where}: empty file")
    header = table[0]
    index = _find_columns(header, where)
    body = table[1:]
    if not body:
        raise _bad(f"{where}: no frames (a header only)")
    width = len(header)
    t_col = index["timecode"]
    s_cols = [index[c.lower()] for c in BLENDSHAPE_COLUMNS]
    h_cols = [index.get(c.lower()) for c in HEAD_COLUMNS]
    n = len(body)
    shapes = np.zeros((n, len(BLENDSHAPE_COLUMNS)), dtype=np.float64)
    head = np.zeros((n, len(HEAD_COLUMNS)), dtype=np.float64)
    codes = []
    for r, row in enumerate(body):
        line = r + 2  # 1-based, after the header
        if len(row) < width:
            raise _bad(f"{where}: line {line} has {len(row)} fields, the header {width}")
        try:
            codes.append(parse_timecode(row[t_col]))
        except ValueError as e:
            raise _bad(f"{where}: line {line}: {e}") from None
        try:
            shapes[r] = [float(row[c]) for c in s_cols]
            head[r] = [float(row[c]) if c is not None else 0.0 for c in h_cols]
        except ValueError as e:
            raise _bad(f"{where}: line {line}: a value is not a number ({e})") from None
    if not (np.isfinite(shapes).all() and np.isfinite(head).all()):
        bad = int(np.nonzero(~(np.isfinite(shapes).all(1) & np.isfinite(head).all(1)))[0][0])
        raise _bad(f"{where}: line {bad + 2}: a value is not finite (NaN or inf)")
    if fps is None:
        try:
            fps = infer_fps(codes)
        except ValueError as e:
            raise _bad(f"{where}: {e}") from None
    fps = float(fps)
    if not FPS_RANGE[0] <= fps <= FPS_RANGE[1]:
        raise _bad(f"{where}: frame rate {fps:g} outside {FPS_RANGE[0]:g}..{FPS_RANGE[1]:g}")
    expression = np.zeros((n, N_EXPRESSION), dtype=np.float32)
    for j, name in enumerate(ARKIT_NAMES):
        expression[:, CHANNEL_INDEX[name]] = shapes[:, j]
    pose = np.zeros((n, N_POSE), dtype=np.float32)
    for j, c in enumerate(HEAD_COLUMNS):
        pose[:, _HEAD_TO_POSE[c]] = head[:, j]
    return Take(expression=expression, pose=pose, settings=GenerateSettings(fps=fps),
                index=1, source=f"livelink:{path.name}", guidance_applied=0.0,
                guidance_note="imported from a Live Link Face CSV",
                names=EXPRESSION_NAMES)
