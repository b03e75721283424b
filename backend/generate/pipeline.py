r"""Generator: audio + GenerateSettings -> Takes. The FCG samples; post-sampling stages shape the takes.

    audio (16 kHz) --features--> mel windows --FCG sampler--> expression, pose   (fcg/)
                \--PhoneRecogniser (helper process, cached)--> phones         (speech/)
    -> phone guidance (guidance.py) -> the voice map (voicemap.py: the opening moved toward what real
       mouths do with this sound) -> intensity + the data's range -> blinks (blinks.py) -> Take

T = ceil(duration * fps): a trailing partial frame is kept so the curves cover all the audio.
Take k draws its latents from numpy's Generator seeded with (seed, k), so take k is reproducible
alone and independent of how many takes were asked for. Every Take carries the settings that asked
for it and what was done (guidance applied or why not, blink onsets).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from flowvq_shared.channels import N_EXPRESSION, emotion_index
from flowvq_shared.settings import KEY_BLEND_S, GenerateSettings, emotion_track
from flowvq_shared.takes import Take

from ..emotion.real import checkpoint_offsets
from ..emotion.transfer import reference_mix
from ..errors import BadAudio, BadRequest, NotImplementedYet
from ..fcg.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from ..fcg.features import SAMPLE_RATE, mel_windows
from ..fcg.model import FCGModel
from ..speech.recogniser import PhoneRecogniser
from ..runtime import torch_threads
from ..timeline import frame_count
from .blinks import LID_CHANNELS, take_lids
from .guidance import guide
from .voicemap import VoiceMap, apply_voice


DEFAULT_VOICE = Path(__file__).resolve().parent.parent / "assets" / "voice_default.npz"


def load_generator(path: str | Path | None = None, device: str | None = None, voice: bool = True,
                   recogniser: PhoneRecogniser | None = None) -> "Generator":
    """Load a trained FCG (the shipped default when path is None) into a Generator; with `voice`, the
    shipped voice map too (when there is one: `flowvq train voice` makes it); `recogniser`: another
    generator's, to share its recognised lines (the owner closes it)."""
    ckpt = Path(path) if path is not None else DEFAULT_CHECKPOINT
    if not ckpt.exists():
        raise NotImplementedYet(f"no trained FCG checkpoint at {ckpt}: run `flowvq train fcg --data DATASET -o {ckpt}`")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model, meta, _ = load_checkpoint(ckpt, device=device)
    vm = VoiceMap.load(DEFAULT_VOICE) if voice and DEFAULT_VOICE.is_file() else None
    return Generator(model, meta, ckpt, device, voice=vm, recogniser=recogniser)


