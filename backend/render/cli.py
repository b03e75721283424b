"""`flowvq render --portrait IMG --take take_1.npz [--audio WAV] [--format png|png16|exr] [--mp4]
[--refine [CKPT]] [--resume] -o DIR` (no torch/cv2/dlib import at load time)."""
from __future__ import annotations

from pathlib import Path

DEFAULT_VQIG_CHECKPOINT = Path(__file__).resolve().parents[1] / "assets" / "vqig_default.pt"


def register(subparsers) -> None:
    p = subparsers.add_parser("render", help="render a take's plates (HD face frames) from a portrait")
    p.add_argument("--portrait", required=True, help="portrait photo (PNG, JPEG, ...)")
    p.add_argument("--take", required=True, help="take file (take_K.npz from `flowvq generate`)")
    p.add_argument("--audio", default=None, help="audio muxed into the mp4 (with --mp4)")
    p.add_argument("--format", default="png", choices=("png", "png16", "exr"),
                   help="frame files: 8-bit PNG (default), 16-bit PNG, or half-float linear OpenEXR")
    p.add_argument("--mp4", action="store_true", help="also write plates.mp4 (H.264, with --audio muxed)")
    p.add_argument("--refine", nargs="?", const=str(DEFAULT_VQIG_CHECKPOINT), default=None, metavar="CKPT",
                   help="refine with a VQIG checkpoint (default: the shipped one, when present)")
    p.add_argument("--fidelity", type=float, default=0.5, help="VQIG fidelity weight w in [0, 1] (default 0.5)")
    p.add_argument("--resume", action="store_true", help="keep complete frames already in DIR")
    p.add_argument("--actor", dest="actor_dir", metavar="ACTOR_DIR", default=None,
                   help="an actor profile with a mouth bank: the mouth's inside from their own frames")
    p.add_argument("--model", default="default", help="face model: default, ict, or a path")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cpu for the warp, cuda for VQIG when present)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.set_defaults(func=run)


def run(args) -> int:
    from tqdm import tqdm

    from ..errors import BadRequest
    from ..images import load_image
    from .plates import write_plates

    if not 0.0 <= args.fidelity <= 1.0:  # NaN fails too
        raise BadRequest("--fidelity must be between 0 and 1")
    take = _load_take(args.take)
    mouth_bank = None
    if args.actor_dir is not None:  # refused before the portrait is fitted
        from .mouth_bank import MouthBank

        actor = Path(args.actor_dir)
        if not (actor / "actor.json").is_file():
            raise BadRequest(f"{actor} is not an actor profile (no actor.json; `flowvq actor learn` makes one)")
        if not (actor / "bank" / "mouth.npz").is_file():
            raise BadRequest(f"{actor} has no mouth bank (bank/mouth.npz): `flowvq actor bank {actor} FOOTAGE` adds one")
        mouth_bank = MouthBank.load(actor / "bank" / "mouth.npz")
    image = load_image(args.portrait)
    if args.audio is not None:  # refused here, not after every frame is rendered
        from ..errors import BadAudio, readable_file

        readable_file(args.audio, "audio file", BadAudio)
    for note in image.notes:
        print(f"note: {note}")
    if args.refine is not None and not Path(args.refine).is_file():
        print(f"note: no VQIG checkpoint at {args.refine}: rendering the geometry path only")
    # delay: a portrait refused before the first frame leaves one error line, not a bar + line
    with tqdm(total=take.n_frames, desc="plates", unit="frame", leave=False, delay=1.0) as bar:
        def progress(i: int, n: int) -> None:
            bar.update(i - bar.n)

        manifest = write_plates(args.take, image.rgb, args.output, fmt=args.format, mp4=args.mp4,
                                audio_path=args.audio, resume=args.resume, refine=args.refine,
                                progress=progress, model=args.model, device=args.device,
                                fidelity=args.fidelity, mouth_bank=mouth_bank)
    print(f"{args.output}: {manifest['frames']} frames ({manifest['width']} x {manifest['height']}, "
          f"{args.format}) in {manifest['seconds']:.1f} s" + (f", {manifest['mp4']}" if manifest.get("mp4") else ""))
    return 0


def _load_take(path):
    """Take.load, with a truncated or non-zip file refused in one line like any other."""
    import zipfile

    from flowvq_shared.takes import Take

    from ..errors import BadRequest, readable_file

    path = readable_file(path, "take file", BadRequest)
    if not zipfile.is_zipfile(path):
        raise BadRequest(f"not a FlowVQ take file: {path} (truncated, or not a take_K.npz)")
    try:
        return Take.load(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as e:
        raise BadRequest(f"not a FlowVQ take file: {path} ({e})") from None
