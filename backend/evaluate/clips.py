"""The real clips in ../shared/data: audio, the video of the face, and (talking_3dmm) the
independently fitted Basel coefficients."""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000


def default_data_root() -> Path:
    """../shared/data next to the checkout (the layout the tests use)."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


@dataclass(frozen=True)
class RealClip:
    name: str
    kind: str  # "talking_3dmm" or "video_with_audio"
    video: Path
    fps: float
    audio: np.ndarray  # (N,) float32 16 kHz mono
    basel_expression: np.ndarray | None = None  # (T, 64) Deep3DFaceRecon expression coefficients
    basel_pose: np.ndarray | None = None  # (T, 6): 3 angles (radians) + 3 translation

    @property
    def duration(self) -> float:
        return self.audio.shape[0] / SAMPLE_RATE


def _read_wav(path: Path) -> np.ndarray:
    import soundfile as sf
    from scipy.signal import resample_poly

    x, sr = sf.read(path, dtype="float32", always_2d=True)
    x = x.mean(1)
    if sr != SAMPLE_RATE:
        from math import gcd

        g = gcd(sr, SAMPLE_RATE)
        x = resample_poly(x, SAMPLE_RATE // g, sr // g).astype(np.float32)
    return x


def extract_audio(video: Path) -> np.ndarray:
    """16 kHz mono float32 from a video's sound track, through imageio-ffmpeg's ffmpeg binary."""
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(video), "-vn", "-ac", "1", "-ar",
           str(SAMPLE_RATE), "-f", "s16le", "-"]
    raw = subprocess.run(cmd, check=True, capture_output=True, timeout=120).stdout
    return (np.frombuffer(raw, dtype=np.int16).astype(np.float32) / 32768.0)


def video_fps(video: Path) -> float:
    import cv2

    cap = cv2.VideoCapture(str(video))
    fps = float(cap.get(cv2.CAP_PROP_FPS))
    cap.release()
    return fps


def find_clips(root: Path | None = None, kinds=("talking_3dmm", "video_with_audio")) -> list[RealClip]:
    from scipy.io import loadmat

    root = Path(root) if root is not None else default_data_root()
    clips = []
    if "talking_3dmm" in kinds and (root / "talking_3dmm").is_dir():
        base = root / "talking_3dmm"
        for wav in sorted((base / "wav").glob("*.wav")):
            video = base / "video_silent" / f"{wav.stem}.mp4"
            mat = base / "3DMM" / f"{wav.stem}.mat"
            if not video.exists():
                continue
            exp = pose = None
            if mat.exists():
                coeff = loadmat(mat)["coeff"].astype(np.float32)
                exp = coeff[:, 80:144]
                pose = np.concatenate([coeff[:, 224:227], coeff[:, 254:257]], axis=1)
            clips.append(RealClip(wav.stem, "talking_3dmm", video, video_fps(video), _read_wav(wav), exp, pose))
    if "video_with_audio" in kinds and (root / "video_with_audio").is_dir():
        for video in sorted((root / "video_with_audio").glob("*.mp4")):
            clips.append(RealClip(video.stem, "video_with_audio", video, video_fps(video), extract_audio(video)))
    return clips


def load_emotion_videos(root: Path | None = None) -> dict[str, Path]:
    """emotion -> silent video of MEAD actor W009 (emotion_3dmm/)."""
    root = Path(root) if root is not None else default_data_root()
    out = {}
    for v in sorted((root / "emotion_3dmm" / "video_silent").glob("*.mp4")):
        out[v.stem.split("_")[2]] = v
    return out