class Generator:
    def __init__(self, model: FCGModel, meta: dict, path: Path | None = None, device: str = "cpu",
                 voice: VoiceMap | None = None, recogniser: PhoneRecogniser | None = None):
        self.model = model.eval().requires_grad_(False)
        self.voice = voice  # real speakers' voice map, applied with phone guidance (None: the flows alone)
        self.meta = meta
        self.path = path
        self.device = torch.device(device)
        # its helper process starts with the first guided take; a shared one is closed by its owner
        self._owns_recogniser = recogniser is None
        self.recogniser = recogniser or PhoneRecogniser()
        off = checkpoint_offsets(meta)  # real-face emotions read a reference when their neutral is known
        self.real_emotions = off if off is not None and off.neutral is not None else None

    @property
    def info(self) -> dict:
        c = self.model.cfg
        return {
            "name": "FCG (ExpFlow + PoseFlow)",
            "format": 1,
            "checkpoint": str(self.path) if self.path else None,
            "trained_on": self.meta.get("trained_on", "unknown"),
            "steps": int(self.meta.get("steps", 0)),
            "params": int(sum(p.numel() for p in self.model.parameters())),
            "features": f"log-mel {c.features.n_mels} bands, hop {c.features.hop}, window {c.features.n_fft}, "
                        f"{c.features.window_frames}-frame window, lookahead {c.features.lookahead_frames}, "
                        f"cmvn={c.features.cmvn}",
            "flow_steps": c.steps,
            "sampling_scale": c.sampling_scale,
            "device": str(self.device),
            "phone_guidance": self.recogniser.error or "pocketsphinx phones",
            "voice_map": (f"{len(self.voice.info.get('sources', []))} real speakers, weight {self.voice.weight:g}"
                          if self.voice is not None else "none"),
        }

    def close(self) -> None:
        if self._owns_recogniser:
            self.recogniser.close()

    def generate(self, audio: np.ndarray, settings: GenerateSettings = GenerateSettings(), *,
                 audio_sha256: str | None = None, reference_expression: np.ndarray | None = None,
                 source_expression: np.ndarray | None = None, manifold: bool = False,
                 progress=None, cancel=None) -> list[Take]:
        """-> settings.takes Takes of expression (T, 64) and pose (T, 6), T = ceil(len/16000 * fps).

        intensity scales each frame's deviation from the neutral face (source_expression, else the
        rest face 0); reference_expression switches from sampling to emotion transfer by inversion;
        manifold=True projects each latent onto its nearest stored training latents."""
        if not isinstance(settings, GenerateSettings):
            raise BadRequest(f"settings must be GenerateSettings, got {type(settings).__name__}")
        audio = np.asarray(audio)
        if audio.ndim != 1 or audio.shape[0] == 0:
            raise BadAudio(f"audio must be a non-empty 1-D 16 kHz array, got shape {audio.shape}")
        if not np.isfinite(audio).all():
            raise BadAudio("audio contains NaN or inf")
        s = settings
        emo = emotion_index(s.emotion_keys[0][0] if s.keyed else s.emotion)  # keys: the first key's class
        ref = _expression("reference_expression", reference_expression)
        src = _expression("source_expression", source_expression)
        neutral = src if src is not None else torch.zeros(N_EXPRESSION)
        n_takes = s.takes
        if audio_sha256 is None:
            audio_sha256 = hashlib.sha256(np.ascontiguousarray(audio, dtype=np.float32).tobytes()).hexdigest()

        if progress is not None:
            progress(0.0, "features")
        # recognition starts first and runs in its helper process while the flow samples
        phones = self.recogniser.start(audio) if s.phone_guidance > 0 else None
        m = self.model
        with torch.no_grad(), torch_threads(1 if self.device.type == "cpu" else None):
            wav = torch.from_numpy(audio.astype(np.float32, copy=False)).to(self.device)
            mel = m.logmel(wav)
            n_frames = frame_count(audio.shape[0], s.fps, SAMPLE_RATE)
            windows = mel_windows(mel, n_frames, s.fps, m.cfg.features,
                                  extra_lookahead=m.cfg.features.inference_lead_frames)
            seed = s.seed & 0xFFFFFFFFFFFFFFFF
            rngs = [np.random.default_rng([seed, k]) for k in range(n_takes)]
            clear = tuple((t - KEY_BLEND_S, t + KEY_BLEND_S) for _, t, _ in s.emotion_keys[1:])
            lids = take_lids(audio, emo, n_frames, s.fps, seed, n_takes, clear) if s.blinks else None
            weights, intensity = (emotion_track(s, n_frames, s.fps) if s.keyed else (None, s.intensity))
            if s.keyed:
                if ref is not None or manifold:
                    raise BadRequest("emotion keys do not combine with an emotion reference")
                intensity = torch.from_numpy(intensity).to(self.device)[None, :, None]  # (1, T, 1)
                weights = torch.from_numpy(weights)
            elif ref is not None and self.real_emotions is not None and not manifold:
                # real-face emotions: the reference is read as a mix of them (emotion/transfer.py)
                mix, _ = reference_mix(ref.cpu().numpy(), self.real_emotions)
                weights, ref = torch.from_numpy(np.tile(mix, (n_frames, 1))), None
            # while the recogniser works on a new line, the flows take one core and leave it the other
            recognising = phones is not None and not phones.done()
            exp, pose = m.sample(windows, emo, neutral, rngs, temperature=s.temperature, reference=ref,
                                 manifold=manifold, progress=progress, cancel=cancel, emotion_weights=weights,
                                 parallel=not recognising, display_scale=display_scales(seed, n_takes))
            applied, note = 0.0, ""
            if s.phone_guidance > 0:
                guided, note = guide(exp.float().cpu().numpy(), phones, n_frames, s.fps, s.phone_guidance)
                if guided is not None:
                    exp = torch.from_numpy(guided).to(exp.device, exp.dtype)
                    applied = s.phone_guidance
                if guided is not None and self.voice is not None and self.voice.weight > 0:
                    # part of guidance (one knob: "follow the sound"); the phones are in: guide() waited for them
                    course = self.voice.predict(audio, n_frames, s.fps, phones.result())
                    voiced = np.stack([apply_voice(x, course, self.voice.weight)  # [0, 1], as guidance; range later
                                       for x in exp.float().cpu().numpy()])
                    exp = torch.from_numpy(voiced).to(exp.device, exp.dtype)
            neutral = neutral.to(exp.device)
            exp = neutral + intensity * (exp - neutral)
            top = max([s.intensity] + [k[2] for k in s.emotion_keys])
            lo = torch.minimum(m.exp_lo, neutral)
            hi = neutral + max(1.0, top) * (m.exp_hi - neutral).clamp_min(0)
            exp = torch.maximum(torch.minimum(exp, hi), lo)
            if lids is not None:  # after sampling: the mouth stays exactly what the flow made; full closure at any intensity
                lid_idx = list(LID_CHANNELS)
                exp[..., lid_idx] = torch.maximum(exp[..., lid_idx], torch.from_numpy(lids).to(exp.device, exp.dtype))
        if progress is not None:
            progress(1.0, "done")
        e, p = exp.float().cpu().numpy(), pose.float().cpu().numpy()
        return [Take(expression=e[k], pose=p[k], settings=s, index=k + 1, audio_sha256=audio_sha256,
                     guidance_applied=applied, guidance_note=note,
                     blink_starts=_onsets(lids[k]) if lids is not None else ())
                for k in range(n_takes)]


DISPLAY_SPREAD = 0.2  # take k shows its emotion's display at 1 +- this (uniform): takes differ in how strongly


def display_scales(seed: int, n_takes: int) -> torch.Tensor:
    """(B,) per take, from (seed, take) alone: the same request gives the same takes. A class without a
    display (talking, a corpus-trained checkpoint) is unaffected."""
    return torch.tensor([np.random.default_rng([seed, k, 0xD15]).uniform(1 - DISPLAY_SPREAD, 1 + DISPLAY_SPREAD)
                         for k in range(n_takes)], dtype=torch.float32)


def _onsets(lids: np.ndarray) -> tuple[int, ...]:
    """Frames where a blink starts: the lids rise from (near) open."""
    closed = lids.max(axis=-1) > 0.05
    return tuple(int(t) for t in np.flatnonzero(closed & ~np.r_[False, closed[:-1]]))


def _expression(name: str, value) -> torch.Tensor | None:
    if value is None:
        return None
    arr = np.asarray(value, dtype=np.float32)
    if arr.shape != (N_EXPRESSION,) or not np.isfinite(arr).all():
        raise BadRequest(f"{name} must be {N_EXPRESSION} finite numbers, got shape {arr.shape}")
    return torch.from_numpy(arr)
