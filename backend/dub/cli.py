"""`flowvq dub VIDEO (--audio AUDIO | --take TAKE.npz) [--actor ACTOR_DIR] [--emotion ...] -o DIR
[--format png|png16|exr] [--mp4]` and `flowvq actor bank` (no torch/cv2/dlib import at load time)."""
from __future__ import annotations


def register(subparsers) -> None:
    from flowvq_shared.settings import GenerateSettings

    p = subparsers.add_parser("dub", help="dub a filmed shot: its mouth follows a new line, the rest stays as filmed")
    p.add_argument("video", metavar="VIDEO", help="the shot (mp4, mov, ...): one face, filmed")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--audio", help="the new line (WAV, FLAC, MP3, ...): the mouth is generated from it")
    src.add_argument("--take", help="a take (take_K.npz) or tracked curves (`flowvq track` .npz) for the mouth")
    p.add_argument("--actor", dest="actor_dir", metavar="ACTOR_DIR",
                   help="the actor's profile: their model for the mouth, their own frames for its inside")
    GenerateSettings.add_arguments(p, skip=("actor", "takes", "fps"))
    p.add_argument("--format", default="png", choices=("png", "png16", "exr"),
                   help="frame files: 8-bit PNG (default), 16-bit PNG, or half-float linear OpenEXR")
    p.add_argument("--mp4", action="store_true", help="also write dub.mp4 with the new sound")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from tqdm import tqdm

    from flowvq_shared.settings import GenerateSettings

    from ..errors import BadAudio, BadRequest, readable_file
    from .run import dub_shot

    readable_file(args.video, "video file", BadRequest)
    if args.audio is not None:
        readable_file(args.audio, "audio file", BadAudio)
    if args.actor_dir is not None:
        from ..actor.profile import ActorProfile

        ActorProfile.load(args.actor_dir)  # strict, before the shot is read
    settings = GenerateSettings.from_args(args)
    with tqdm(total=100, desc="dub", unit="%", disable=args.quiet, leave=False, delay=1.0) as bar:
        def progress(f: float, stage: str) -> None:
            bar.set_description(stage)
            bar.update(max(0, int(100 * f) - bar.n))

        m = dub_shot(args.video, args.output, audio=args.audio, take=args.take, actor=args.actor_dir,
                     settings=settings, fmt=args.format, mp4=args.mp4, progress=progress,
                     log=(lambda *_: None) if args.quiet else print)
    print(f"{args.output}: {m['frames']} frames ({m['width']} x {m['height']}, {m['fps']:.3f} fps, {args.format}), "
          f"{m['dubbed_frames']} dubbed, mouth from {m['bank']['from']}"
          + (f", {m['mp4']}" if m.get("mp4") else ""))
    return 0
