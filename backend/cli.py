"""`flowvq`: the backend's command line. Every operation works without a server.

Subcommands owned by other modules are wired in through their `register(subparsers)`; a module
that is not built yet leaves its command out of `--help` rather than failing the whole CLI.
Bad input ends in one line, `error: <message>`, and exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from flowvq_shared.protocol import ProtocolError
from flowvq_shared.settings import GenerateSettings

from . import __version__
from .errors import FlowVQError

# (module, what it registers) for commands that live beside their models
PLUGIN_MODULES = (
    "flowvq.facemodel.cli",   # face-model export
    "flowvq.tracker.cli",     # track
    "flowvq.render.cli",      # render
    "flowvq.training.corpus.cli",  # corpus build, dataset build
    "flowvq.evaluate.cli",    # eval
    "flowvq.bench",           # bench
    "flowvq.batch.cli",       # batch (Ray)
    "flowvq.convert",         # convert: take_K.npz <-> Live Link Face CSV
    "flowvq.actor.cli",       # actor learn / show
    "flowvq.dub.cli",         # dub
    "flowvq.emotion.cli",     # emotion learn / show
)
TRAIN_MODULES = ("flowvq.training.fcg_cli", "flowvq.training.vqig_cli",  # `train fcg`, `train vqig`
                 "flowvq.voice.cli")  # `train voice`


def _cmd_serve(args) -> int:
    from .server import ServerConfig, new_token, run

    if args.actors and not Path(args.actors).is_dir():
        raise FlowVQError(f"--actors {args.actors}: not a folder (give the folder that holds the actor profiles)")
    token = args.token
    host = args.host
    if args.lan:
        host = args.host if args.host != "127.0.0.1" else "0.0.0.0"
        if not token:
            token = new_token()
            print(f"LAN mode: clients must send this token (shown once): {token}", flush=True)
    elif host not in ("127.0.0.1", "localhost", "::1"):
        raise FlowVQError(f"binding {host} serves other machines: pass --lan (with a token)")
    cfg = ServerConfig(host=host, port=args.port, lan=args.lan, token=token,
                       max_frame=args.max_frame_mb * 1024 * 1024, zeroconf=not args.no_zeroconf,
                       fcg_checkpoint=args.checkpoint, device=args.device, warm=not args.no_warm,
                       ray_address=args.ray, ray_workers=args.ray_workers, actors_dir=args.actors)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    run(cfg)
    return 0


def _cmd_generate(args) -> int:
    from tqdm import tqdm

    from . import jobs
    from .audio import load_audio

    out = Path(args.output)
    settings = GenerateSettings.from_args(args)
    audio = load_audio(args.audio)
    reference = _reference(args.reference) if args.reference else None
    models = jobs.Models(args.checkpoint, args.device)
    with tqdm(total=100, desc="generate", unit="%", disable=args.quiet, leave=False) as bar:
        def progress(f: float, stage: str) -> None:
            bar.set_postfix_str(stage, refresh=False)
            bar.update(round(100 * f) - bar.n)

        takes = jobs.generate(models, audio, settings, reference, progress, actor=args.actor_dir)
    models.close()
    for take in takes:
        path = take.save(out)
        if not args.quiet:
            guided = (f"phone guidance {take.guidance_applied:g}" if not take.guidance_note
                      else f"no phone guidance: {take.guidance_note}")
            print(f"{path} ({take.n_frames} frames at {take.fps:g} fps, seed {take.seed}, "
                  f"take {take.index}, {guided})")
    return 0


REFERENCE_CLIP_S = 5.0  # a reference clip's emotion is its frames' mean: a few seconds say it


def _reference(path: str):
    """--reference: an image -> (H, W, 3); a video -> its first seconds' frames (T, H, W, 3)."""
    import numpy as np

    from .images import load_image
    from .tracker.frames import VIDEO_SUFFIXES, read_video

    if Path(path).suffix.lower() not in VIDEO_SUFFIXES:
        return load_image(path).rgb
    if not Path(path).is_file():
        raise FlowVQError(f"--reference {path}: no such file")
    frames, fps = read_video(Path(path), int(REFERENCE_CLIP_S * 60))  # 60 fps at most before the trim
    frames = frames[: max(1, int(REFERENCE_CLIP_S * (fps or 25.0)))]
    if not len(frames):
        raise FlowVQError(f"--reference {path}: no frames in this video")
    return np.stack(frames)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowvq", description="Audio-driven emotional facial animation (FlowVQTalker).")
    parser.add_argument("--version", action="version", version=f"flowvq {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("serve", help="run the backend server for the Blender add-on")
    s.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=47650, help="TCP port; 0 picks a free one")
    s.add_argument("--lan", action="store_true", help="serve other machines (requires a token)")
    s.add_argument("--token", help="shared secret clients must send (LAN mode)")
    s.add_argument("--max-frame-mb", type=int, default=64, help="largest frame accepted (MiB)")
    s.add_argument("--no-zeroconf", action="store_true", help="do not announce over zeroconf")
    s.add_argument("--checkpoint", help="FCG checkpoint (default: the shipped one)")
    s.add_argument("--device", help="cpu or cuda (default: cuda when present)")
    s.add_argument("--no-warm", action="store_true",
                   help="do not load the FCG in the background at start (the first generate does)")
    s.add_argument("-v", "--verbose", action="store_true")
    s.add_argument("--ray", metavar="ADDR", help="send generate requests to a pool of Ray actors on the "
                   "cluster at ADDR (host:port of its head); see docs/scale.md")
    s.add_argument("--ray-workers", type=int, default=0, metavar="N",
                   help="actors in that pool (default: one per CPU slot of the cluster)")
    s.add_argument("--actors", metavar="DIR", help="offer the actor profiles in DIR (one folder each, made "
                   "by `flowvq actor learn`); clients name them by id, never by path")
    s.set_defaults(func=_cmd_serve)

    g = sub.add_parser("generate", help="audio + emotion -> takes (curve files)")
    g.add_argument("audio", help="speech recording (wav, flac, ogg, mp3, or a video with audio)")
    GenerateSettings.add_arguments(g, skip=("actor",))
    g.add_argument("--actor", dest="actor_dir", metavar="ACTOR_DIR",
                   help="an actor profile folder (`flowvq actor learn`): their model, lead, mouth range, head motion")
    g.add_argument("--reference", help="image, or short video (its first 5 s), of a face whose emotion to transfer")
    g.add_argument("--checkpoint", help="FCG checkpoint (default: the shipped one)")
    g.add_argument("--device", help="cpu or cuda")
    g.add_argument("-o", "--output", required=True, help="output folder for take_K.npz/.csv")
    g.add_argument("-q", "--quiet", action="store_true")
    g.set_defaults(func=_cmd_generate)

    for name in PLUGIN_MODULES:
        _register(name, sub)
    train = sub.add_parser("train", help="train a model (fcg, vqig, voice)")
    train_sub = train.add_subparsers(dest="model", metavar="MODEL")
    for name in TRAIN_MODULES:
        _register(name, train_sub)
    train.set_defaults(func=lambda a: (train.print_help(), 2)[1])
    return parser


def _register(module: str, sub) -> None:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return  # not built yet: the command is absent, and `hello` says so
    mod.register(sub)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (FlowVQError, ProtocolError) as e:  # ProtocolError: a setting or file the shared contract refused
        print(f"error: {e.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
