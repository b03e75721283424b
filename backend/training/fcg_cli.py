"""`flowvq train fcg`: train ExpFlow + PoseFlow on a dataset folder (no torch import at load time)."""
from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser("fcg", help="train the flow generator (ExpFlow + PoseFlow) on a dataset folder")
    p.add_argument("--data", required=True, help="dataset folder (dataset.json + audio/ + coeffs/)")
    p.add_argument("-o", "--output", required=True, help="checkpoint to write (and to resume from)")
    p.add_argument("--steps", type=int, default=3000, help="total optimiser steps (default 3000)")
    p.add_argument("--batch", type=int, default=256, help="frames per batch (default 256)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3, cosine decay)")
    p.add_argument("--resume", action="store_true", help="continue from --output's training state")
    p.add_argument("--init", default=None, help="start from this checkpoint's weights (fine-tune; new optimiser)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--every", type=int, default=250, help="checkpoint every N steps")
    p.add_argument("--freq-warp", type=float, default=0.0,
                   help="augmentation: warp the mel axis by a random factor in 1 +- this (e.g. 0.12)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: small ops stall when threads outnumber free cores)")
    p.add_argument("--export", default=None,
                   help="also write a small float16 copy without training state here (the shipped default)")
    p.add_argument("--sampling-scale", type=float, default=None,
                   help="with --export: the prior scale temperature 1 means in the exported copy")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from ..errors import BadRequest
    from .fcg import TrainConfig, export_default, train

    if args.steps < 1 or args.batch < 2:
        raise BadRequest("--steps must be >= 1 and --batch >= 2")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BadRequest("--device cuda asked for, but torch sees no CUDA device")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    tc = TrainConfig(steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed, checkpoint_every=args.every,
                     freq_warp=args.freq_warp)
    meta = train(args.data, args.output, tc, resume=args.resume, device=device, init=args.init)
    print(f"wrote {args.output} ({meta.get('steps')} steps, {meta.get('train_seconds')} s)")
    if args.export:
        print(f"wrote {export_default(args.output, args.export, args.sampling_scale)}")
    return 0
