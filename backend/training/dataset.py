"""The training dataset format: a folder of 16 kHz wavs + per-frame expression/pose curves.

```
DATASET/
  dataset.json   {"format": 1, "kind": "flowvq-dataset", "fps", "sample_rate", "expression_names",
                  "pose_names", "emotions", "items": [{"id", "audio", "coeffs", "emotion", "speaker",
                  "source", "n_frames", "duration"}, ...], optional "meta"}
  audio/<id>.wav    16 kHz mono PCM16
  coeffs/<id>.npz   expression (T,64) float32, pose (T,6) float32; frame t at time t/fps,
                    T = ceil(duration*fps)
```
The corpus builder, `flowvq dataset build` (video through the tracker) and Live Link Face
captures all write it with `DatasetWriter`; the flow trainer reads it with `Dataset`.
dataset.json is written last and atomically: a folder without it is not a dataset yet.
"""
from __future__ import annotations

import csv
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from flowvq_shared.channels import (
    ARKIT_NAMES, EMOTIONS, EXPRESSION_NAMES, N_EXPRESSION, N_POSE, POSE_NAMES, emotion_index,
)

from ..errors import BadAudio, BadRequest
from ..timeline import frame_count

FORMAT = 1
KIND = "flowvq-dataset"
SAMPLE_RATE = 16000
INDEX_NAME = "dataset.json"
# A coefficient track may disagree with ceil(duration*fps) by this many frames (trackers and
# capture apps count frames differently from audio samples); it is then padded/trimmed.
FRAME_SLACK = 2
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class Item:
    """One utterance: its audio and the face's curves, frame-aligned at `fps`."""

    id: str
    emotion: str
    speaker: str
    source: str
    audio: np.ndarray  # (N,) float32 in [-1, 1] at 16 kHz
    expression: np.ndarray  # (T, 64) float32, channel order EXPRESSION_NAMES
    pose: np.ndarray  # (T, 6) float32, POSE_NAMES
    fps: float

    @property
    def n_frames(self) -> int:
        return int(self.expression.shape[0])

    @property
    def emotion_index(self) -> int:
        return emotion_index(self.emotion)


def n_frames_for(n_samples: int, fps: float, sample_rate: int = SAMPLE_RATE) -> int:
    """The contract's frame count, the generator's: T = ceil(duration * fps) (flowvq.timeline)."""
    return frame_count(n_samples, fps, sample_rate)


