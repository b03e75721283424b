"""`flowvq corpus build`: the starter training corpus (no torch/cv2 imports at module level)."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    corpus = subparsers.add_parser("corpus", help="the synthetic starter training corpus")
    verbs = corpus.add_subparsers(dest="corpus_command", required=True)
    build = verbs.add_parser(
        "build", help="speak CMU-dictionary sentences with espeak-ng and write expression/pose curves",
        description="Build the starter corpus as a FlowVQ dataset (docs/corpus.md, docs/dataset.md). "
                    "Deterministic from --seed whatever --workers is.")
    build.add_argument("-o", "--output", required=True, help="dataset folder to create")
    build.add_argument("--hours", type=float, default=1.0, help="hours of audio (default 1)")
    build.add_argument("--count", type=int, default=None, help="exactly this many utterances instead of --hours")
    build.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    build.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    build.add_argument("--fps", type=float, default=25.0, help="curve frame rate (default 25)")
    build.add_argument("--timing", choices=("espeak", "pocketsphinx"), default="espeak",
                       help="phone timings: espeak-ng's phoneme events (default) or pocketsphinx forced alignment")
    build.add_argument("--overwrite", action="store_true", help="replace a dataset already in the folder")
    build.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .build import CorpusConfig, build_corpus

    cfg = CorpusConfig(hours=args.hours, seed=args.seed, fps=args.fps, timing=args.timing)
    summary = build_corpus(args.output, cfg, workers=args.workers, count=args.count,
                           overwrite=args.overwrite)
    print(f"{summary['items']} utterances, {summary['hours']:.3f} h of audio in "
          f"{summary['seconds']:.0f} s -> {summary['path']}")
    return 0
