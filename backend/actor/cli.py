"""`flowvq actor learn VIDEO... -o ACTOR_DIR`, `show`, `bank` and `sync` (where new lines are read)."""
from __future__ import annotations

import json


def register(sub) -> None:
    a = sub.add_parser("actor", help="learn a person from minutes of their footage (docs/actor.md)")
    asub = a.add_subparsers(dest="actor_command", metavar="ACTION")
    lrn = asub.add_parser("learn", help="videos of one person speaking -> an actor profile folder")
    lrn.add_argument("videos", nargs="+", metavar="VIDEO",
                     help="videos with sound (or a .wav of the same name beside a silent video)")
    lrn.add_argument("-o", "--output", required=True, metavar="ACTOR_DIR", help="the profile folder to write")
    lrn.add_argument("--holdout", type=float, default=0.2,
                     help="share of the footage's tail held out for early stopping and the fit (default 0.2)")
    lrn.add_argument("--steps", type=int, default=200, help="most fine-tuning steps (default 200; under 25 s of footage "
                     "proportionally fewer; early stopping may end sooner)")
    lrn.add_argument("--lr", type=float, default=1e-4, help="fine-tuning learning rate (default 1e-4)")
    lrn.add_argument("--batch", type=int, default=64, help="frames per step (default 64)")
    lrn.add_argument("--max-seconds", type=float, default=None,
                     help="use only the first S seconds of each video (e.g. to keep a test tail unseen)")
    lrn.add_argument("--id", dest="actor_id", help="the profile's id (default: the folder's name)")
    lrn.add_argument("--keep-work", action="store_true", help="keep work/ (tracks, datasets) after success")
    lrn.add_argument("--no-mouth-bank", dest="mouth_bank", action="store_false",
                     help="leave out their lower face in every frame (bank/mouth.npz, ~12 kB per frame, what "
                          "`flowvq dub` takes the mouth from): a profile of a few MB to share; `flowvq actor bank` "
                          "adds it later")
    lrn.add_argument("-q", "--quiet", action="store_true")
    lrn.set_defaults(func=_cmd_learn)
    bank = asub.add_parser("bank", help="add a mouth bank (their own lower face, for `flowvq dub`) to a profile")
    bank.add_argument("actor_dir", metavar="ACTOR_DIR")
    bank.add_argument("videos", nargs="+", metavar="VIDEO", help="footage of the same person")
    bank.add_argument("--max-seconds", type=float, default=None, help="use only the first S seconds of each video")
    bank.set_defaults(func=_cmd_bank)
    show = asub.add_parser("show", help="what a profile learned, what it uses and how well it fits (loaded strictly)")
    show.add_argument("actor_dir")
    show.add_argument("--json", action="store_true", help="print the whole actor.json instead")
    show.set_defaults(func=_cmd_show)
    meas = asub.add_parser("measure", help="a profile against the default model on an unseen part of the person's "
                                           "footage: lip-sync r and head motion, as `flowvq eval` measures them")
    from .measure import add_arguments
    add_arguments(meas)
    meas.set_defaults(func=_cmd_measure)
    sync = asub.add_parser("sync", help="where a profile's takes read a new line's sound: its footage's sync, the "
                                        "standard timing, or milliseconds")
    sync.add_argument("actor_dir", metavar="ACTOR_DIR")
    sync.add_argument("sync", nargs="?", metavar="SYNC",
                      help="footage (their recordings' mean sync, as learned), standard (the shipped map's timing: "
                           "for dialogue in sync where the footage was not) or milliseconds the lips lead, e.g. +120; "
                           "without it: print the sync in use")
    sync.set_defaults(func=_cmd_sync)
    a.set_defaults(func=lambda args: (a.print_help(), 2)[1])


def _cmd_learn(args) -> int:
    from .learn import learn
    from .profile import ACTOR_ID
    from ..errors import BadRequest

    if args.actor_id is not None and not ACTOR_ID.fullmatch(args.actor_id):
        raise BadRequest(f"--id {args.actor_id!r}: letters, digits, '.', '_', '-', up to 64")
    learn(args.videos, args.output, holdout=args.holdout, steps=args.steps, lr=args.lr, batch=args.batch,
          max_seconds=args.max_seconds, actor_id=args.actor_id, progress=not args.quiet,
          keep_work=args.keep_work, log=(lambda *_: None) if args.quiet else print, mouth_bank=args.mouth_bank)
    return 0


def _cmd_bank(args) -> int:
    from .learn import add_mouth_bank
    from ..render.mouth_bank import MouthBank

    path = add_mouth_bank(args.actor_dir, args.videos, args.max_seconds)
    print(f"{path}: {len(MouthBank.load(path))} frames")
    return 0


def _cmd_show(args) -> int:
    from .profile import ActorProfile

    prof = ActorProfile.load(args.actor_dir)
    print(json.dumps(prof.doc, indent=1) if args.json else "\n".join([*summary(prof.doc), sizes(prof.path, prof.doc)]))
    return 0


def _cmd_measure(args) -> int:
    from .measure import run

    return run(args)


