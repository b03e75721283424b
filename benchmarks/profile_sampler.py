"""Where a take's sampling time goes: per-frame cost of the FCG's frame step, one piece at a time.

`python benchmarks/profile_sampler.py [--frames 200]` on the shipped checkpoint, batch 1, one torch
thread: the frame step run eagerly, traced (no_grad), traced under inference_mode, each flow's chain
alone, and both chains on two threads (what the sampler does); and the traced graph's op count. The
numbers go into docs/benchmarks.md ("Where the time goes") by hand, with the machine.
"""
from __future__ import annotations

import argparse
import collections
import threading
import time
import warnings

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=200)
    args = ap.parse_args()
    from flowvq.fcg.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
    from flowvq.fcg.sampler import _step_fn

    model = load_checkpoint(DEFAULT_CHECKPOINT, device="cpu")[0].eval().requires_grad_(False)
    torch.set_num_threads(1)
    c, n, b = model.cfg, args.frames, 1
    emo = torch.zeros(b, dtype=torch.long)
    ef, pf = model.exp.flow, model.pose.flow
    ep, pp = ef.plan(emo), pf.plan(emo)
    f_a = model.audio(torch.randn(n, c.features.window_frames, c.features.n_mels))
    frame = torch.cat([f_a, torch.cat([model.emotion_feature(emo), torch.zeros(1, c.exp_dim)], -1).expand(n, -1)], -1)
    chains = {
        "exp": (_step_fn(ef, ep), torch.randn(n, b, c.exp_dim), ef.frame_tokens(frame, ep),
                ef.prev_tokens(torch.zeros(b, c.tau, c.exp_dim), ep), torch.stack(ep.inv_scale), torch.stack(ep.bias)),
        "pose": (_step_fn(pf, pp), torch.randn(n, b, c.pose_dim), pf.frame_tokens(f_a, pp),
                 pf.prev_tokens(torch.zeros(b, c.tau, c.pose_dim), pp), torch.stack(pp.inv_scale), torch.stack(pp.bias)),
    }

    def trace(name):
        fn, z, ft, prev, sc, bi = chains[name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.jit.trace(fn, (z[0], ft[:, 0], prev, sc, bi), check_trace=False)

    def loop(name, fn, frames=n):
        _, z, ft, prev, sc, bi = chains[name]
        for t in range(frames):
            _, prev = fn(z[t], ft[:, t], prev, sc, bi)

    def per_frame(run, frames=n) -> float:
        run(5)  # warm-up
        t = time.perf_counter()
        run(frames)
        return (time.perf_counter() - t) / frames * 1000

    rows = []
    with torch.no_grad():
        rows.append(("eager, both flows in turn", per_frame(lambda k: (loop("exp", chains["exp"][0], k), loop("pose", chains["pose"][0], k)))))
        te, tp = trace("exp"), trace("pose")
        rows.append(("traced (no_grad), both in turn", per_frame(lambda k: (loop("exp", te, k), loop("pose", tp, k)))))
    with torch.inference_mode():
        te, tp = trace("exp"), trace("pose")
        rows.append(("traced, inference_mode, both in turn", per_frame(lambda k: (loop("exp", te, k), loop("pose", tp, k)))))
        rows.append(("  ExpFlow chain alone", per_frame(lambda k: loop("exp", te, k))))
        rows.append(("  PoseFlow chain alone", per_frame(lambda k: loop("pose", tp, k))))

        def both(k):
            th = threading.Thread(target=loop, args=("pose", tp, k))
            th.start()
            loop("exp", te, k)
            th.join()
        rows.append(("traced, inference_mode, two threads (the sampler)", per_frame(both)))
    for name, tr in (("ExpFlow", te), ("PoseFlow", tp)):
        kinds = collections.Counter(node.kind() for node in tr.graph.nodes())
        ops = sum(v for k, v in kinds.items() if k.startswith("aten::"))
        print(f"{name} step: {ops} aten ops per frame ({', '.join(f'{k[6:]} {v}' for k, v in kinds.most_common() if k.startswith('aten::'))[:160]}...)")
    for name, ms in rows:
        print(f"{name:<52} {ms:6.2f} ms/frame  ({ms * 250 / 1000:.2f} s for a 10 s take at 25 fps)")


if __name__ == "__main__":
    main()
