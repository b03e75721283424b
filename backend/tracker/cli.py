"""`flowvq track IMAGE_OR_VIDEO [--model ...] -o OUT.npz` (no heavy imports at top)."""
from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser("track", help="track a face in an image or video -> expression/pose npz")
    p.add_argument("source", help="image or video file")
    p.add_argument("--model", default="default", help="default, ict, or a path (.npz export / BFM .mat)")
    p.add_argument("-o", "--out", required=True, help="output .npz")
    p.set_defaults(func=run)


def check_source(source: str) -> None:
    """Refuse, in one line, what the tracker cannot read: before anything is decoded."""
    import os
    from pathlib import Path

    from flowvq.images import check_image_file
    from flowvq.tracker.frames import VIDEO_SUFFIXES
    from flowvq.video import probe_video

    if Path(source).suffix.lower() in VIDEO_SUFFIXES:
        probe_video(source)
        # a damaged stream past the header: opencv's ffmpeg would print warnings per frame
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    else:
        check_image_file(source)


def run(args) -> int:
    from flowvq.tracker import track

    check_source(args.source)
    r = track(args.source, model=args.model)
    r.save(args.out)
    for note in r.notes:
        print(f"note: {note}")
    print(f"wrote {args.out}: {len(r.expression)} frames, face in {int(r.face_found.sum())}")
    return 0
