"""`python -m flowvq.evaluate.emotion_measure`: how generated emotions read against real faces (issue #15).

Real reference: the project's tracker over the MEAD actor W009 (../shared/data/emotion_3dmm/). With
--heldout S the checkpoint under test is learned from the first S seconds of each of W009's clips
(`flowvq emotion learn --max-seconds S`) and every real reference is the clips' rest (frames the model
never saw); without it the reference is the whole clips (in-sample). Generated: per real speech clip
(first 8 s of the 3 talking_3dmm clips), 2 takes per emotion minus 2 neutral takes, same seeds.

- nearest real emotion (cosine to W009's emotion-minus-neutral offsets), 7 classes, and the strength
  ratio |generated offset| / |real offset| (band 0.5-2);
- a window classifier (logistic regression on 1 s window means, trained on W009's windows minus W009's
  neutral mean) on generated windows minus the generated neutral take's mean (speaker-normalised);
- lip-sync r per emotion on the same clips' whole audio (as `flowvq eval`; the mean of LIPSYNC_TAKES takes);
- a keyed line "sad:0,happy:T/2": the nearest real emotion of its first and last third, and its
  largest frame step within 0.5 s of the key against 1.5x the 99th percentile of steps elsewhere.
Each figure for the checkpoint under test and for --baseline (the model before)."""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from flowvq_shared.settings import GenerateSettings

SEEDS = (0, 1)
CLIP_S = 8.0
LIPSYNC_TAKES = 4  # one take's r moves with the seed by ~0.005: the mean of four per emotion and clip


def real_references(curves, split_s: float | None) -> tuple[dict, dict]:
    """-> (offset directions, windows per emotion minus neutral mean) from W009's tracked curves:
    the frames after split_s (held out), or every frame."""
    from .emotion import offset_directions

    part = {e: [(x[int(round(split_s * fps)):] if split_s else x, fps) for x, fps in items]
            for e, items in curves.items()}
    return offset_directions(part), part


def _window_classifier(part):
    from .emotion import EmotionClassifier, MEAD_EMOTIONS

    neutral = np.mean([x.mean(0) for x, _ in part["neutral"]], 0)
    classes = [e for e in MEAD_EMOTIONS if e in part and e != "neutral"]
    return EmotionClassifier(classes).fit({e: [(x - neutral, fps) for x, fps in part[e]] for e in classes})


def measure(gen, clips, directions, part, refs=None, log=print) -> dict:
    from .emotion import confusion, nearest_direction, strength_ratios, strength_summary
    from .run import emotion_lipsync

    classes = list(directions)
    clf = _window_classifier(part)
    true, pred, wtrue, wpred = [], [], [], []
    offsets = {e: [] for e in classes}
    t0 = time.time()
    for clip in clips:
        audio = clip.audio[: int(16000 * CLIP_S)]
        takes = {e: [t.expression for t in gen.generate(audio, GenerateSettings(emotion=e, takes=len(SEEDS),
                                                                                  seed=SEEDS[0], fps=25.0))]
                 for e in ["neutral", *classes]}
        neutral = np.mean([x.mean(0) for x in takes["neutral"]], 0)
        for e in classes:
            offsets[e].append(np.mean([x.mean(0) for x in takes[e]], 0) - neutral)
            true.append(e)
            pred.append(nearest_direction(offsets[e][-1], directions))
            for k, x in enumerate(takes[e]):
                wtrue.append(e)
                wpred.append(clf.predict_take(x - takes["neutral"][k].mean(0), 25.0))
        log(f"  offsets {clip.name}: {time.time() - t0:.0f} s")
    m = confusion(true, pred, classes)
    wm = confusion(wtrue, wpred, classes)
    ratios = strength_ratios(offsets, directions)
    rig = rig_ratios(offsets, directions)
    lips = emotion_lipsync(gen, clips, 0, ["neutral", *classes], log=lambda s: log("  " + s), takes=LIPSYNC_TAKES)
    return {"classes": classes, "confusion": m.tolist(), "accuracy": float(np.trace(m) / m.sum()),
            "window_confusion": wm.tolist(), "window_accuracy": float(np.trace(wm) / wm.sum()), "window_C": clf.C,
            "strength": {"ratios": ratios, **strength_summary(ratios)},
            "rig_strength": {"ratios": rig, **strength_summary(rig)} if rig else None,
            "lipsync": {e: {c: list(v) for c, v in per.items()} for e, per in lips["r"].items()},
            "lipsync_takes": LIPSYNC_TAKES,
            "keyed": keyed_check(gen, directions, log),
            "transfer": transfer_check(gen, directions, refs, log) if refs else None,
            "unseen": unseen_person_check(gen, directions, log)}