def resample_audio(audio: np.ndarray, sample_rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 at `target` Hz (polyphase filter: exact for integer rate ratios)."""
    from scipy.signal import resample_poly

    x = np.asarray(audio)
    if x.ndim == 2:  # (N, channels) as soundfile reads it
        x = x.mean(axis=1)
    if x.ndim != 1:
        raise BadAudio(f"audio must be 1-D mono or (samples, channels), got shape {x.shape}")
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float64) / float(np.iinfo(x.dtype).max + 1)
    x = x.astype(np.float64, copy=False)
    sample_rate = int(sample_rate)
    if sample_rate <= 0:
        raise BadAudio(f"sample rate must be positive, got {sample_rate}")
    if sample_rate != target:
        g = math.gcd(sample_rate, target)
        x = resample_poly(x, target // g, sample_rate // g)
    return x.astype(np.float32)


def resample_curves(curves: np.ndarray, fps_in: float, fps_out: float, n_out: int) -> np.ndarray:
    """Linear interpolation of (T, C) curves sampled at t/fps_in onto t/fps_out, edges held."""
    curves = np.asarray(curves, dtype=np.float64)
    t_in = np.arange(curves.shape[0]) / float(fps_in)
    t_out = np.arange(n_out) / float(fps_out)
    out = np.empty((n_out, curves.shape[1]), dtype=np.float64)
    for c in range(curves.shape[1]):
        out[:, c] = np.interp(t_out, t_in, curves[:, c])
    return out.astype(np.float32)


def _fit_length(curves: np.ndarray, n: int) -> np.ndarray:
    """Pad by repeating the last frame or trim, to exactly n frames."""
    if curves.shape[0] >= n:
        return curves[:n]
    pad = np.repeat(curves[-1:], n - curves.shape[0], axis=0)
    return np.concatenate([curves, pad], axis=0)


class DatasetWriter:
    """Writes a dataset folder item by item; `close()` writes dataset.json atomically.

    Use as a context manager: leaving the block with an exception writes no index, so a
    half-built dataset is never mistaken for a finished one.
    """

    def __init__(self, path: str | Path, fps: float = 25.0, *, overwrite: bool = False,
                 meta: dict | None = None):
        self.path = Path(path)
        self.fps = float(fps)
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise BadRequest(f"fps must be a positive number, got {fps}")
        self.meta = dict(meta or {})
        index = self.path / INDEX_NAME
        if index.exists():
            if not overwrite:
                raise BadRequest(f"{self.path} already holds a dataset (use overwrite)")
            index.unlink()  # the old index must not describe the files about to be replaced
        (self.path / "audio").mkdir(parents=True, exist_ok=True)
        (self.path / "coeffs").mkdir(parents=True, exist_ok=True)
        self._items: list[dict] = []
        self._ids: set[str] = set()
        self.closed = False

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def total_duration(self) -> float:
        return float(sum(it["duration"] for it in self._items))

    def add(self, id: str, audio: np.ndarray, sample_rate: int, expression: np.ndarray,
            pose: np.ndarray, emotion: str, speaker: str = "", source: str = "",
            fps: float | None = None) -> dict:
        """Add one utterance; returns its index entry.

        Audio is resampled to 16 kHz mono. Curves given at another `fps` are interpolated to the
        dataset's rate; a track within FRAME_SLACK frames of ceil(duration*fps) is padded or
        trimmed to it, a longer mismatch is an error.
        """
        import soundfile as sf

        if self.closed:
            raise BadRequest("dataset writer is closed")
        if not isinstance(id, str) or not _ID_RE.match(id):
            raise BadRequest(f"bad item id {id!r}: use letters, digits, '_', '-', '.'")
        if id in self._ids:
            raise BadRequest(f"duplicate item id {id!r}")
        try:
            emotion = EMOTIONS[emotion_index(emotion)]
        except ValueError as e:
            raise BadRequest(str(e)) from None
        wav = resample_audio(audio, sample_rate)
        if wav.size < SAMPLE_RATE // 10:
            raise BadAudio(f"item {id}: audio shorter than 0.1 s")
        if not np.all(np.isfinite(wav)):
            raise BadAudio(f"item {id}: audio has NaN or infinite samples")
        exp = np.asarray(expression, dtype=np.float32)
        pos = np.asarray(pose, dtype=np.float32)
        if exp.ndim != 2 or exp.shape[1] != N_EXPRESSION:
            raise BadRequest(f"item {id}: expression must be (T, {N_EXPRESSION}), got {exp.shape}")
        if pos.ndim != 2 or pos.shape[1] != N_POSE:
            raise BadRequest(f"item {id}: pose must be (T, {N_POSE}), got {pos.shape}")
        if exp.shape[0] != pos.shape[0] or exp.shape[0] < 2:
            raise BadRequest(f"item {id}: expression has {exp.shape[0]} frames, pose {pos.shape[0]}")
        if not (np.all(np.isfinite(exp)) and np.all(np.isfinite(pos))):
            raise BadRequest(f"item {id}: curves have NaN or infinite values")
        n = n_frames_for(wav.size, self.fps)
        if fps is not None and abs(float(fps) - self.fps) > 1e-6:
            exp = resample_curves(exp, fps, self.fps, n)
            pos = resample_curves(pos, fps, self.fps, n)
        if abs(exp.shape[0] - n) > FRAME_SLACK:
            raise BadRequest(f"item {id}: {exp.shape[0]} frames but the audio lasts "
                             f"{wav.size / SAMPLE_RATE:.3f} s = {n} frames at {self.fps:g} fps")
        exp, pos = _fit_length(exp, n), _fit_length(pos, n)

        audio_rel, coeffs_rel = f"audio/{id}.wav", f"coeffs/{id}.npz"
        pcm = np.clip(np.round(wav * 32767.0), -32768, 32767).astype(np.int16)
        sf.write(self.path / audio_rel, pcm, SAMPLE_RATE, subtype="PCM_16")
        np.savez(self.path / coeffs_rel, expression=exp, pose=pos)
        entry = {"id": id, "audio": audio_rel, "coeffs": coeffs_rel, "emotion": emotion,
                 "speaker": str(speaker), "source": str(source), "n_frames": int(n),
                 "duration": round(wav.size / SAMPLE_RATE, 6)}
        self._items.append(entry)
        self._ids.add(id)
        return entry

    def close(self) -> Path:
        """Write dataset.json (temp file + rename); returns its path."""
        index = self.path / INDEX_NAME
        if self.closed:
            return index
        doc = {"format": FORMAT, "kind": KIND, "fps": self.fps, "sample_rate": SAMPLE_RATE,
               "expression_names": list(EXPRESSION_NAMES), "pose_names": list(POSE_NAMES),
               "emotions": list(EMOTIONS), "items": self._items}
        if self.meta:
            doc["meta"] = self.meta
        tmp = index.with_suffix(".json.tmp")
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, index)
        self.closed = True
        return index


class Dataset:
    """A finished dataset folder, read item by item (`ds[i] -> Item`)."""

    def __init__(self, path: Path, doc: dict):
        self.path = path
        self.fps = float(doc["fps"])
        self.sample_rate = int(doc["sample_rate"])
        self.items: list[dict] = list(doc["items"])
        self.meta: dict = dict(doc.get("meta", {}))

    @classmethod
    def open(cls, path: str | Path) -> "Dataset":
        path = Path(path)
        index = path / INDEX_NAME
        if not index.is_file():
            raise BadRequest(f"{path} is not a FlowVQ dataset (no {INDEX_NAME}; "
                             "a dataset still being built has none)")
        try:
            doc = json.loads(index.read_text())
        except (OSError, ValueError) as e:
            raise BadRequest(f"{index}: unreadable dataset index ({e})") from None
        if not isinstance(doc, dict) or doc.get("kind") != KIND:
            raise BadRequest(f"{index}: kind is {doc.get('kind') if isinstance(doc, dict) else None!r},"
                             f" expected {KIND!r}")
        if doc.get("format") != FORMAT:
            raise BadRequest(f"{index}: format {doc.get('format')!r} is not supported (expected {FORMAT})")
        for key, want in (("expression_names", EXPRESSION_NAMES), ("pose_names", POSE_NAMES),
                          ("emotions", EMOTIONS)):
            if tuple(doc.get(key) or ()) != tuple(want):
                raise BadRequest(f"{index}: {key} differ from this version's channels "
                                 f"({len(doc.get(key) or ())} vs {len(want)} names)")
        if doc.get("sample_rate") != SAMPLE_RATE:
            raise BadRequest(f"{index}: sample_rate must be {SAMPLE_RATE}, got {doc.get('sample_rate')}")
        fps = doc.get("fps")
        if not isinstance(fps, (int, float)) or not fps > 0:
            raise BadRequest(f"{index}: fps must be a positive number, got {fps!r}")
        items = doc.get("items")
        if not isinstance(items, list):
            raise BadRequest(f"{index}: items must be a list")
        for it in items:
            cls._check_entry(path, index, it)
        return cls(path, doc)

    @staticmethod
    def _check_entry(root: Path, index: Path, it: dict) -> None:
        keys = ("id", "audio", "coeffs", "emotion", "n_frames", "duration")
        if not isinstance(it, dict) or any(k not in it for k in keys):
            raise BadRequest(f"{index}: an item lacks one of {', '.join(keys)}")
        if it["emotion"] not in EMOTIONS:
            raise BadRequest(f"{index}: item {it['id']}: unknown emotion {it['emotion']!r}")
        for key in ("audio", "coeffs"):
            rel = Path(str(it[key]))
            if rel.is_absolute() or ".." in rel.parts:  # files stay inside the dataset folder
                raise BadRequest(f"{index}: item {it['id']}: {key} path {rel} leaves the dataset")
            if not (root / rel).is_file():
                raise BadRequest(f"{index}: item {it['id']}: missing file {rel}")

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Item]:
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, i: int) -> Item:
        meta = self.items[i]
        audio = self.load_audio(i)
        exp, pose = self.load_coeffs(i)
        return Item(id=meta["id"], emotion=meta["emotion"], speaker=meta.get("speaker", ""),
                    source=meta.get("source", ""), audio=audio, expression=exp, pose=pose,
                    fps=self.fps)

    @property
    def total_duration(self) -> float:
        return float(sum(it["duration"] for it in self.items))

    def load_audio(self, i: int) -> np.ndarray:
        import soundfile as sf

        meta = self.items[i]
        audio, sr = sf.read(self.path / meta["audio"], dtype="float32", always_2d=False)
        if sr != SAMPLE_RATE or audio.ndim != 1:
            raise BadRequest(f"item {meta['id']}: audio must be 16 kHz mono, got {sr} Hz, "
                             f"shape {audio.shape}")
        return audio

    def load_coeffs(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(expression (T,64), pose (T,6)) without touching the audio."""
        meta = self.items[i]
        with np.load(self.path / meta["coeffs"], allow_pickle=False) as z:
            exp = np.asarray(z["expression"], dtype=np.float32)
            pose = np.asarray(z["pose"], dtype=np.float32)
        t = int(meta["n_frames"])
        if exp.shape != (t, N_EXPRESSION) or pose.shape != (t, N_POSE):
            raise BadRequest(f"item {meta['id']}: coeffs shapes {exp.shape}, {pose.shape} "
                             f"disagree with n_frames={t}")
        return exp, pose


# --- Live Link Face (Epic's iOS capture app) -------------------------------------------------

_LLF_POSE = ("headpitch", "headyaw", "headroll")  # -> POSE_NAMES[0:3]
_STANDARD_RATES = (23.976, 24.0, 25.0, 29.97, 30.0, 48.0, 50.0, 59.94, 60.0, 120.0)


def _timecode_seconds(tc: str, rate: float) -> float:
    """'HH:MM:SS:FF.sub' (Live Link Face) -> seconds, with FF/sub counted at `rate`."""
    parts = tc.strip().replace(";", ":").split(":")
    if len(parts) != 4:
        raise ValueError(tc)
    h, m, s = int(parts[0]), int(parts[1]), int(parts[2])
    return h * 3600 + m * 60 + s + float(parts[3]) / rate


def _timecode_rate(codes: list[str]) -> float:
    """Capture rate from the frame field's rollover: the largest FF + 1, snapped to a standard rate."""
    frames = [float(c.strip().replace(";", ":").split(":")[3]) for c in codes]
    top = math.floor(max(frames)) + 1
    return float(min(_STANDARD_RATES, key=lambda r: abs(r - top)))


def import_livelink(csv_path: str | Path, wav_path: str | Path, emotion: str = "talking", *,
                    fps: float | None = None, angles: str = "auto"
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Read a Live Link Face CSV + its wav -> (audio16k, expression (T,64), pose (T,6), fps).

    Columns: Timecode, BlendShapeCount, the 52 ARKit weights by name (case-insensitive, e.g.
    EyeBlinkLeft), HeadYaw, HeadPitch, HeadRoll; other columns (eye angles) are ignored.
    The capture rate comes from the timecode's frame field; the curves are returned at `fps`
    (default: the capture rate) on a uniform grid over the span both the CSV and the wav cover.
    FlowVQ's 12 extra channels and the head translation are zero (ARKit has neither).
    Head angles: `angles="auto"` reads them as degrees when any exceeds pi in magnitude,
    as radians otherwise; pass "radians"/"degrees" to force.
    """
    import soundfile as sf

    try:
        emotion_index(emotion)
    except ValueError as e:
        raise BadRequest(str(e)) from None
    if angles not in ("auto", "radians", "degrees"):
        raise BadRequest(f"angles must be auto, radians or degrees, got {angles!r}")
    csv_path, wav_path = Path(csv_path), Path(wav_path)
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as e:
        raise BadRequest(f"{csv_path}: cannot read Live Link Face CSV ({e})") from None
    if len(rows) < 3:
        raise BadRequest(f"{csv_path}: needs a header and at least 2 frames")
    header = [h.strip().lower() for h in rows[0]]
    col = {h: i for i, h in enumerate(header)}
    needed = ["timecode", *(n.lower() for n in ARKIT_NAMES), *_LLF_POSE]
    missing = [n for n in needed if n not in col]
    if missing:
        raise BadRequest(f"{csv_path}: not a Live Link Face CSV, missing columns: "
                         f"{', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}")
    body = [r for r in rows[1:] if r and any(x.strip() for x in r)]
    try:
        codes = [r[col["timecode"]] for r in body]
        rate = _timecode_rate(codes)
        times = np.array([_timecode_seconds(c, rate) for c in codes])
        weights = np.array([[float(r[col[n.lower()]]) for n in ARKIT_NAMES] for r in body])
        head = np.array([[float(r[col[n]]) for n in _LLF_POSE] for r in body])
    except (ValueError, IndexError) as e:
        raise BadRequest(f"{csv_path}: malformed row ({e})") from None
    if not (np.all(np.isfinite(weights)) and np.all(np.isfinite(head))):
        raise BadRequest(f"{csv_path}: NaN or infinite values")
    times = times - times[0]
    if np.any(np.diff(times) <= 0):
        raise BadRequest(f"{csv_path}: timecodes are not increasing")
    if angles == "degrees" or (angles == "auto" and np.abs(head).max() > math.pi):
        head = np.deg2rad(head)

    try:
        audio, sr = sf.read(wav_path, dtype="float32", always_2d=False)
    except Exception as e:  # soundfile raises its own LibsndfileError for non-audio files
        raise BadAudio(f"{wav_path}: not a readable audio file ({e})") from None
    audio = resample_audio(audio, sr)
    out_fps = float(fps) if fps else rate
    span = min(audio.size / SAMPLE_RATE, times[-1] + 1.0 / rate)  # what both the CSV and wav cover
    audio = audio[: int(round(span * SAMPLE_RATE))]
    n = n_frames_for(audio.size, out_fps)
    t_out = np.arange(n) / out_fps
    exp = np.zeros((n, N_EXPRESSION), dtype=np.float32)
    for c in range(len(ARKIT_NAMES)):
        exp[:, c] = np.interp(t_out, times, weights[:, c])
    pose = np.zeros((n, N_POSE), dtype=np.float32)
    for c in range(3):
        pose[:, c] = np.interp(t_out, times, head[:, c])
    return audio, exp, pose, out_fps


# --- videos of real people, through the tracker ----------------------------------------------

def _safe_id(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._-") or "clip"
    return s[:100]


def face_runs(face_found: np.ndarray, min_frames: int) -> list[tuple[int, int]]:
    """[start, stop) frame ranges where a face was found continuously for >= min_frames."""
    runs, start = [], None
    for t, ok in enumerate(list(np.asarray(face_found, bool)) + [False]):
        if ok and start is None:
            start = t
        elif not ok and start is not None:
            if t - start >= min_frames:
                runs.append((start, t))
            start = None
    return runs


def build_from_videos(videos: list[str | Path], out: str | Path, emotion: str = "talking",
                      fps: float = 25.0, min_seconds: float = 2.0, max_frames: int | None = None,
                      overwrite: bool = False, progress: bool = True) -> dict:
    """Track each video's face and write it as a dataset item per stretch with a face in view.

    Audio: the video's own sound track, or a .wav with the same stem next to it (which wins).
    Frames without a face split the clip; stretches shorter than `min_seconds` are dropped.
    """
    from tqdm import tqdm

    from ..audio import load_audio
    from ..tracker import track

    try:
        emotion = EMOTIONS[emotion_index(emotion)]
    except ValueError as e:
        raise BadRequest(str(e)) from None
    paths = [Path(v) for v in videos]
    if not paths:
        raise BadRequest("no videos given")
    for p in paths:
        if not p.is_file():
            raise BadRequest(f"video not found: {p}")
    summary = {"videos": len(paths), "items": 0, "seconds": 0.0, "dropped_seconds": 0.0}
    with DatasetWriter(out, fps=fps, overwrite=overwrite,
                       meta={"generator": "flowvq dataset build", "emotion": emotion}) as w:
        for p in tqdm(paths, desc="videos", disable=not progress):
            sidecar = p.with_suffix(".wav")
            audio = load_audio(sidecar if sidecar.is_file() else p, max_seconds=4 * 3600).samples
            result = track(p, max_frames=max_frames)
            if not result.fps > 0:
                raise BadRequest(f"{p}: not a video (no frame rate)")
            n = min(result.expression.shape[0], int(audio.size / SAMPLE_RATE * result.fps))
            runs = face_runs(result.face_found[:n], int(math.ceil(min_seconds * result.fps)))
            kept = 0
            for k, (a, b) in enumerate(runs):
                s0, s1 = int(round(a / result.fps * SAMPLE_RATE)), int(round(b / result.fps * SAMPLE_RATE))
                w.add(f"{_safe_id(p.stem)}_{k:02d}", audio[s0:s1], SAMPLE_RATE, result.expression[a:b],
                      result.pose[a:b], emotion, speaker=p.stem, source=f"video:{p.name}",
                      fps=result.fps)
                kept += b - a
            summary["items"] += len(runs)
            summary["seconds"] += kept / result.fps
            summary["dropped_seconds"] += (n - kept) / result.fps
    return summary
