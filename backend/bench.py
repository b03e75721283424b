"""`flowvq bench`: speed of the product's jobs on this machine, written to docs/benchmarks.md.

Each measurement warms up first and reports the median of several runs, with the machine it ran
on. A part whose model is not built is reported as such, not skipped silently.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def register(sub) -> None:
    p = sub.add_parser("bench", help="measure speed (FCG takes, plates) -> docs/benchmarks.md")
    p.add_argument("--device", help="cpu or cuda (default: cuda when present)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--only", choices=["fcg", "plates", "dub"], action="append",
                   help="measure only these parts (repeatable)")
    p.add_argument("--write", default=str(DOC), help="markdown file to update ('' = don't)")
    p.add_argument("--json", help="also write the raw numbers as JSON here")
    p.add_argument("--busy", type=int, default=0, metavar="N",
                   help="run N busy loops (`yes > /dev/null`) during the measurement: an animator's "
                        "machine with Blender playing back")
    p.set_defaults(func=run)


def machine(device: str) -> str:
    import os

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    desc = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    if device.startswith("cuda"):
        desc += f", GPU {torch.cuda.get_device_name(0)}"
    return desc


def _timed(fn, repeats: int, after_warmup=None) -> tuple[float, list[float]]:
    fn()  # warm-up: first-call costs (allocations, kernels) are not the steady state
    if after_warmup is not None:
        after_warmup()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def speech_like(seconds: float, seed: int = 0):
    """A real recording: espeak-ng speaking a long enough text (falls back to a voiced signal)."""
    import numpy as np

    from .audio import load_audio
    from .demo import speak

    import tempfile

    words = ("the quick brown fox jumps over the lazy dog while seven bright lamps "
             "glow above a quiet harbour and people talk about tomorrow ")
    with tempfile.TemporaryDirectory() as d:
        wav = speak(words * int(1 + seconds / 5), Path(d) / "s.wav", speed=170)
        x = load_audio(wav, max_seconds=3600).samples
    n = int(seconds * 16000)
    reps = int(np.ceil(n / x.size))
    return np.tile(x, reps)[:n].astype(np.float32)


def bench_fcg(device: str, repeats: int) -> list[dict]:
    """Takes with the default settings (phone guidance and blinks on). "again" = Generate pressed again
    on the same line (the recognised phones come from the cache); "new line" = audio never heard before
    (recognition runs beside the sampling); "flow only" = phone guidance 0."""
    import numpy as np

    from flowvq_shared.settings import GenerateSettings

    from .jobs import Models

    gen = Models(device=device).generator()
    rows = []
    cases = [(10.0, 1, "again"), (10.0, 4, "again"), (10.0, 1, "new line"), (10.0, 1, "flow only")]
    if device.startswith("cuda"):
        cases.append((60.0, 16, "again"))
    for seconds, takes, kind in cases:
        audio = speech_like(seconds)
        settings = GenerateSettings(emotion="happy", takes=takes, seed=1, fps=25.0,
                                    phone_guidance=0.0 if kind == "flow only" else GenerateSettings().phone_guidance)
        fresh = iter(range(1, 1000))
        # a new line: the same speech shifted by a few samples, so no cached recognition applies
        pick = (lambda: audio) if kind != "new line" else (lambda: np.roll(audio, 7 * next(fresh)))
        stages: dict[str, float] = {}
        med, times = _timed(lambda: gen.generate(pick(), settings, progress=_stage_clock(stages)), repeats,
                            after_warmup=stages.clear)
        rows.append({"job": f"FCG: {takes} take(s) of {seconds:g} s at 25 fps, {kind}", "device": device,
                     "median_s": med, "runs": len(times), "realtime_factor": seconds * takes / med,
                     "stages": {k: v / repeats for k, v in stages.items()}})
    return rows


def _stage_clock(stages: dict):
    """A progress callback that adds the wall time spent in each stage (features, sampling, after)."""
    state = {"stage": None, "t": time.perf_counter()}

    def progress(_f: float, stage: str) -> None:
        now = time.perf_counter()
        if state["stage"] is not None:
            stages[state["stage"]] = stages.get(state["stage"], 0.0) + now - state["t"]
        state["stage"] = {"sampling": "sampling (flows)", "done": None}.get(stage, "features, recognition start")
        if stage == "sampling" and _f >= 1.0:
            state["stage"] = "guidance wait, intensity, blinks"
        state["t"] = now

    return progress


def bench_plates(device: str, repeats: int) -> list[dict]:
    import numpy as np
    from skimage import data

    from .render import PlateRenderer
    from flowvq_shared.channels import CHANNEL_INDEX

    import cv2

    portrait = cv2.resize(data.astronaut(), (512, 512), interpolation=cv2.INTER_AREA)
    r = PlateRenderer(portrait)
    t = np.arange(50) / 25.0
    exp = np.zeros((50, 64), np.float32)
    exp[:, CHANNEL_INDEX["jawOpen"]] = 0.4 * (1 + np.sin(2 * np.pi * 3 * t)) / 2
    pose = np.zeros((50, 6), np.float32)
    pose[:, 1] = 0.1 * np.sin(2 * np.pi * 0.5 * t)

    def render():
        for _ in r.render(exp, pose):
            pass

    med, times = _timed(render, max(1, repeats // 2))
    rows = [{"job": "plates: 50 frames at 512 px, rendering only (geometry path)",
             "device": device, "median_s": med, "runs": len(times), "fps": 50 / med}]

    # the user's measure: a 10 s take to PNG files on disk, portrait fit included
    import tempfile

    from .render import write_plates
    from flowvq_shared.settings import GenerateSettings
    from flowvq_shared.takes import Take

    t10 = np.arange(250) / 25.0
    exp10 = np.zeros((250, 64), np.float32)
    exp10[:, CHANNEL_INDEX["jawOpen"]] = 0.4 * (1 + np.sin(2 * np.pi * 3 * t10)) / 2
    pose10 = np.zeros((250, 6), np.float32)
    pose10[:, 1] = 0.1 * np.sin(2 * np.pi * 0.5 * t10)
    take = Take(expression=exp10, pose=pose10, settings=GenerateSettings(fps=25.0))
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        write_plates(take, portrait, Path(d) / "plates", fmt="png")
        wall = time.perf_counter() - t
    rows.append({"job": "plates: a 10 s take (250 frames) at 512 px to PNG, fit included",
                 "device": device, "median_s": wall, "runs": 1, "fps": 250 / wall})
    return rows


DUB_SHOTS = (("512 px", "dfrf_cnn2_25fps_71s.mp4", 30.0), ("1080x1920", "latentsync_demo1_video_woman_outdoor_10s.mp4", 2.0))


def bench_dub(device: str, repeats: int) -> list[dict]:
    """Dubbing 2 s of a real shot (../shared/data/video_with_audio) with a take: the whole job (face
    found and fitted, bank from the shot itself, frames to PNG) and the synthesis alone."""
    import tempfile

    import numpy as np

    from .dub import dub_shot
    from .dub.measure import cut
    from flowvq_shared.channels import CHANNEL_INDEX

    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "video_with_audio"
    rows = []
    t = np.arange(50) / 25.0
    exp = np.zeros((50, 64), np.float32)
    exp[:, CHANNEL_INDEX["jawOpen"]] = 0.4 * (1 + np.sin(2 * np.pi * 3 * t)) / 2
    for label, name, start in DUB_SHOTS:
        if not (root / name).is_file():
            raise FileNotFoundError(f"{root / name} (the development shots are not on this machine)")
        with tempfile.TemporaryDirectory() as d:
            shot = cut(root / name, Path(d) / "shot.mp4", start=start, length=2.0)
            stages: dict = {}
            clock = {"stage": None, "t": time.perf_counter()}

            def progress(_f, stage):
                now = time.perf_counter()
                if clock["stage"] is not None:
                    stages[clock["stage"]] = stages.get(clock["stage"], 0.0) + now - clock["t"]
                clock.update(stage=stage, t=now)

            saved = os.environ.get("FLOWVQ_CACHE")
            os.environ["FLOWVQ_CACHE"] = str(Path(d) / "cache")  # first dub: nothing cached; the user's cache untouched
            try:
                t0 = time.perf_counter()
                m = dub_shot(shot, Path(d) / "out", take=(exp, 25.0), progress=progress, log=lambda *_: None)
                progress(1.0, None)
                wall = time.perf_counter() - t0
                t0 = time.perf_counter()  # another line on the same shot: its track comes from the cache
                dub_shot(shot, Path(d) / "again", take=(exp, 25.0), log=lambda *_: None)
                again = time.perf_counter() - t0
            finally:
                if saved is None:
                    os.environ.pop("FLOWVQ_CACHE", None)
                else:
                    os.environ["FLOWVQ_CACHE"] = saved
        n = m["frames"]
        rows.append({"job": f"dub: 2 s shot at {label} ({n} frames), whole job to PNG", "device": "cpu",
                     "median_s": wall, "runs": 1, "fps": n / wall, "stages": stages})
        rows.append({"job": "dub: the same shot again (another line: track cached), whole job to PNG", "device": "cpu",
                     "median_s": again, "runs": 1, "fps": n / again})
        rows.append({"job": f"dub: synthesis only at {label} (bank pick, warp, light, blend)", "device": "cpu",
                     "median_s": m["dubbed_frames"] / m["synthesis_fps"], "runs": 1, "fps": m["synthesis_fps"]})
    return rows


def run(args) -> int:
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    parts = args.only or ["fcg", "plates", "dub"]
    rows: list[dict] = []
    notes: list[str] = []
    with busy_loops(args.busy):
        for part, fn in (("fcg", bench_fcg), ("plates", bench_plates), ("dub", bench_dub)):
            if part not in parts:
                continue
            try:
                rows += fn(device, args.repeats)
            except ImportError as e:
                notes.append(f"{part}: not built yet ({e})")
            except FileNotFoundError as e:
                notes.append(f"{part}: no input: {e}")
            except Exception as e:  # noqa: BLE001 - a benchmark reports what failed and goes on
                notes.append(f"{part}: {type(e).__name__}: {getattr(e, 'message', e)}")
    desc = machine(device) + (f", with {args.busy} busy loops (`yes > /dev/null`) running" if args.busy else "")
    print(f"machine: {desc}")
    for r in rows:
        extra = ", ".join(f"{k} {v:.1f}" for k, v in r.items() if k in ("realtime_factor", "fps"))
        print(f"{r['job']:<50} {r['median_s']:8.3f} s  ({extra})")
        if r.get("stages"):
            print("    per run: " + ", ".join(f"{k} {v:.3f} s" for k, v in r["stages"].items()))
    for n in notes:
        print(f"not measured: {n}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": desc, "rows": rows, "notes": notes},
                                              indent=2))
    if args.write:
        key = "+".join(sorted(parts)) + (f"+busy{args.busy}" if args.busy else "") if args.only or args.busy else ""
        cmd = "flowvq bench --device " + device + "".join(f" --only {p}" for p in (args.only or [])) + (
            f" --busy {args.busy}" if args.busy else "")
        _write_doc(Path(args.write), desc, device, rows, notes, key, cmd)
    return 0


@contextlib.contextmanager
def busy_loops(n: int):
    """n CPU-bound processes for the duration of the block (killed on exit, whatever happens)."""
    procs = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(max(0, n))]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def _write_doc(path: Path, desc: str, device: str, rows: list[dict], notes: list[str], section_key: str = "",
               command: str = "") -> None:
    """Replace this device's (and load's) section of the benchmark page, keeping the others."""
    key = device + (f":{section_key}" if section_key else "")
    begin, end = f"<!-- bench:{key}:begin -->", f"<!-- bench:{key}:end -->"
    lines = [begin, f"### {key}: {desc}", "",
             f"Measured {time.strftime('%Y-%m-%d')} with `{command or f'flowvq bench --device {device}'}`.", "",
             "| job | median time | speed |", "|---|---|---|"]
    for r in rows:
        speed = (f"{r['realtime_factor']:.1f}x real time" if "realtime_factor" in r
                 else f"{r['fps']:.1f} frames/s")
        lines.append(f"| {r['job']} | {r['median_s']:.3f} s ({r['runs']} runs) | {speed} |")
    staged = [r for r in rows if r.get("stages")]
    if staged:
        lines += ["", "Where the time goes (mean wall seconds per measured run, from the generator's progress "
                  "stages; \"sampling\" ends when the expression chain's last frame is out):", ""]
        lines += [f"- {r['job']}: " + ", ".join(f"{k} {v:.3f} s" for k, v in r["stages"].items()) for r in staged]
    for n in notes:
        lines.append(f"\nNot measured: {n}")
    lines.append(end)
    section = "\n".join(lines)
    text = path.read_text() if path.exists() else (
        "# Benchmarks\n\nSpeed of the backend's jobs, measured by `flowvq bench` (median of "
        "several runs after a warm-up). The Blender add-on's key writing is measured by "
        "`benchmarks/bench_apply_take.py`.\n")
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
