"""Person matte and clean background plate of one portrait (numpy + OpenCV only, no bpy).

The geometry path moves the person with the head; the background must stay where it is. So each
portrait is split once into two layers:
- the person's matte: cv2.grabCut seeded from the fitted face (definite foreground = the face's
  hull, probable foreground = boxes for hair, neck and shoulders, definite background = a band
  along the top/left/right border away from the person), run on a copy whose long side is
  `work_px`, then upsampled;
- the clean plate: the portrait with the person (the hard mask grown by a few pixels) filled by
  cv2.inpaint; every pixel outside that hole is the portrait's own.
A frame composites the warped person (alpha = the matte warped by the same map) over the plate.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

WORK_PX = 512  # long side of the copy grabCut and inpaint run on
GROW = 0.004  # the hole (inpainted, alpha = 1) is the hard mask grown by this fraction of the long side
FEATHER = 0.004  # alpha falls from 1 to 0 over this fraction of the long side outside the hole


@dataclass(frozen=True)
class Layers:
    alpha: np.ndarray  # (H,W) float32: 1 on `hole`, feathered to 0 outside it
    plate: np.ndarray  # (H,W,3) uint8: the portrait, with `hole` inpainted
    hole: np.ndarray  # (H,W) bool: the person's hard mask, grown by a few pixels
    person: np.ndarray  # (H,W) bool: the person's hard mask


def grabcut_seeds(shape, face_pts: np.ndarray) -> np.ndarray:
    """(H,W) uint8 of cv2.GC_* labels for an image of `shape`, from the face's points (N,2)."""
    h, w = shape[:2]
    pts = np.asarray(face_pts, np.float32)
    lo, hi = pts.min(0), pts.max(0)
    fw, fh = np.maximum(hi - lo, 1.0)
    cx = 0.5 * (lo[0] + hi[0])
    seeds = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    probable = np.zeros((h, w), np.uint8)
    # hair above and beside the face, down to the image's bottom (long hair, neck)
    cv2.rectangle(probable, _pt(cx - 0.9 * fw, lo[1] - 0.6 * fh), _pt(cx + 0.9 * fw, h), 1, -1)
    # shoulders: wider, from a little below the chin
    cv2.rectangle(probable, _pt(cx - 2.0 * fw, hi[1] + 0.3 * fh), _pt(cx + 2.0 * fw, h), 1, -1)
    # definite background: a border band on the top, left and right, kept clear of the person's boxes
    band = max(2, int(round(0.04 * max(h, w))))
    border = np.zeros((h, w), np.uint8)
    border[:band], border[:, :band], border[:, -band:] = 1, 1, 1
    clear = cv2.dilate(probable, cv2.getStructuringElement(cv2.MORPH_RECT, (2 * band + 1, 2 * band + 1)))
    seeds[(border > 0) & (clear == 0)] = cv2.GC_BGD
    seeds[probable > 0] = cv2.GC_PR_FGD
    face = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(face, cv2.convexHull(np.round(pts).astype(np.int32)), 1)
    # the hull shrunk a little: a fit that spills over the cheek must not pin background as person
    k = max(1, int(round(0.04 * max(fw, fh))))
    face = cv2.erode(face, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
    seeds[face > 0] = cv2.GC_FGD
    return seeds


def _pt(x, y):
    return int(round(float(x))), int(round(float(y)))


def person_mask(image: np.ndarray, face_pts: np.ndarray, work_px: int = WORK_PX, iterations: int = 5) -> np.ndarray:
    """(H,W) bool: the person (face, hair, neck, body) in an RGB uint8 portrait."""
    h, w = image.shape[:2]
    s = min(1.0, work_px / max(h, w))
    sw, sh = max(8, int(round(w * s))), max(8, int(round(h * s)))
    small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA) if s < 1 else image
    pts = np.asarray(face_pts, np.float32) * np.float32([sw / w, sh / h])
    seeds = grabcut_seeds((sh, sw), pts)
    mask = seeds.copy()
    try:
        cv2.grabCut(np.ascontiguousarray(small[..., ::-1]), mask, None, np.zeros((1, 65), np.float64),
                    np.zeros((1, 65), np.float64), iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:  # no background sample at all (the person fills the frame): keep the seed boxes
        pass
    fg = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)
    fg = _keep_face_components(fg, seeds == cv2.GC_FGD)
    fg = _fill_holes(fg)
    # upsample the soft edge and cut at half: a smooth outline at full resolution, not blocky
    soft = cv2.resize(fg.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    if s < 1:
        soft = cv2.GaussianBlur(soft, (0, 0), 0.5 / s)
    return soft > 0.5


def _keep_face_components(fg: np.ndarray, face: np.ndarray) -> np.ndarray:
    """Only the blobs that touch the face: grabCut's stray islands in the background are dropped."""
    n, labels = cv2.connectedComponents(fg, connectivity=8)
    keep = np.unique(labels[face & (fg > 0)])
    out = np.isin(labels, keep[keep > 0]).astype(np.uint8)
    out[face] = 1
    return out


def _fill_holes(fg: np.ndarray) -> np.ndarray:
    # an eye or the teeth taken for background would stay behind while the head turns
    h, w = fg.shape
    pad = np.zeros((h + 2, w + 2), np.uint8)
    pad[1:-1, 1:-1] = fg
    outside = pad.copy()
    cv2.floodFill(outside, None, (0, 0), 2)
    return ((outside[1:-1, 1:-1] != 2) | (fg > 0)).astype(np.uint8)


def feathered_alpha(person: np.ndarray, grow_px: float, feather_px: float):
    """(alpha, hole): hole = the mask grown by grow_px; alpha = 1 on it, smoothstep to 0 over
    feather_px outside. Alpha is 1 wherever the plate differs from the portrait, so a still frame
    composites back to the portrait exactly."""
    r = max(1, int(round(grow_px)))
    hole = cv2.dilate(person.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) > 0
    dist = cv2.distanceTransform((~hole).astype(np.uint8), cv2.DIST_L2, 5)
    x = np.clip(1.0 - dist / max(float(feather_px), 1.0), 0.0, 1.0)
    alpha = (x * x * (3 - 2 * x)).astype(np.float32)
    alpha[hole] = 1.0
    return alpha, hole


def clean_plate(image: np.ndarray, hole: np.ndarray, work_px: int = WORK_PX, radius: float = 5.0) -> np.ndarray:
    """The portrait with `hole` inpainted (cv2.INPAINT_TELEA on a copy of long side work_px, the
    fill upsampled); pixels outside the hole are the portrait's, bit for bit."""
    h, w = hole.shape
    s = min(1.0, work_px / max(h, w))
    sw, sh = max(8, int(round(w * s))), max(8, int(round(h * s)))
    small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA) if s < 1 else image
    small_hole = (cv2.resize(hole.astype(np.float32), (sw, sh), interpolation=cv2.INTER_AREA) > 0).astype(np.uint8)
    # one more pixel: downscaling mixed the person into the pixels along the hole's edge
    small_hole = cv2.dilate(small_hole, np.ones((3, 3), np.uint8))
    fill = cv2.inpaint(np.ascontiguousarray(small), small_hole, radius, cv2.INPAINT_TELEA)
    if s < 1:
        fill = cv2.resize(fill, (w, h), interpolation=cv2.INTER_LINEAR)
    out = image.copy()
    out[hole] = fill[hole]
    return out


def person_layers(image: np.ndarray, face_pts: np.ndarray, work_px: int = WORK_PX) -> Layers:
    """The matte and the clean plate of one portrait (once per portrait: ~0.1-1 s on a CPU)."""
    long_side = max(image.shape[:2])
    person = person_mask(image, face_pts, work_px)
    alpha, hole = feathered_alpha(person, max(2.0, GROW * long_side), max(2.0, FEATHER * long_side))
    return Layers(alpha=alpha, plate=clean_plate(image, hole, work_px), hole=hole, person=person)