def unseen_person_check(gen, directions, log=print) -> dict | None:
    """A person never learned from: the two portraits of one woman, happy and sad (portraits/). Her
    happy-minus-sad (the tracker on each still) against the generated happy-minus-sad (same audio, seed);
    and what each portrait reads as when used as the emotion reference."""
    from ..audio import load_audio
    from .clips import default_data_root
    from ..images import load_image
    from ..tracker import track
    from .emotion import nearest_direction

    root = default_data_root()
    paths = {e: root / "portraits" / f"sadtalker_{e}.png" for e in ("happy", "sad")}
    if not all(p.is_file() for p in paths.values()):
        return None
    ref = {e: track(load_image(p).rgb).expression[0] for e, p in paths.items()}
    audio = load_audio(sorted((root / "speech").glob("*.wav"))[0]).samples[: int(16000 * CLIP_S)]
    kw = dict(takes=1, seed=5, fps=25.0)
    mean = {e: gen.generate(audio, GenerateSettings(emotion=e, **kw))[0].expression.mean(0)
            for e in ("happy", "sad", "neutral")}
    real, made = ref["happy"] - ref["sad"], mean["happy"] - mean["sad"]
    reads = {e: nearest_direction(gen.generate(audio, GenerateSettings(emotion="talking", **kw),
                                               reference_expression=ref[e])[0].expression.mean(0) - mean["neutral"],
                                  directions) for e in ref}
    cos = lambda a, b: float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))  # noqa: E731
    # the ceiling a W009-learned model can reach: W009's own real happy-minus-sad against hers
    w009 = directions["happy"] - directions["sad"] if {"happy", "sad"} <= set(directions) else None
    out = {"cos_happy_minus_sad": cos(real, made), "reference_reads": reads,
           "cos_w009_real": cos(real, w009) if w009 is not None else None}
    log(f"  unseen person: {out}")
    return out


