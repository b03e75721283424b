"""An actor profile on disk, loaded strictly, and the generator that uses it.

    ACTOR_DIR/
      actor.json   format, id, sources (sha256), settings, what was estimated, the measured fit
      fcg.pt       the fine-tuned FCG (float16, like the shipped checkpoint)
      voice_map.npz  how their lips open with their voice (voicemap.py; profiles learned before it lack it)
      bank/        bank.npz (their tracked curves for the bank frames, identity, camera) + frame_XX.png;
                   mouth.npz (their lower face in every frame, for dubbing: render/mouth_bank.py)

`ActorGenerator` wraps the pipeline's `Generator` over the actor's checkpoint and applies what a
fine-tune should not have to learn: the lead of their lips over their sound (a time shift of the
mouth channels), their mouth's range per channel, their head's motion (a scale per rotation axis: their typical
motion over the generator's, shrunk toward 1 with little footage; learn.py, estimate).

Which of these a profile uses was chosen on the held-out tail of its footage (learn.py, select):
`estimated.selected` = {"candidate", "model": "actor" | "default", "lead_shift": bool,
"mouth_scale_power": 0..1, "voice_weight": 0..1}. "default" runs the shipped model instead of fcg.pt;
the lead shift and the mouth scale (raised to the power: 1 as estimated, 0 not at all) are applied
only when chosen; voice_weight > 0 moves each take's mouth opening that far toward the actor's voice
map (voice_map.npz, voicemap.py). A profile without `selected` (learned before the selection)
applies everything but the voice map, as it always did; one without voice_weight has none.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from flowvq_shared.channels import CHANNEL_INDEX, N_EXPRESSION, N_POSE
from flowvq_shared.settings import GenerateSettings

from ..errors import BadRequest

FORMAT = 1
KIND = "flowvq-actor"
from flowvq_shared.settings import ACTOR_ID  # noqa: E402  one rule for an actor id
# the channels whose range and timing are the actor's mouth (phone guidance's channels + the smile's neighbours)
MOUTH_CHANNELS = ("jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthLowerDownLeft",
                  "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight", "mouthPressLeft",
                  "mouthPressRight", "mouthRollLower", "mouthRollUpper", "mouthStretchLeft",
                  "mouthStretchRight", "mouthShrugLower", "mouthShrugUpper")
MOUTH_INDEX = np.array([CHANNEL_INDEX[n] for n in MOUTH_CHANNELS])
MAX_SHIFT_S = 0.16  # the lead correction never moves the mouth more than this
SCALE_RANGE = (0.5, 2.0)  # mouth range ratio, clipped
POSE_SCALE_RANGE = (0.25, 4.0)


# what a profile without `estimated.selected` does (learned before the held-out selection): everything
ALL_CORRECTIONS = {"candidate": "fine-tuned + lead + mouth", "model": "actor", "lead_shift": True,
                   "mouth_scale_power": 1.0}


def pose_scale_key(est: dict, shipped: bool) -> str:
    """Which estimate scales the head of a take made by the shipped model (`shipped`) or fcg.pt: each is
    measured against its own model's motion (profiles learned before pose_scale_default: fcg.pt's for both)."""
    return "pose_scale_default" if shipped and "pose_scale_default" in est else "pose_scale"


class ActorError(BadRequest):
    """A profile folder that cannot be used (one line says why)."""


def safe_id(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("._-")[:64] or "actor"
    return s if ACTOR_ID.fullmatch(s) else "actor"


@dataclass(frozen=True)
class ActorProfile:
    path: Path
    doc: dict

    @property
    def id(self) -> str:
        return self.doc["id"]

    @property
    def checkpoint(self) -> Path:
        return self.path / self.doc["files"]["fcg"]

    @property
    def mouth_bank(self) -> Path | None:
        """bank/mouth.npz: their own lower-face frames for dubbing and plates (None in profiles
        learned before it existed; `flowvq actor bank` adds one)."""
        rel = self.doc["files"].get("mouth_bank")
        return None if rel is None else self.path / rel

    @property
    def voice_map(self) -> Path | None:
        rel = self.doc["files"].get("voice_map")
        return None if rel is None else self.path / rel

    @property
    def voice_weight(self) -> float:
        """How far takes follow the voice map (0: not at all; profiles without one)."""
        return float(self.selected.get("voice_weight", 0.0))

    @property
    def estimated(self) -> dict:
        return self.doc["estimated"]

    @property
    def selected(self) -> dict:
        """The corrections chosen on the held-out footage (ALL_CORRECTIONS for older profiles)."""
        return self.estimated.get("selected") or ALL_CORRECTIONS

    @property
    def uses_default_model(self) -> bool:
        """True when the held-out footage chose the shipped model over fcg.pt."""
        return self.selected["model"] == "default"

    def pose_scale(self, default_model: bool | None = None) -> np.ndarray:
        """Head-motion scale per pose channel for takes of the shipped model (default_model) or fcg.pt (None:
        the one chosen), each measured against that model's own motion (profiles learned before the shipped
        model's was measured: fcg.pt's for both)."""
        shipped = self.uses_default_model if default_model is None else default_model
        return np.clip(np.asarray(self.estimated[pose_scale_key(self.estimated, shipped)], np.float32),
                       *POSE_SCALE_RANGE)

    @classmethod
    def load(cls, path: str | Path) -> "ActorProfile":
        """Strict: an unknown format, a missing file or a malformed estimate raise ActorError."""
        path = Path(path)
        index = path / "actor.json"
        if not index.is_file():
            raise ActorError(f"{path} is not an actor profile (no actor.json; `flowvq actor learn` makes one)")
        try:
            doc = json.loads(index.read_text())
        except (OSError, ValueError) as e:
            raise ActorError(f"cannot read {index}: {e}") from None
        if not isinstance(doc, dict) or doc.get("kind") != KIND:
            raise ActorError(f"{index} is not a flowvq actor profile (kind={doc.get('kind') if isinstance(doc, dict) else None!r})")
        if doc.get("format") != FORMAT:
            raise ActorError(f"{index} has format {doc.get('format')!r}; this flowvq reads actor format {FORMAT}")
        if not isinstance(doc.get("id"), str) or not ACTOR_ID.fullmatch(doc["id"]):
            raise ActorError(f"{index}: id {doc.get('id')!r} is not a safe actor id")
        files = doc.get("files")
        if not isinstance(files, dict) or not {"fcg", "bank"} <= set(files):
            raise ActorError(f"{index}: 'files' must name fcg and bank")
        for key, rel in files.items():
            if not isinstance(rel, str) or Path(rel).is_absolute() or ".." in Path(rel).parts:
                raise ActorError(f"{index}: file {key} {rel!r} must be a path inside the profile")
            if not (path / rel).is_file():
                raise ActorError(f"actor profile {path} is missing {rel}")
        est = doc.get("estimated")
        need = {"lead_shift_s": None, "mouth_scale": len(MOUTH_CHANNELS), "mouth_centre": len(MOUTH_CHANNELS),
                "generated_mouth_centre": len(MOUTH_CHANNELS), "pose_scale": N_POSE,
                "neutral_expression": N_EXPRESSION}
        if not isinstance(est, dict):
            raise ActorError(f"{index}: 'estimated' is missing")
        for key, n in need.items():
            v = est.get(key)
            arr = np.asarray(v, dtype=np.float64) if isinstance(v, (list, int, float)) else None
            if arr is None or (n is None and arr.shape != ()) or (n is not None and arr.shape != (n,)) \
                    or not np.isfinite(arr).all():
                raise ActorError(f"{index}: estimated.{key} must be {'a number' if n is None else f'{n} numbers'}")
        if "pose_scale_default" in est:  # learned since the shipped model's head motion is measured too
            v = est["pose_scale_default"]
            arr = np.asarray(v, dtype=np.float64) if isinstance(v, list) else None
            if arr is None or arr.shape != (N_POSE,) or not np.isfinite(arr).all():
                raise ActorError(f"{index}: estimated.pose_scale_default must be {N_POSE} numbers")
        sel = est.get("selected")
        if sel is not None:
            power = sel.get("mouth_scale_power") if isinstance(sel, dict) else None
            if not isinstance(sel, dict) or sel.get("model") not in ("actor", "default") \
                    or not isinstance(sel.get("lead_shift"), bool) or isinstance(power, bool) \
                    or not isinstance(power, (int, float)) or not 0.0 <= power <= 1.0:
                raise ActorError(f"{index}: estimated.selected must give model (actor/default), lead_shift "
                                 "(true/false) and mouth_scale_power (0-1)")
            voice = sel.get("voice_weight", 0.0)
            if isinstance(voice, bool) or not isinstance(voice, (int, float)) or not 0.0 <= voice <= 1.0:
                raise ActorError(f"{index}: estimated.selected.voice_weight must be a number in 0-1")
            if voice > 0 and "voice_map" not in files:
                raise ActorError(f"{index}: estimated.selected uses a voice map but 'files' names none")
        if "voice_map" in files:
            from ..generate.voicemap import VoiceMap
            try:
                VoiceMap.load(path / files["voice_map"])
            except ValueError as e:
                raise ActorError(str(e)) from None
        return cls(path, doc)

    # ---- what generation applies ------------------------------------------------------------
    def adapt(self, expression: np.ndarray, pose: np.ndarray, fps: float,
              lo: np.ndarray | None = None, hi: np.ndarray | None = None,
              voice: np.ndarray | None = None, default_model: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One take's curves -> the actor's: mouth shifted by their lead and rescaled to their
        range, its opening moved toward `voice` (the voice map's course for this audio, when the
        profile uses one), head motion scaled to theirs around the take's own mean pose (`default_model`:
        whether the shipped model made the take; None: the one the profile chose)."""
        est, sel = self.estimated, self.selected
        exp = np.array(expression, dtype=np.float32)
        pose = np.array(pose, dtype=np.float32)
        mouth = exp[:, MOUTH_INDEX]
        shift = int(round(float(est["lead_shift_s"]) * fps)) if sel["lead_shift"] else 0
        if shift and len(mouth) > 1:  # > 0: the actor's lips run further ahead of the sound
            idx = np.clip(np.arange(len(mouth)) + shift, 0, len(mouth) - 1)
            mouth = mouth[idx]
        scale = np.clip(np.asarray(est["mouth_scale"], np.float32), *SCALE_RANGE) ** float(sel["mouth_scale_power"])
        g_c = np.asarray(est["generated_mouth_centre"], np.float32)
        mouth = g_c + (mouth - g_c) * scale
        if lo is not None and hi is not None:
            mouth = np.clip(mouth, lo[MOUTH_INDEX], hi[MOUTH_INDEX])
        exp[:, MOUTH_INDEX] = mouth
        if voice is not None and self.voice_weight > 0:
            from ..generate.voicemap import apply_voice
            exp = apply_voice(exp, voice, self.voice_weight, lo, hi)
        ps = self.pose_scale(default_model)
        mean = pose.mean(0, keepdims=True)
        pose = mean + (pose - mean) * ps
        return exp, pose


