"""`flowvq train vqig`: VQIG's codebook and generator stages on face videos, or a person-specific
fine-tune on one clip (no torch import at load time)."""
from __future__ import annotations

from pathlib import Path

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


def register(subparsers) -> None:
    p = subparsers.add_parser("vqig", help="train VQIG (codebook + generator) on face videos, or fine-tune on one person")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--videos", nargs="+", help="face video files or folders of them (prepared through the tracker)")
    src.add_argument("--person", help="one clip of the target person: a person-specific model (fine-tunes with --init, else trains from scratch)")
    src.add_argument("--data", help="a prepared dataset (.npz written by an earlier run as OUT/data.npz)")
    p.add_argument("--start", type=float, default=0.0, help="--person: first second of the clip to use")
    p.add_argument("--end", type=float, default=None, help="--person: last second of the clip to use")
    p.add_argument("--init", default=None, help="a VQIG generator checkpoint to fine-tune (its codebook stays frozen)")
    p.add_argument("--codebook", default=None, help="a trained codebook checkpoint (skips the codebook stage)")
    p.add_argument("--size", type=int, default=None,
                   help="crop size in pixels (default 512, the paper's; 128 with --tiny, whose 4x encoder would "
                        "give a 512 px crop 128x128 tokens)")
    p.add_argument("--tiny", action="store_true", help="tiny model sizes (CPU smoke runs and tests)")
    p.add_argument("--codebook-steps", type=int, default=20000)
    p.add_argument("--steps", type=int, default=20000, help="generator-stage steps (half code level, half image level)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-4, help="learning rate (the paper's 2e-4)")
    p.add_argument("--disc-start", type=int, default=-1, help="adversarial loss from this step (default: a third in)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prepare-only", action="store_true",
                   help="only track and write OUT/data.npz (the tracker needs dlib; train elsewhere with --data)")
    p.add_argument("-o", "--output", required=True, help="output folder: codebook.pt, vqig.pt, data.npz, train_log.json")
    p.set_defaults(func=run)


def _videos(items) -> list[Path]:
    from ..errors import BadRequest

    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.suffix.lower() in VIDEO_SUFFIXES)
        elif p.is_file():
            out.append(p)
        else:
            raise BadRequest(f"not a video file or folder: {p}")
    if not out:
        raise BadRequest("no videos found")
    return out


def run(args) -> int:
    import json
    import time

    import torch

    from ..errors import BadRequest
    from ..vqig import (CodebookConfig, GeneratorConfig, load_codebook, load_generator, save_codebook,
                        save_generator)
    from .vqig import TrainSettings, train_codebook, train_generator
    from .vqig_data import PlateData
    from .vqig_prepare import prepare_clip, prepare_folder

    if args.steps < 0 or args.codebook_steps < 0 or args.batch < 1:
        raise BadRequest("--steps/--codebook-steps must be >= 0 and --batch >= 1")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BadRequest("--device cuda asked for, but torch sees no CUDA device")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    init = load_generator(args.init, with_discriminator=True) if args.init else None
    size = init[0].cfg.codebook.image_size if init else (args.size if args.size is not None else (128 if args.tiny else 512))
    if args.data:
        data = PlateData.load(args.data)
    elif args.person:
        data = prepare_clip(args.person, size, args.start, args.end)
    else:
        data = prepare_folder(_videos(args.videos), size)
    data.save(out / "data.npz")
    print(f"data: {len(data)} frames of {data.frames.shape[1]} px from {len(data.sources)} clip(s)")
    if args.prepare_only:
        return 0
    log: dict = {"frames": len(data), "device": device, "args": {k: v for k, v in vars(args).items() if k != "func"}}

    def printer(stage):
        return lambda step, row: print(f"{stage} {step}: " + " ".join(f"{k} {v:.4f}" for k, v in row.items()))

    def settings(steps):
        ds = steps // 3 if args.disc_start < 0 else args.disc_start
        return TrainSettings(steps=steps, batch=args.batch, lr=args.lr, disc_start=ds, seed=args.seed,
                             log_every=max(1, steps // 20))

    if init is None:
        if args.codebook:
            codebook = load_codebook(args.codebook)
        else:
            cfg = CodebookConfig.tiny(image_size=size) if args.tiny else CodebookConfig(image_size=size)
            images = _codebook_images(data)
            codebook, disc, hist = train_codebook(images, cfg, settings(args.codebook_steps), device,
                                                  log=printer("codebook"))
            save_codebook(out / "codebook.pt", codebook, disc, step=args.codebook_steps)
            log["codebook"] = {"first": hist[0] if hist else None, "last": hist[-1] if hist else None}
        gcfg = (GeneratorConfig.tiny(codebook=codebook.cfg) if args.tiny else GeneratorConfig(codebook=codebook.cfg))
        gen, gdisc, hist = train_generator(data, codebook, gcfg, settings(args.steps), device, log=printer("generator"))
    else:
        gen, gdisc, hist = train_generator(data, init=init, settings=settings(args.steps), device=device,
                                           log=printer("fine-tune"))
    note = f"person fine-tune on {args.person}" if args.person else ""
    save_generator(out / "vqig.pt", gen.cpu(), gdisc.cpu(), step=args.steps, note=note)
    log["generator"] = {"first": hist[0] if hist else None, "last": hist[-1] if hist else None}
    log["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "train_log.json").write_text(json.dumps(log, indent=2, default=str))
    print(f"wrote {out / 'vqig.pt'} ({log['seconds']} s)")
    return 0


def _codebook_images(data):
    import numpy as np

    return np.concatenate([data.frames, data.sources])
