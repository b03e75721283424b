"""Time to apply one 60 s take (64 channels + 6 pose channels, 25 fps) as new Actions in Blender.

    .venv/bin/python benchmarks/bench_apply_take.py [--repeat 5]

Runs headless with the bpy module; registers the add-on from the source tree (or uses the one
already enabled, when called from the tests). The take's curves are smooth random signals: what
is measured is writing keys, which does not depend on the values.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SECONDS, FPS = 60, 25.0


def _takes_module():
    for name, mod in list(sys.modules.items()):
        package = name.rsplit(".", 1)[0]
        if name.endswith(".takes") and hasattr(mod, "add_take") \
                and package + "._shared" in sys.modules:  # the add-on is already registered
            return sys.modules[package + "._shared"], mod
    sys.path.insert(0, str(ROOT))
    import blender_addon
    from blender_addon import _shared, takes

    blender_addon.register()
    return _shared, takes


def _head(bpy, names):
    mesh = bpy.data.meshes.new("bench head")
    grid = np.stack(np.meshgrid(np.linspace(-1, 1, 20), np.linspace(-1, 1, 20)), -1).reshape(-1, 2)
    verts = np.c_[grid, np.zeros(len(grid))]
    faces = [(r * 20 + c, r * 20 + c + 1, (r + 1) * 20 + c + 1, (r + 1) * 20 + c)
             for r in range(19) for c in range(19)]
    mesh.from_pydata(verts.tolist(), [], faces)
    obj = bpy.data.objects.new("bench head", mesh)
    bpy.context.scene.collection.objects.link(obj)
    obj.shape_key_add(name="Basis")
    for n in names:
        obj.shape_key_add(name=n, from_mix=False)
    return obj


def apply_60s_take(bpy, seed: int = 0) -> float:
    """Seconds to write one 60 s take (shape-key Action + pose Action) onto a 64-key head."""
    shared, takes = _takes_module()
    names = shared.channels.EXPRESSION_NAMES
    obj = _head(bpy, names)
    t = int(SECONDS * FPS)
    rng = np.random.default_rng(seed)
    smooth = lambda a: np.cumsum(a, axis=0) / np.sqrt(t)  # noqa: E731  (random walks)
    # flowvq_shared.takes.Take, as the add-on sees it (vendored in the extension)
    take = shared.takes.Take(expression=smooth(rng.normal(size=(t, 64))).astype(np.float32),
                             pose=0.1 * smooth(rng.normal(size=(t, 6))).astype(np.float32),
                             names=tuple(names), index=1,
                             settings=shared.settings.GenerateSettings(fps=FPS, seed=seed))
    t0 = time.perf_counter()
    index = takes.add_take(bpy.context.scene, obj, take, 1)
    takes.activate(obj, index)
    seconds = time.perf_counter() - t0
    # leave nothing behind
    takes.delete(obj, index)
    mesh = obj.data
    bpy.data.objects.remove(obj)
    bpy.data.meshes.remove(mesh)
    return seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="flowvq-bench-"))
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    times = [apply_60s_take(bpy, seed=k) for k in range(args.repeat)]
    print(f"apply a {SECONDS} s take ({int(SECONDS * FPS)} frames x 64 channels + 6 pose) "
          f"at {FPS:g} fps: best {min(times):.3f} s, median {float(np.median(times)):.3f} s "
          f"over {args.repeat} runs (Blender {bpy.app.version_string})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
