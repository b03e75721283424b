"""`flowvq eval`: FCG against real clips -> docs/evaluation_fcg.md (no torch import at load time)."""
from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "evaluation_fcg.md"


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="evaluate FCG on the real clips in ../shared/data -> docs/evaluation_fcg.md")
    p.add_argument("--data", default=None, help="folder with talking_3dmm/, video_with_audio/, emotion_3dmm/ "
                                                "(default: ../shared/data next to the checkout)")
    p.add_argument("--checkpoint", default=None, help="FCG checkpoint (default: the shipped one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--takes", type=int, default=4, help="takes per clip (diversity)")
    p.add_argument("--no-emotion", action="store_true", help="skip the emotion classifier")
    p.add_argument("--device", default=None)
    p.add_argument("--corpus", default=None,
                   help="training corpus folder: adds a secondary emotion check with a classifier on its labels")
    p.add_argument("-o", "--output", default=str(DOC), help="markdown report to write")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from ..errors import BadRequest
    from ..generate import load_generator
    from .clips import default_data_root
    from .run import markdown, run_all

    root = Path(args.data) if args.data else default_data_root()
    if not root.is_dir():
        raise BadRequest(f"real-clip folder not found: {root} (pass --data)")
    gen = load_generator(args.checkpoint, device=args.device)
    out = run_all(gen, root, seed=args.seed, n_takes=args.takes, emotions=not args.no_emotion,
                  corpus=args.corpus)
    if not out["clips"]:
        raise BadRequest(f"no real clips found under {root}")
    command = "flowvq " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("flowvq") else "flowvq eval"
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    voice = getattr(gen, "voice", None)  # its sources: the clips the table marks in-sample for it
    info = {**gen.info, "voice_sources": list(voice.info.get("sources", [])) if voice is not None else []}
    Path(args.output).write_text(markdown(out, info, command))
    print(f"wrote {args.output}")
    return 0