class ActorGenerator:
    """The pipeline's Generator over the actor's checkpoint, with the actor's post-processing;
    takes record the actor id in their settings."""

    def __init__(self, profile: ActorProfile, device: str | None = None, fine_tuned: bool = False):
        """fine_tuned: fcg.pt even where the held-out lip-sync chose the shipped model (dubbing: the
        mouth bank is looked up by mouth shape, and fcg.pt's shapes are the person's)."""
        from ..generate import load_generator
        from ..generate.voicemap import VoiceMap

        self.profile = profile  # fcg.pt, unless its held-out footage chose the shipped model
        self.fine_tuned = fine_tuned or not profile.uses_default_model
        # their own voice map replaces the shipped one (a prior for voices it does not know)
        self.inner = load_generator(profile.checkpoint if self.fine_tuned else None, device=device,
                                    voice=profile.voice_weight == 0)
        self.voice = VoiceMap.load(profile.voice_map) if profile.voice_weight > 0 else None

    @property
    def info(self) -> dict:
        return {**self.inner.info, "actor": self.profile.id, "actor_path": str(self.profile.path),
                "actor_model": "fine-tuned" if self.fine_tuned else "default"}

    def close(self) -> None:
        self.inner.close()

    def generate(self, audio, settings: GenerateSettings = GenerateSettings(), **kw):
        pid = self.profile.id
        if settings.actor and settings.actor != pid:
            raise BadRequest(f"settings ask for actor {settings.actor!r} but the loaded profile is {pid!r}")
        settings = settings.replace(actor=pid)
        takes = self.inner.generate(audio, settings, **kw)
        m = self.inner.model
        lo, hi = m.exp_lo.float().cpu().numpy(), m.exp_hi.float().cpu().numpy()
        course = None
        if self.voice is not None and takes and settings.phone_guidance > 0:  # part of guidance, as the shipped map
            from ..generate.voicemap import heard  # the phones guidance heard (the recogniser's cache)
            course = self.voice.predict(audio, len(takes[0].expression), settings.fps, heard(self.inner.recogniser, audio))
        out = []
        for t in takes:
            e, p = self.profile.adapt(t.expression, t.pose, settings.fps, lo, hi, voice=course,
                                      default_model=not self.fine_tuned)
            out.append(replace(t, expression=e, pose=p))
        return out


