"""`flowvq convert IN OUT`: take files <-> Live Link Face CSV (no heavy imports).

    flowvq convert takes/take_1.npz take_1_livelink.csv   # FlowVQ take -> Live Link Face CSV
    flowvq convert recording.csv out/                     # Live Link Face CSV -> out/take_1.npz (+ take_1.csv)
    flowvq convert recording.csv out/take_3.npz           # ... as take 3

The layout (52 ARKit shapes, head yaw/pitch/roll, timecodes) and what does not carry over (the
12 extra channels, the head's translation) are described in flowvq_shared.livelink.
"""
from __future__ import annotations

import re
from pathlib import Path

TAKE_NAME = re.compile(r"^take_(\d+)\.npz$")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "convert", help="take_K.npz <-> Live Link Face CSV",
        description="take_K.npz -> Live Link Face .csv, or a Live Link Face .csv -> "
                    "take_K.npz (+ FlowVQ's own take_K.csv) in a folder.")
    p.add_argument("input", help="a take file (take_K.npz) or a Live Link Face CSV (.csv)")
    p.add_argument("output", help=".csv for a take; a folder or take_K.npz for a CSV")
    p.add_argument("--fps", type=float, default=None,
                   help="frame rate: of the CSV written (resampled), or of a CSV read "
                        "(default: the take's / the CSV's timecodes)")
    p.set_defaults(func=run)


def run(args) -> int:
    from flowvq_shared import livelink

    from .errors import BadRequest, readable_file

    src = readable_file(args.input, "input file", BadRequest)
    out = Path(args.output)
    if src.suffix.lower() == ".npz":
        if out.suffix.lower() != ".csv":
            raise BadRequest(f"a take converts to a Live Link Face .csv: name the output "
                             f"*.csv, not {out.name}")
        if out.resolve() == src.with_suffix(".csv").resolve():
            raise BadRequest(f"{out} is the take's own CSV (written by `flowvq generate`): "
                             "choose another name")
        from .render.cli import _load_take

        take = _load_take(src)
        path = livelink.write_csv(take, out, fps=args.fps)
        print(f"{path}: {take.n_frames} frames at {args.fps or take.fps:g} fps "
              "(Live Link Face: 52 ARKit shapes + head rotation)")
        return 0
    if src.suffix.lower() != ".csv":
        raise BadRequest(f"{src.name}: give a take file (.npz) or a Live Link Face CSV (.csv)")
    if out.suffix.lower() == ".npz":
        m = TAKE_NAME.match(out.name)
        if m is None:
            raise BadRequest(f"name the output take_K.npz (K = 1, 2, ...) or give a folder, "
                             f"not {out.name}")
        folder, index = out.parent, int(m.group(1))
    elif out.suffix:
        raise BadRequest(f"a Live Link Face CSV converts to a take: give a folder or "
                         f"take_K.npz, not {out.name}")
    else:
        folder, index = out, 1
    if folder.exists() and not folder.is_dir():
        raise BadRequest(f"{folder} is a file, not a folder")
    if (folder / f"take_{index}.csv").resolve() == src.resolve():
        raise BadRequest(f"writing take_{index} in {folder} would overwrite the input "
                         f"{src.name}: choose another folder or take number")
    import dataclasses

    take = dataclasses.replace(livelink.read_csv(src, fps=args.fps), index=index)
    path = take.save(folder)
    print(f"{path}: {take.n_frames} frames at {take.fps:g} fps (+ {path.with_suffix('.csv').name})")
    return 0