def _cmd_sync(args) -> int:
    from .profile import ActorProfile, set_new_line_sync

    if args.sync is not None:
        set_new_line_sync(args.actor_dir, args.sync)
    line = sync_line(ActorProfile.load(args.actor_dir).doc)
    print(line or "this profile uses no voice map: its takes keep the default model's timing")
    return 0


def sync_line(doc: dict) -> str | None:
    """Their recordings' sync and where a new line is read (None: the profile reads no sync)."""
    voice = doc.get("estimated", {}).get("voice_map") or {}
    sync, chosen = voice.get("sync_s"), voice.get("new_line") or {}
    if not sync:
        return None
    shift = chosen.get("shift_s", (voice.get("all") or {}).get("shift_s"))
    how = {"standard": " (standard timing)", "set": " (set by hand)"}.get(chosen.get("sync"), "")
    return ("sync, lips ahead of the sound (each recording read at its own): "
            + ", ".join(f"{f} {1000 * v:+.0f} ms" for f, v in sync.items())
            + (f"; a new line at {1000 * shift:+.0f} ms{how}" if shift is not None else ""))


def summary(doc: dict) -> list[str]:
    """actor.json -> a few lines: footage, what the held-out footage chose, the fit against the default."""
    from .profile import pose_scale_key

    est, fit = doc.get("estimated", {}), doc.get("fit", {})
    sel = est.get("selected") or {"candidate": "every correction (learned before the selection)"}
    selection = est.get("selection", {})
    vw = selection.get("voice_weight_r")
    how = "judged on the held-out tail" if selection.get("judged") else selection.get("note", "not judged")
    if vw:  # the two steps of the select stage are judged on different footage: say which
        how = "voice weight: out of fold on all the footage; model: " + (
            "the held-out tail" if selection.get("judged") else how)
    lines = [f"actor {doc['id']}: {doc.get('footage_seconds', '?')} s of footage from "
             + ", ".join(s["file"] for s in doc.get("sources", [])), f"uses: {sel['candidate']} ({how})"]
    if vw:
        lines.append("voice map weight, lip-sync r on all the footage (out of fold): "
                     + ", ".join(f"{k} {v}" for k, v in vw.items()))
    elif selection.get("voice_note"):
        lines.append(selection["voice_note"])
    sync = sync_line(doc)  # their recordings' sound vs picture: each read at its own, a new line at the mean
    if sync:
        lines.append(sync)
    if selection.get("lipsync_r"):
        lines.append("held-out lip-sync r per candidate: " + ", ".join(f"{k} {v}" for k, v in selection["lipsync_r"].items()))
    r, p = fit.get("lipsync_r", {}), fit.get("pose_std_ratio", {})
    if r:
        lines.append(f"held-out fit ({fit.get('holdout_seconds', '?')} s): lip-sync r {r.get('actor')} "
                     f"(default {r.get('default')}), head motion ratio {p.get('actor')} (default {p.get('default')})")
        w = f"{float(sel.get('voice_weight', 0.0)):g}"
        if vw and w != "0" and w in vw and "0" in vw and vw[w] > vw["0"] and (r.get("actor") or 0) < (r.get("default") or 0):
            lines.append(f"the held-out tail alone puts the profile under the default; its voice weight was chosen on "
                         f"all {doc.get('footage_seconds', '?')} s, out of fold ({w}: {vw[w]} vs 0: {vw['0']}), "
                         f"the larger judge (docs/actor.md, \"Voice map\")")
    elif fit.get("note"):
        lines.append(f"fit: {fit['note']}")
    scale = est.get(pose_scale_key(est, sel.get("model") == "default"), [None] * 3)[:3]  # the model it uses
    lines.append(f"head motion scale (pitch, yaw, roll): {scale}; "
                 f"learned in {doc.get('learn_seconds', '?')} s")
    return lines


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{max(1, round(n / 1024))} kB"


def sizes(path, doc: dict) -> str:
    """One line: what the profile's folder weighs and in what (work/ left out: it is not the profile)."""
    from pathlib import Path

    path = Path(path)
    files = doc.get("files", {})
    mouth = path / files["mouth_bank"] if "mouth_bank" in files else None
    owned = [p for p in path.rglob("*") if p.is_file() and "work" not in p.relative_to(path).parts]
    face = sum(p.stat().st_size for p in owned if p.parent == path / "bank" and p != mouth)
    parts = [f"model {_size((path / files['fcg']).stat().st_size)}", f"face bank {_size(face)}"]
    if mouth is not None and mouth.is_file():
        parts.append(f"mouth bank {_size(mouth.stat().st_size)} (for dubbing)")
    if "voice_map" in files and (path / files["voice_map"]).is_file():
        parts.append(f"voice map {_size((path / files['voice_map']).stat().st_size)}")
    line = f"size {_size(sum(p.stat().st_size for p in owned))}: " + ", ".join(parts)
    if mouth is None:
        line += "; no mouth bank: a dub takes the mouth from the shot itself (`flowvq actor bank` adds one)"
    return line
