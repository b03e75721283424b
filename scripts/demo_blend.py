"""Write the demo .blend: the add-on's head, one Action per take, the speech as a sound strip.

    .venv/bin/python scripts/demo_blend.py --face-model head.npz --audio speech.wav \
        --out demo.blend take_1.npz take_2.npz ...

Runs with the bpy module (Blender as a Python module) and the add-on's own code, registered from
the source tree; `make demo` calls it after `flowvq generate` and `flowvq face-model export`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--face-model", required=True, help="npz from `flowvq face-model export`")
    ap.add_argument("--audio", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("takes", nargs="+", help="take_K.npz files")
    args = ap.parse_args(argv)

    import bpy

    sys.path.insert(0, str(ROOT))
    import blender_addon
    from blender_addon import head, takes

    bpy.ops.wm.read_factory_settings(use_empty=True)
    blender_addon.register()
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 25, 1.0
    scene.frame_start = scene.frame_end = 1  # a new scene: adding takes extends it to the audio
    fm = np.load(args.face_model, allow_pickle=False)
    obj = head.build_head("FlowVQ head", fm["neutral"], fm["deltas"], [str(n) for n in fm["names"]],
                          fm["faces"], uv=fm["uv"], scale=0.01)  # model centimetres -> metres
    scene.sequence_editor_create()
    scene.sequence_editor.strips.new_sound("speech", str(Path(args.audio).resolve()), 1, 1)
    from flowvq_shared.takes import Take

    for path in args.takes:
        take = Take.load(path)  # the take with its whole provenance, kept in the .blend
        if abs(take.fps - 25.0) > 1e-6:
            raise SystemExit(f"error: {path} is at {take.fps:g} fps; the demo scene is 25 fps")
        takes.add_take(scene, obj, take, frame_start=1,
                       pose=takes.PoseTarget(translation_scale=0.01))
    takes.activate(obj, 0)
    out = Path(args.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(out))
    print(f"{out}: {len(obj.flowvq.takes)} takes as Actions "
          f"({', '.join(t.name for t in obj.flowvq.takes)}), frames 1-{scene.frame_end}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
