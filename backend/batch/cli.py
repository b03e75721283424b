"""`flowvq batch MANIFEST -o OUT [--address ADDR] [--cpus-per-line N]`: a film's dialogue in one
run, on a local Ray (loopback) or an existing Ray cluster (docs/scale.md). Ray is imported only
when a batch runs, so `flowvq --help` stays fast."""
from __future__ import annotations

import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "batch", help="run a manifest of lines (audio + settings) on Ray: OUT/<id>/take_K.npz ...",
        description="One line per job (CSV or JSON lines): id, audio, emotion, intensity, takes, "
                    "seed, actor, portrait, video (and any generate setting). Finished lines "
                    "(OUT/<id>/done.json) are skipped on a re-run; OUT/batch.json says what happened.")
    p.add_argument("manifest", help="manifest file (.csv, or .jsonl / .ndjson)")
    p.add_argument("-o", "--output", required=True, help="output folder: OUT/<id>/ per line, OUT/batch.json")
    p.add_argument("--address", default=None,
                   help="Ray cluster to use (head's HOST:PORT, or 'auto'); default: a local Ray on "
                        "127.0.0.2 started for this batch with this machine's cores")
    p.add_argument("--cpus-per-line", type=float, default=1.0,
                   help="CPUs each worker holds (and torch threads it uses); default 1")
    p.add_argument("--line-timeout", type=float, default=7200.0,
                   help="seconds one line may take before its worker is stopped (default 7200)")
    p.add_argument("--max-workers", type=int, default=None, help="at most this many workers")
    p.add_argument("--checkpoint", help="FCG checkpoint (default: the shipped one); same path on every node")
    p.add_argument("--device", help="cpu or cuda")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import BadRequest
    from .run import run_batch

    if args.max_workers is not None and args.max_workers < 1:
        raise BadRequest("--max-workers must be 1 or more")
    if args.line_timeout is not None and not args.line_timeout > 0:
        raise BadRequest("--line-timeout must be more than 0")
    batch = run_batch(args.manifest, args.output, address=args.address,
                      cpus_per_line=args.cpus_per_line, checkpoint=args.checkpoint,
                      device=args.device, line_timeout=args.line_timeout, quiet=args.quiet,
                      max_workers=args.max_workers)
    s = batch["summary"]
    for rec in batch["lines"]:
        if rec["status"] == "failed":
            print(f"failed: {rec['id']} (line {rec['line']}): {rec['error']}", file=sys.stderr)
    nodes = ", ".join(batch["nodes"]) or "-"
    print(f"batch: {s['done']} done, {s['failed']} failed, {s['skipped']} skipped in "
          f"{batch['seconds']:.1f} s on {batch['workers']} worker(s), nodes {nodes} -> "
          f"{batch['out']}/batch.json")
    return 1 if s["failed"] else 0
