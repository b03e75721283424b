"""A small z-buffered triangle rasteriser in torch: triangle id + barycentrics per pixel.

Measured against pyrender/OSMesa here (docs/plates.md): the correspondence we need is a float
attribute (source pixel coordinates, sub-pixel accurate at 2048 px), which pyrender's 8-bit
colour output cannot carry, and this vectorised rasteriser is fast enough at the working
resolution (a few ms for ~10k triangles at 256 px), runs on CPU and GPU alike, and has no GL
context to manage in worker threads."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Fragments:
    tri: torch.Tensor  # (H, W) int64, -1 where no triangle covers the pixel
    bary: torch.Tensor  # (H, W, 3) float32 barycentric weights of the covering triangle

    @property
    def mask(self) -> torch.Tensor:
        return self.tri >= 0


def rasterize(xy: torch.Tensor, depth: torch.Tensor, faces: torch.Tensor, height: int, width: int) -> Fragments:
    """xy (V,2) pixel coordinates (x right, y down, integers are pixel centres); depth (V,),
    smaller is nearer; faces (F,3) int64. Every triangle is drawn (no winding culling): the
    z-buffer alone decides visibility, so the winding convention of the mesh does not matter."""
    dev = xy.device
    xy = xy.float()
    depth = depth.float()
    faces = faces.long()
    tri_xy = xy[faces]  # (F,3,2)
    lo = torch.ceil(tri_xy.min(1).values)
    hi = torch.floor(tri_xy.max(1).values)
    lo = torch.maximum(lo, torch.zeros(2, device=dev))
    hi = torch.minimum(hi, torch.tensor([width - 1.0, height - 1.0], device=dev))
    ext = (hi - lo + 1).clamp(min=0)  # pixels covered by each bbox, per axis
    size = ext.max(1).values
    x0, y0 = tri_xy[:, 0, 0], tri_xy[:, 0, 1]
    x1, y1 = tri_xy[:, 1, 0], tri_xy[:, 1, 1]
    x2, y2 = tri_xy[:, 2, 0], tri_xy[:, 2, 1]
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    keep = (ext.min(1).values > 0) & (area.abs() > 1e-12)
    zbuf = torch.full((height * width,), float("inf"), device=dev)
    parts = []
    # bucket triangles by bbox size so each bucket is one dense (n, k*k) candidate grid
    k = 1
    while True:
        sel = keep & (size <= k) & (size > k // 2) if k > 1 else keep & (size <= 1)
        idx = sel.nonzero().squeeze(1)
        if len(idx):
            parts.append(_candidates(idx, k, lo, ext, tri_xy, area, depth[faces], width))
        if not bool((keep & (size > k)).any()):
            break
        k *= 2
    if not parts:
        return Fragments(torch.full((height, width), -1, dtype=torch.long, device=dev),
                         torch.zeros(height, width, 3, device=dev))
    pix = torch.cat([p[0] for p in parts])
    z = torch.cat([p[1] for p in parts])
    tid = torch.cat([p[2] for p in parts])
    w = torch.cat([p[3] for p in parts])
    zbuf.scatter_reduce_(0, pix, z, reduce="amin")
    win = z <= zbuf[pix]
    # several triangles can tie at a pixel (a shared edge): keep the lowest triangle id, so each pixel
    # gets exactly one writer (duplicate indices in an indexed write land in any order: tri from one
    # triangle and bary from another, differently from run to run)
    first = torch.full((height * width,), torch.iinfo(torch.long).max, dtype=torch.long, device=dev)
    first.scatter_reduce_(0, pix[win], tid[win], reduce="amin")
    win = win & (tid == first[pix])
    tri = torch.full((height * width,), -1, dtype=torch.long, device=dev)
    bary = torch.zeros(height * width, 3, device=dev)
    tri[pix[win]] = tid[win]
    bary[pix[win]] = w[win]
    return Fragments(tri.view(height, width), bary.view(height, width, 3))


def _candidates(idx, k, lo, ext, tri_xy, area, tri_z, width):
    oy, ox = torch.meshgrid(torch.arange(k, device=lo.device), torch.arange(k, device=lo.device), indexing="ij")
    ox, oy = ox.reshape(1, -1).float(), oy.reshape(1, -1).float()
    inside_box = (ox < ext[idx, 0:1]) & (oy < ext[idx, 1:2])
    px = lo[idx, 0:1] + ox
    py = lo[idx, 1:2] + oy
    t = tri_xy[idx]
    a = area[idx, None]
    # barycentrics from edge functions
    w0 = ((t[:, 1, 0:1] - px) * (t[:, 2, 1:2] - py) - (t[:, 2, 0:1] - px) * (t[:, 1, 1:2] - py)) / a
    w1 = ((t[:, 2, 0:1] - px) * (t[:, 0, 1:2] - py) - (t[:, 0, 0:1] - px) * (t[:, 2, 1:2] - py)) / a
    w2 = 1.0 - w0 - w1
    eps = -1e-5
    ok = inside_box & (w0 >= eps) & (w1 >= eps) & (w2 >= eps)
    w = torch.stack([w0, w1, w2], -1)[ok]
    z = (w * tri_z[idx].unsqueeze(1).expand(-1, ok.shape[1], -1)[ok]).sum(-1)
    rows, cols = ok.nonzero(as_tuple=True)
    pix = (lo[idx[rows], 1] + oy[0, cols]).long() * width + (lo[idx[rows], 0] + ox[0, cols]).long()
    return pix, z, idx[rows], w


def interpolate(attr: torch.Tensor, faces: torch.Tensor, frags: Fragments) -> torch.Tensor:
    """Per-vertex attributes (V,C) -> (H,W,C) image; zero where no triangle covers the pixel."""
    tri = frags.tri.clamp(min=0)
    vals = attr[faces.long()[tri]]  # (H,W,3,C)
    out = (vals * frags.bary.unsqueeze(-1)).sum(-2)
    return out * frags.mask.unsqueeze(-1)
