"""`make demo`: the main job end to end on what ships with the repo and its dependencies.

speech (espeak-ng, spoken here) + emotion -> takes (curve files) -> a .blend with the add-on's
head animated by the takes (one Action per take) -> plates of one take from a portrait that
ships in scikit-image, with an mp4 carrying the audio. A stage whose model is not built says so
and is skipped; nothing is faked.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from flowvq_shared.protocol import ProtocolError

from .errors import FlowVQError, NotImplementedYet

SENTENCE = ("Every take is a new performance: the lips stay in sync while the blinks, "
            "the head and the small details change.")


def speak(text: str, path: Path, voice: str = "en-us+m3", speed: int = 150) -> Path:
    """A real recording made on this machine by espeak-ng (a Debian package `make demo` installs)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise FlowVQError("espeak-ng is not installed (apt-get install espeak-ng)")
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([exe, "-v", voice, "-s", str(speed), "-w", str(path), text], check=True,
                   capture_output=True, timeout=60)
    return path


def portrait(path: Path) -> Path:
    """skimage.data.astronaut(): a public-domain portrait that ships inside scikit-image."""
    import cv2
    from skimage import data

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), data.astronaut()[:, :, ::-1])
    return path


def write_blend(out: Path, takes: list, wav: Path) -> Path:
    """Run scripts/demo_blend.py with the bpy module: the backend itself never imports bpy."""
    if not takes:
        raise NotImplementedYet("no takes to put on the head (the FCG generator is not built yet)")
    from .facemodel import export_face_model, load_face_model

    head = out / "head.npz"
    export_face_model(load_face_model("default"), head, "npz")
    script = Path(__file__).resolve().parents[1] / "scripts" / "demo_blend.py"
    files = [str(out / "takes" / f"take_{t.index}.npz") for t in takes]
    proc = subprocess.run([sys.executable, str(script), "--face-model", str(head),
                           "--audio", str(wav), "--out", str(out / "demo.blend"), *files],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise FlowVQError(f"writing the .blend failed: {proc.stderr.strip().splitlines()[-1:]}")
    print(proc.stdout.strip().splitlines()[-1])
    return out / "demo.blend"


def _stage(name: str):
    print(f"\n== {name}", flush=True)
    return time.perf_counter()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m flowvq.demo")
    ap.add_argument("--out", default="out/demo")
    ap.add_argument("--emotion", default="happy",
                    help='an emotion, or keys over time: "sad:0,happy@0.6:3" (label[@intensity]:seconds)')
    ap.add_argument("--takes", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    missing: list[str] = []

    t = _stage("audio: espeak-ng speaks the demo line")
    wav = speak(SENTENCE, out / "speech.wav")
    print(f"{wav} ({time.perf_counter() - t:.1f} s)")
    face = portrait(out / "portrait.png")
    print(f"{face} (skimage.data.astronaut)")

    t = _stage(f"takes: {args.takes} x '{args.emotion}', seed {args.seed}")
    takes = []
    try:
        from flowvq_shared.settings import GenerateSettings, parse_emotion_keys

        from . import jobs
        from .audio import load_audio

        audio = load_audio(wav)
        # --emotion happy, or keys over time: --emotion "sad:0,happy:3" (one take that changes)
        keys = parse_emotion_keys(args.emotion) if ":" in args.emotion else ()
        settings = GenerateSettings(emotion=keys[0][0] if keys else args.emotion, emotion_keys=keys,
                                    takes=args.takes, seed=args.seed, fps=25.0)
        takes = jobs.generate(jobs.Models(), audio, settings)
        for k, take in enumerate(takes, 1):
            print(take.save(out / "takes", k))
        print(f"({time.perf_counter() - t:.1f} s)")
    except NotImplementedYet as e:
        missing.append(f"takes: {e.message}")
        print(f"not built yet: {e.message}")

    t = _stage("blender: the add-on's head animated by the takes (one Action per take)")
    try:
        blend = write_blend(out, takes, wav)
        print(f"{blend} ({time.perf_counter() - t:.1f} s)")
    except NotImplementedYet as e:
        missing.append(f"blend: {e.message}")
        print(f"not built yet: {e.message}")

    t = _stage("plates: one take rendered from the portrait, mp4 with the audio")
    try:
        if not takes:
            raise NotImplementedYet("no takes to render (the FCG generator is not built yet)")
        try:
            from .render import write_plates
        except ImportError as e:
            raise NotImplementedYet(f"the plate renderer is not built yet ({e})") from None
        from .images import load_image

        manifest = write_plates(takes[0], load_image(face).rgb, out / "plates", fmt="png",
                                mp4=True, audio_path=wav)
        print(f"{out / 'plates'}: {manifest.get('frames', '?')} frames, "
              f"{manifest.get('mp4', 'no mp4')} ({time.perf_counter() - t:.1f} s)")
    except NotImplementedYet as e:
        missing.append(f"plates: {e.message}")
        print(f"not built yet: {e.message}")

    print("\n== done:", out.resolve())
    if missing:
        print("Not produced, because these parts are not built yet:")
        for line in missing:
            print(f"  - {line}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ProtocolError as e:  # FlowVQError, or a refused setting (e.g. a bad --emotion)
        print(f"error: {e.message}", file=sys.stderr)
        sys.exit(2)
