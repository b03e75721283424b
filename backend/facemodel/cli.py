"""`flowvq face-model export [--model default|ict|PATH] --format npz|glb|obj OUT` (no heavy imports at top)."""
from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser("face-model", help="face model tools")
    sub = p.add_subparsers(dest="face_model_command", required=True)
    e = sub.add_parser("export", help="export a face model with its 64 named expression shapes")
    e.add_argument("out", help="output file")
    e.add_argument("--model", default="default", help="default, ict, or a path (.npz export / BFM .mat)")
    e.add_argument("--format", choices=("npz", "glb", "obj"), default=None,
                   help="file format (default: from the output suffix)")
    e.set_defaults(func=run)


def run(args) -> int:
    from flowvq.facemodel import export_face_model, load_face_model

    path = export_face_model(load_face_model(args.model), args.out, args.format)
    print(f"wrote {path}")
    return 0
