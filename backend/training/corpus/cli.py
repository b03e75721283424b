"""`flowvq corpus build` (the starter training corpus) and `flowvq dataset build` (videos through the
tracker): both write the dataset format of docs/dataset.md. No torch/cv2 imports at module level."""
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
    build.add_argument("--festival", type=float, default=0.0,
                       help="share of utterances spoken by festival's voices of real speakers instead of "
                            "espeak-ng (0-1, default 0; needs festival, installed by make setup)")
    build.add_argument("--overwrite", action="store_true", help="replace a dataset already in the folder")
    build.set_defaults(func=run)

    dataset = subparsers.add_parser("dataset", help="training datasets from your own footage")
    dverbs = dataset.add_subparsers(dest="dataset_command", required=True)
    videos = dverbs.add_parser(
        "build", help="track the face in videos and write them as a training dataset",
        description="Each video's sound (or a .wav with the same name next to it) and the tracked "
                    "expression/pose become dataset items; frames without a face split a clip.")
    videos.add_argument("videos", nargs="+", help="video files")
    videos.add_argument("-o", "--output", required=True, help="dataset folder to create")
    videos.add_argument("--emotion", default="talking", help="emotion label for every clip (default talking)")
    videos.add_argument("--fps", type=float, default=25.0, help="dataset frame rate (default 25)")
    videos.add_argument("--min-seconds", type=float, default=2.0,
                        help="drop stretches with a face shorter than this (default 2)")
    videos.add_argument("--max-frames", type=int, default=None, help="track at most this many frames per video")
    videos.add_argument("--overwrite", action="store_true", help="replace a dataset already in the folder")
    videos.set_defaults(func=run_dataset)


def run(args: argparse.Namespace) -> int:
    from .build import CorpusConfig, build_corpus

    cfg = CorpusConfig(hours=args.hours, seed=args.seed, fps=args.fps, timing=args.timing,
                       festival=args.festival)
    summary = build_corpus(args.output, cfg, workers=args.workers, count=args.count,
                           overwrite=args.overwrite)
    print(f"{summary['items']} utterances, {summary['hours']:.3f} h of audio in "
          f"{summary['seconds']:.0f} s -> {summary['path']}")
    return 0


def run_dataset(args: argparse.Namespace) -> int:
    from ..dataset import build_from_videos

    s = build_from_videos(args.videos, args.output, emotion=args.emotion, fps=args.fps,
                          min_seconds=args.min_seconds, max_frames=args.max_frames,
                          overwrite=args.overwrite)
    print(f"{s['items']} items, {s['seconds']:.1f} s with a face from {s['videos']} video(s) "
          f"({s['dropped_seconds']:.1f} s without one dropped) -> {args.output}")
    return 0
