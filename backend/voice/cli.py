"""`flowvq train voice VIDEO... -o MAP.npz` (voice/train.py)."""
from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser("voice", help="the default voice map from videos of real people speaking "
                                            "(how real mouths open with real voices; docs/fcg.md)")
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="videos with sound, one speaker each")
    p.add_argument("-o", "--output", required=True, help="the map to write (the shipped one: backend/assets/voice_default.npz)")
    p.add_argument("--max-seconds", type=float, default=None, help="use only the first S seconds of each video")
    p.add_argument("--cv", choices=("contiguous", "speaker"), default="contiguous",
                   help="how the ridge strength is chosen: contiguous folds over the pooled footage (the shipped "
                        "map), or one speaker left out at a time (docs/fcg.md, 'Voice map')")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from .train import train_voice

    train_voice(args.videos, args.output, args.max_seconds, log=(lambda *_: None) if args.quiet else print,
                by_speaker=args.cv == "speaker")
    return 0