def load_actor(path: str | Path, device: str | None = None, fine_tuned: bool = False) -> ActorGenerator:
    return ActorGenerator(ActorProfile.load(path), device=device, fine_tuned=fine_tuned)


def set_new_line_sync(path: str | Path, choice: str) -> float:
    """Where the profile's takes read a new line's sound (its voice map's shift_s) -> the seconds set.
    "footage": their recordings' mean sync, as learned (lips ahead of the sound by their lead plus their
    recordings' own sound-to-picture offset: what a line recorded like the footage wants); "standard": the
    shipped map's timing (0), for dialogue in sync where the footage was not; or milliseconds ("+120").
    The map is rewritten first, then actor.json (whose change makes a running server reload the profile)."""
    from ..files import write_json
    from ..generate.voicemap import MAX_SYNC_S, VoiceMap

    prof = ActorProfile.load(path)
    if prof.voice_map is None or prof.voice_weight <= 0:
        raise ActorError(f"actor {prof.id!r} uses no voice map ({prof.selected['candidate']}): its takes keep the "
                         f"default model's timing, there is no sync to set")
    vm = VoiceMap.load(prof.voice_map)
    if int(vm.info.get("format", 0)) < 3:
        raise ActorError(f"actor {prof.id!r} was learned before each recording's sync was read (voice map format "
                         f"{vm.info.get('format')}): learn it again to set one")
    learned = float((prof.estimated.get("voice_map") or {}).get("all", {}).get("shift_s", vm.shift_s))
    if choice == "footage":
        shift = learned
    elif choice == "standard":
        shift = 0.0
    else:
        try:
            shift = float(choice) / 1000.0
        except ValueError:
            shift = float("nan")
        if not abs(shift) <= MAX_SYNC_S:
            raise BadRequest(f"sync {choice!r}: give footage, standard or milliseconds within "
                             f"+-{1000 * MAX_SYNC_S:.0f} (e.g. +120)")
        choice = "set"
    shift = round(shift, 4)
    replace(vm, info={**vm.info, "shift_s": shift}).save(prof.voice_map)
    doc = json.loads(json.dumps(prof.doc))
    doc["estimated"].setdefault("voice_map", {})["new_line"] = {"sync": choice, "shift_s": shift, "learned_shift_s": learned}
    write_json(prof.path / "actor.json", doc)
    return shift
