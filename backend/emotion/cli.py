"""`flowvq emotion learn CLIPS... -o FCG.pt` and `flowvq emotion show [FCG.pt]`."""
from __future__ import annotations


def register(sub) -> None:
    from .real import LEARNABLE

    a = sub.add_parser("emotion", help="learn emotions from real labelled faces (docs/emotion.md)")
    asub = a.add_subparsers(dest="emotion_command", metavar="ACTION")
    lrn = asub.add_parser("learn", help="labelled clips of real faces -> an FCG checkpoint with their emotions")
    lrn.add_argument("inputs", nargs="+", metavar="CLIP_OR_FOLDER",
                     help="videos of a face (sound not needed), or folders of them (PERSON/EMOTION/*.mp4 or "
                          "names holding the emotion, e.g. W009_front_happy_level3_001.mp4); every person "
                          "needs a neutral clip")
    lrn.add_argument("--label", action="append", metavar="EMOTION",
                     help=f"the emotion of each video, in order ({', '.join(LEARNABLE)}); default: from the names")
    lrn.add_argument("--person", help="all clips are this one person (default: from the folders)")
    lrn.add_argument("--base", metavar="FCG.pt", help="checkpoint to start from (default: the shipped one)")
    lrn.add_argument("--max-seconds", type=float, default=None, help="use only the first S seconds of each clip")
    lrn.add_argument("-o", "--output", required=True, metavar="FCG.pt", help="checkpoint to write "
                     "(use it with `flowvq generate --checkpoint` / `flowvq serve --checkpoint`)")
    lrn.add_argument("-q", "--quiet", action="store_true")
    lrn.set_defaults(func=_cmd_learn)
    show = asub.add_parser("show", help="print where a checkpoint's emotions come from")
    show.add_argument("checkpoint", nargs="?", help="FCG checkpoint (default: the shipped one)")
    show.set_defaults(func=_cmd_show)
    a.set_defaults(func=lambda args: (a.print_help(), 2)[1])


def _cmd_learn(args) -> int:
    from .learn import learn_emotions

    learn_emotions(args.inputs, args.output, labels=args.label, person=args.person, base=args.base,
                   max_seconds=args.max_seconds, progress=not args.quiet,
                   log=(lambda *_: None) if args.quiet else print)
    return 0


def _cmd_show(args) -> int:
    import numpy as np

    from ..fcg.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
    from .real import checkpoint_offsets

    _, meta, _ = load_checkpoint(args.checkpoint or DEFAULT_CHECKPOINT)
    off = checkpoint_offsets(meta)
    if off is None:
        print("emotions: as trained (the synthetic corpus's hand-written offsets)")
        return 0
    doc = meta["real_emotions"]
    print(f"emotions: real faces ({doc['method']})")
    for e, v in sorted(off.offsets.items()):
        print(f"  {e:10s} |offset| {np.linalg.norm(v):.3f}  persons: {', '.join(off.persons.get(e, []))}")
    for s in doc.get("sources", []):
        print(f"  source {s['name']} ({s['label']}, {s['person']}, {s['frames']} frames) sha256 {s['sha256'][:12]}")
    return 0