def reference_faces(videos: dict, curves: dict, split_s: float | None) -> dict:
    """Per emotion, W009 as a reference: a short clip (mean of its tracked frames after split_s) and an
    image (its middle such frame, fitted as `flowvq generate --reference IMG` fits one)."""
    import cv2

    from ..tracker import track

    out = {}
    for e, path in videos.items():
        x, fps = curves[e][0]
        a = int(round((split_s or 0) * fps))
        cap = cv2.VideoCapture(str(path))
        cap.set(cv2.CAP_PROP_POS_FRAMES, (a + len(x)) // 2)
        ok, bgr = cap.read()
        cap.release()
        img = track(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).expression[0] if ok else None  # as --reference fits one
        out[e] = {"clip": x[a:].mean(0), "image": img}
    return out


def transfer_check(gen, directions, refs, log=print) -> dict:
    """Each W009 reference (clip, image) -> a take on real speech; its offset over the neutral take
    (same seed) -> the nearest real emotion."""
    from .clips import default_data_root
    from .emotion import nearest_direction
    from ..audio import load_audio

    wav = sorted((default_data_root() / "speech").glob("*.wav"))[0]
    audio = load_audio(wav).samples[: int(16000 * CLIP_S)]
    kw = dict(takes=1, seed=5, fps=25.0)
    neutral = gen.generate(audio, GenerateSettings(emotion="neutral", **kw))[0].expression.mean(0)
    res = {}
    for kind in ("clip", "image"):
        pred = {}
        for e in directions:
            ref = refs[e][kind]
            if ref is None:
                continue
            x = gen.generate(audio, GenerateSettings(emotion="talking", **kw), reference_expression=ref)[0].expression
            pred[e] = nearest_direction(x.mean(0) - neutral, directions)
        res[kind] = {"pred": pred, "accuracy": float(np.mean([p == e for e, p in pred.items()]))}
    log(f"  transfer: {res}")
    return res


def rig_ratios(offsets: dict, directions: dict) -> dict | None:
    """Strength on a real rig: RMS vertex motion of the generated offset on ICT-FaceKit over the real
    offset's (None when the rig is absent)."""
    from ..errors import BadRequest
    from ..facemodel.loaders import ict_face_model

    try:
        deltas = ict_face_model().deltas.reshape(64, -1)
    except BadRequest:
        return None
    rms = lambda o: float(np.sqrt(np.mean(np.square(np.asarray(o, np.float64) @ deltas))))  # noqa: E731
    return {e: [rms(o) / rms(directions[e]) for o in offs] for e, offs in offsets.items()}


def keyed_check(gen, directions, log=print) -> dict:
    """sad:0 -> happy at half the line, on real speech: what each end reads as, and the step at the key."""
    from ..audio import load_audio
    from .clips import default_data_root
    from .emotion import nearest_direction

    wav = sorted((default_data_root() / "speech").glob("*.wav"))[0]
    audio = load_audio(wav).samples
    half = len(audio) / 16000 / 2
    kw = dict(takes=2, seed=3, fps=25.0)
    keyed = gen.generate(audio, GenerateSettings(emotion_keys=f"sad:0,happy:{half:.2f}", **kw))
    neutral = gen.generate(audio, GenerateSettings(emotion="neutral", **kw))
    out = []
    for k, take in enumerate(keyed):
        x, n = take.expression, neutral[k].expression
        third = len(x) // 3
        first = nearest_direction(x[:third].mean(0) - n[:third].mean(0), directions)
        last = nearest_direction(x[-third:].mean(0) - n[-third:].mean(0), directions)
        steps = np.abs(np.diff(x, axis=0)).max(1)  # largest channel step between frames
        key = int(round(half * 25.0))
        near = np.zeros(len(steps), bool)
        near[max(0, key - 13):key + 13] = True
        p99 = float(np.percentile(steps[~near], 99))
        out.append({"first_third": first, "last_third": last, "max_step_near_key": float(steps[near].max()),
                    "p99_elsewhere": p99, "ratio": float(steps[near].max() / p99)})
    log(f"  keyed: {out}")
    return {"audio": wav.name, "key_s": round(half, 2), "takes": out,
            "differ": float(np.abs(keyed[0].expression - keyed[1].expression).mean())}


def _fmt(x, d=2):
    return "-" if x is None else f"{x:.{d}f}"


def markdown(res: dict, base: dict | None, cmd: str, note: str) -> str:
    from .emotion import confusion_markdown

    cls = res["classes"]
    acc = lambda m, i: m[i][i] / max(1, sum(m[i]))  # noqa: E731
    before = {c: acc(base["confusion"], i) for i, c in enumerate(cls)} if base else None
    wbefore = {c: acc(base["window_confusion"], i) for i, c in enumerate(cls)} if base else None
    lines = ["# Emotion from real faces (issue #15)", "",
             f"Command: `{cmd}`; {platform.machine()} CPU, 2 shared cores, {time.strftime('%Y-%m-%d')}. {note} Model: the "
             "checkpoint under test with the shipped voice map (backend/assets/voice_default.npz, part of phone "
             "guidance). Baseline: the checkpoint before (`--baseline`) as it shipped, without a voice map. This part supersedes the emotion tables of the FCG part, which "
             "were measured on the corpus-trained checkpoint.",
             "", "## Nearest real emotion (speaker-normalised offsets, 7 classes, neutral the reference)", "",
             f"Accuracy **{res['accuracy']:.2f}** (chance {1 / len(cls):.2f}), baseline "
             f"{_fmt(base['accuracy'] if base else None)}.", "",
             confusion_markdown(np.array(res["confusion"]), cls, before, "baseline"),
             "## Strength (|generated offset| / |real offset|, band 0.5-2)", "",
             "| emotion | ratio per clip | median | baseline median |", "|---|---|---|---|"]
    for e in cls:
        r = res["strength"]["ratios"][e]
        b = base["strength"]["per_emotion"].get(e) if base else None
        lines.append(f"| {e} | {' / '.join(f'{v:.2f}' for v in r)} | {np.median(r):.2f} | {_fmt(b)} |")
    lines += ["", f"Median over emotions **{res['strength']['median']:.2f}** (baseline "
              f"{_fmt(base['strength']['median'] if base else None)}); outside the band: "
              f"{', '.join(res['strength']['outside']) or 'none'}.", ""]
    rig, brig = res.get("rig_strength"), (base or {}).get("rig_strength")
    if rig:
        lines += ["On the ICT-FaceKit rig (RMS vertex motion of the generated offset over the real offset's, "
                  "median over clips): " + ", ".join(
                      f"{e} {v:.2f}" + (f" (baseline {brig['per_emotion'][e]:.2f})" if brig else "")
                      for e, v in rig["per_emotion"].items()) + f"; median **{rig['median']:.2f}**"
                  + (f" (baseline {brig['median']:.2f})" if brig else "") + ".", ""]
    lines += ["## Window classifier (speaker-normalised: W009's windows minus W009's neutral mean; generated "
              "windows minus the neutral take's mean)", "",
              f"Accuracy **{res['window_accuracy']:.2f}**, baseline {_fmt(base['window_accuracy'] if base else None)}. "
              f"Logistic regression, C {res.get('window_C', '?')} chosen by the log-loss on each W009 clip's second half "
              "fitted on its first, every emotion weighing the same (before 2026-12-02: C 1, under which W009's own "
              "happy windows read as fear).", "",
              confusion_markdown(np.array(res["window_confusion"]), cls, wbefore, "baseline"),
              "## Lip-sync r per emotion (generated mouth opening vs the real dlib inner-lip gap, best lag +-2)", ""]
    clips = list(res["lipsync"]["neutral"])
    lines += [f"Each clip: model (baseline); the mean of takes 1-{res.get('lipsync_takes', 1)} (seed 0).", "",
              "| emotion | " + " | ".join(clips) + " | min | baseline min |", "|---" * (len(clips) + 3) + "|"]
    for e, per in res["lipsync"].items():
        rs = [per[c][0] for c in clips]
        bs = [base["lipsync"][e][c][0] for c in clips] if base and e in base["lipsync"] else None
        cells = [f"{v:.3f}" + (f" ({bs[i]:.3f})" if bs else "") for i, v in enumerate(rs)]
        lines.append(f"| {e} | " + " | ".join(cells) + f" | {min(rs):.3f} | {_fmt(min(bs) if bs else None, 3)} |")
    k = res["keyed"]
    lines += ["", f"## Keyed sad:0 -> happy:{k['key_s']} s ({k['audio']}, 2 takes, seed 3)", "",
              "| take | first third reads | last third reads | max step near the key / p99 elsewhere | baseline |",
              "|---|---|---|---|---|"]
    for i, t in enumerate(k["takes"]):
        bt = base["keyed"]["takes"][i] if base else None
        lines.append(f"| {i + 1} | {t['first_third']} | {t['last_third']} | {t['ratio']:.2f} | "
                     + (f"{bt['first_third']} / {bt['last_third']} / {bt['ratio']:.2f}" if bt else "-") + " |")
    lines += ["", f"Takes differ: mean |take 1 - take 2| {k['differ']:.3f}.", ""]
    tr, btr = res.get("transfer"), (base or {}).get("transfer")
    if tr:
        lines += ["## Emotion transfer from W009 as the reference (nearest real emotion of the take's offset over "
                  "a neutral take, same seed)", "",
                  "| reference | " + " | ".join(tr["clip"]["pred"]) + " | accuracy | baseline |",
                  "|---" * (len(tr["clip"]["pred"]) + 3) + "|"]
        for kind in ("clip", "image"):
            b = _fmt(btr[kind]["accuracy"]) if btr else "-"
            lines.append(f"| {kind} | " + " | ".join(tr[kind]["pred"].get(e, "-") for e in tr["clip"]["pred"])
                         + f" | {tr[kind]['accuracy']:.2f} | {b} |")
        lines.append("")
    un, bun = res.get("unseen"), (base or {}).get("unseen")
    if un:
        lines += ["## A person never learned from (portraits/sadtalker_happy.png and _sad.png, one woman)", "",
                  "| measure | model | baseline |", "|---|---|---|",
                  f"| cosine of her happy-minus-sad with the generated happy-minus-sad | "
                  f"{un['cos_happy_minus_sad']:.2f} | {_fmt(bun['cos_happy_minus_sad']) if bun else '-'} |",
                  *([f"| the same for W009's real happy-minus-sad (tracked; what a model learned from W009 can reach) | "
                     f"{un['cos_w009_real']:.2f} | - |"] if un.get("cos_w009_real") is not None else []),
                  f"| her happy portrait as the reference reads as | {un['reference_reads']['happy']} | "
                  f"{bun['reference_reads']['happy'] if bun else '-'} |",
                  f"| her sad portrait as the reference reads as | {un['reference_reads']['sad']} | "
                  f"{bun['reference_reads']['sad'] if bun else '-'} |", ""]
    return "\n".join(lines)


def lipsync_only(gen_for, clips, seeds, takes: int, log=print) -> dict:
    """Lip-sync r per emotion and clip, the mean over `takes` takes from each seed in `seeds`, for each
    model gen_for yields as (name, generator): a tighter check of "no emotion costs the sync" than the
    full run's 4 takes (one take's r moves ~0.005 with the seed)."""
    from flowvq_shared.channels import EMOTIONS

    from .run import emotion_lipsync

    emos = [e for e in EMOTIONS if e != "talking"]
    out = {}
    for name, gen in gen_for:
        runs = [emotion_lipsync(gen, clips, s, emos, log=lambda m, n=name: log(f"  {n} {m}"), takes=takes) for s in seeds]
        out[name] = {e: {c.name: float(np.mean([r["r"][e][c.name][0] for r in runs])) for c in clips}
                     for e in runs[0]["r"]}
    return out


def lipsync_markdown(res: dict, seeds, takes: int, cmd: str) -> str:
    model, base = res["model"], res.get("baseline")
    clips = list(next(iter(model.values())))
    lines = ["# Lip-sync per emotion, more takes (issue #15: an emotion must not cost the sync)", "",
             f"Command: `{cmd}`; {platform.machine()} CPU, 2 shared cores, {time.strftime('%Y-%m-%d')}. Each cell: "
             f"the mean r of {len(seeds) * takes} takes ({takes} from each of seeds {', '.join(map(str, seeds))}; "
             "generated mouth opening vs the real dlib inner-lip gap, best lag +-2), model (baseline). Model: the "
             "checkpoint under test with the shipped voice map; baseline: the checkpoint before, as it shipped.", "",
             "| emotion | " + " | ".join(clips) + " | model - baseline, worst clip |", "|---" * (len(clips) + 2) + "|"]
    worst = []
    for e, per in model.items():
        cells = [f"{per[c]:.4f}" + (f" ({base[e][c]:.4f})" if base else "") for c in clips]
        d = min(per[c] - base[e][c] for c in clips) if base else None
        if d is not None:
            worst.append((d, e))
        lines.append(f"| {e} | " + " | ".join(cells) + f" | {_fmt(d, 4)} |")
    if worst:
        d, e = min(worst)
        lines += ["", f"Lowest difference: {e}, {d:+.4f}" + (" (every cell at or above the baseline)." if d >= 0 else
                  " (a cell under the baseline).")]
    return "\n".join(lines + [""])


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main(argv=None) -> int:
    from .clips import default_data_root, find_clips, load_emotion_videos
    from .emotion import tracked_emotion_curves
    from ..generate import load_generator
    from ..emotion.learn import learn_emotions

    p = argparse.ArgumentParser(prog="python -m flowvq.evaluate.emotion_measure", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", help="checkpoint under test (default: the shipped one; with --heldout: "
                   "learned here from the first S seconds)")
    p.add_argument("--baseline", help="the checkpoint before (e.g. the synthetic-emotion one)")
    p.add_argument("--heldout", type=float, metavar="S", help="learn from W009's first S seconds, test on the rest")
    p.add_argument("--write", help="markdown file to write")
    p.add_argument("--json", help="raw results to write")
    p.add_argument("--from-json", metavar="JSON", help="write --write's markdown from a --json of an earlier run "
                   "(no measuring; the command line is kept from that run's --command-of)")
    p.add_argument("--command-of", default="", help="with --from-json: the command that measured it")
    p.add_argument("--lipsync-only", action="store_true", help="only the lip-sync per emotion, over --takes "
                   "takes from each of --seeds (no W009 references, no learning)")
    p.add_argument("--takes", type=int, default=8, help="with --lipsync-only: takes per seed (default 8)")
    p.add_argument("--seeds", default="0,100", help="with --lipsync-only: comma-separated seeds (default 0,100)")
    a = p.parse_args(argv)
    cmd = "python -m flowvq.evaluate.emotion_measure " + " ".join(argv if argv is not None else __import__("sys").argv[1:])
    if a.lipsync_only:
        try:
            seeds = [int(s) for s in a.seeds.split(",")]
        except ValueError:
            print(f"error: --seeds must be comma-separated integers, got {a.seeds!r}")
            return 2
        if a.takes < 1 or not seeds:
            print("error: --takes must be at least 1 and --seeds name one seed or more")
            return 2
        clips = [c for c in find_clips(default_data_root()) if c.kind == "talking_3dmm"][:3]
        if not clips:
            print("error: ../shared/data/talking_3dmm/ not found")
            return 2

        def gens():
            for name, path in (("model", a.checkpoint), ("baseline", a.baseline)):
                if name == "baseline" and not path:
                    continue
                gen = load_generator(path, device="cpu", voice=name == "model")  # the baseline as it shipped
                try:
                    yield name, gen
                finally:
                    gen.close()

        out = lipsync_only(gens(), clips, seeds, a.takes)
        if a.json:
            _write(Path(a.json), json.dumps(out, indent=1))
        text = lipsync_markdown(out, seeds, a.takes, cmd)
        _write(Path(a.write), text) if a.write else print(text)
        return 0
    if a.from_json:
        out = json.loads(Path(a.from_json).read_text())
        note = (f"Held out: learned from W009's first {a.heldout:g} s per clip, references from the rest."
                if a.heldout else "In-sample: references are W009's whole clips, the model learned from them too.")
        _write(Path(a.write), markdown(out["model"], out.get("baseline"), a.command_of, note))
        return 0
    root = default_data_root()
    videos = load_emotion_videos(root)
    if not videos:
        print("error: ../shared/data/emotion_3dmm/ not found")
        return 2
    curves = tracked_emotion_curves(videos)
    ckpt = a.checkpoint
    if a.heldout:
        ckpt = "/tmp/flowvq_emotion_heldout.pt"
        learn_emotions([str(v) for v in videos.values()], ckpt, person="W009", base=a.baseline or a.checkpoint,
                       max_seconds=a.heldout, progress=False)
    directions, part = real_references(curves, a.heldout)
    refs = reference_faces(videos, curves, a.heldout)
    clips = [c for c in find_clips(root) if c.kind == "talking_3dmm"][:3]
    out = {}
    for name, path in (("model", ckpt), ("baseline", a.baseline)):
        if name == "baseline" and not path:
            continue
        print(f"{name}: {path or 'shipped'}")
        gen = load_generator(path, device="cpu", voice=name == "model")  # the baseline as it shipped: no voice map
        try:
            out[name] = measure(gen, clips, directions, part, refs)
        finally:
            gen.close()
        print(f"{name}: nearest {out[name]['accuracy']:.2f}, window {out[name]['window_accuracy']:.2f}, "
              f"strength median {out[name]['strength']['median']:.2f}")
    if a.json:
        _write(Path(a.json), json.dumps(out, indent=1, default=float))
    if a.write:
        note = (f"Held out: learned from W009's first {a.heldout:g} s per clip, references from the rest."
                if a.heldout else "In-sample: references are W009's whole clips, the model learned from them too.")
        _write(Path(a.write), markdown(out["model"], out.get("baseline"), cmd, note))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
