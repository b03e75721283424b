"""One dubbed frame: a bank frame's lower face warped onto the wanted mouth and blended into the shot.

1. Control points: the 68 landmarks of the bank frame (source) and the wanted landmarks in the shot
   (target: the shot's own, with the mouth and jaw moved to the new line), plus a ring around the
   lower face that each side places by its own eye line, so the warp is a similarity there.
2. A fixed triangulation of those points (made once per bank on its mean face) is drawn over the
   target region; each triangle's affine map gives every target pixel its bank pixel (piecewise
   affine, continuous, no fold where the points keep their order).
3. The warped bank face takes the shot's light: the low-frequency difference between the shot and
   the warped bank over the cheeks and chin (not the mouth, whose content changes) is added back.
4. Blend: only the lower face (jaw line to the nose base, of both the shot's and the wanted mouth)
   is replaced, with a feathered edge; everything above the nose base is the shot's own pixels."""
from __future__ import annotations

import cv2
import numpy as np
from .mouth_bank import MouthBank, apply, canonical, face_width, invert

RING = 16


def _smooth_mask(mask: np.ndarray, feather: float) -> np.ndarray:
    """0/1 mask -> alpha that is 0 outside the mask and rises to 1 over `feather` px inside it."""
    r = max(1, int(round(feather)))
    inner = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return cv2.GaussianBlur(inner.astype(np.float32), (0, 0), max(0.5, feather / 2.0))


def piecewise_affine_map(tgt: np.ndarray, src: np.ndarray, faces: np.ndarray, width: int, height: int):
    """For every pixel of a width x height grid over the target points: the source point the same
    triangle maps it to (x, y float32 maps for cv2.remap), and whether a triangle covers it.
    Triangles are drawn as ids (OpenCV, 1/16 px) and each gets its affine map: a few large
    triangles, where a z-buffered mesh rasteriser would spend its time on candidates."""
    ids = np.full((height, width), -1, np.int32)
    for k, f in enumerate(faces):
        cv2.fillConvexPoly(ids, np.round(tgt[f] * 16).astype(np.int32), int(k), cv2.LINE_8, 4)
    t = np.concatenate([tgt[faces], np.ones((len(faces), 3, 1), np.float32)], 2).astype(np.float64)  # (F,3,3)
    a = np.linalg.pinv(t) @ src[faces].astype(np.float64)  # (F,3,2): [x y 1] @ a = source point
    covered = ids >= 0
    gx, gy = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    m = a[np.maximum(ids, 0)]  # (H,W,3,2)
    sx = gx * m[..., 0, 0] + gy * m[..., 1, 0] + m[..., 2, 0]
    sy = gx * m[..., 0, 1] + gy * m[..., 1, 1] + m[..., 2, 1]
    return np.stack([sx, sy], -1).astype(np.float32), covered


class Compositor:
    """Holds a bank and its triangulation; `frame(shot_rgb, shot_lm, want_lm, item)` dubs one frame."""

    def __init__(self, bank: MouthBank):
        from scipy.spatial import Delaunay

        self.bank = bank
        canon = np.stack([canonical(lm)[0] for lm in bank.landmarks[:: max(1, len(bank) // 200)]])
        mean = canon.mean(0)
        centre = 0.5 * (mean[33] + mean[8])
        radius = 1.3 * float(np.linalg.norm(mean[2:15] - centre, axis=1).max())
        a = np.linspace(0, 2 * np.pi, RING, endpoint=False)
        self.ring = (centre + radius * np.stack([np.cos(a), np.sin(a)], 1)).astype(np.float32)
        template = np.concatenate([mean, self.ring])
        self.faces = Delaunay(template).simplices.astype(np.int64)
        self._cache: tuple[int, np.ndarray] | None = None

    def _crop(self, item: int) -> np.ndarray:
        if self._cache is None or self._cache[0] != item:
            self._cache = (item, self.bank.crop(item))
        return self._cache[1]

    def control_points(self, lm: np.ndarray) -> np.ndarray:
        """68 landmarks + the ring placed by this face's eye line, in the same pixels as lm."""
        _, m = canonical(lm)
        return np.concatenate([lm, apply(invert(m), self.ring)]).astype(np.float32)

    @staticmethod
    def region_mask(shot_lm: np.ndarray, want_lm: np.ndarray, origin, size) -> np.ndarray:
        """The replaced region, 0/1 uint8 over the ROI: jaw line (a little outside it) up to the nose
        base, for the shot's mouth and for the wanted one (a closing jaw must cover the old chin)."""
        x0, y0 = origin
        mask = np.zeros((size[1], size[0]), np.uint8)
        for lm in (shot_lm, want_lm):
            fw = face_width(lm)
            nose = lm[33]
            jaw = lm[2:15]
            out = jaw + (jaw - nose) / np.maximum(np.linalg.norm(jaw - nose, axis=1, keepdims=True), 1e-6) * 0.06 * fw
            poly = np.concatenate([out, lm[[35, 34, 33, 32, 31]]])
            # nothing above the nose base (in the face's own frame) is replaced: eyes, brows, upper cheeks
            _, m = canonical(lm)
            c = apply(m, poly)
            c[:, 1] = np.maximum(c[:, 1], c[-5:, 1].min())
            poly = apply(invert(m), c) - np.array([x0, y0], np.float32)
            cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1)
        return mask

    def frame(self, shot: np.ndarray, shot_lm: np.ndarray, want_lm: np.ndarray, item: int,
              strength: float = 1.0) -> np.ndarray:
        """The shot frame with its lower face replaced by bank item `item` warped to `want_lm`."""
        h, w = shot.shape[:2]
        tgt = self.control_points(want_lm)
        src = self.control_points(self.bank.landmarks[item])
        x0, y0 = np.floor(np.maximum(tgt.min(0), 0)).astype(int)
        x1, y1 = np.ceil(np.minimum(tgt.max(0), [w - 1, h - 1])).astype(int) + 1
        if x1 - x0 < 8 or y1 - y0 < 8:
            return shot
        rw, rh = int(x1 - x0), int(y1 - y0)
        sxy, covered = piecewise_affine_map(tgt - np.array([x0, y0], np.float32), src, self.faces, rw, rh)
        crop = self._crop(item)
        warped = cv2.remap(crop, sxy[..., 0], sxy[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)

        region = shot[y0:y1, x0:x1]
        fw = face_width(shot_lm)
        mask = self.region_mask(shot_lm, want_lm, (x0, y0), (rw, rh)) & covered.astype(np.uint8)
        alpha = _smooth_mask(mask, 0.06 * fw) * float(strength)
        # light: the shot's low frequencies over the cheeks and chin, where both show skin
        mouth = np.zeros_like(mask)
        for lm in (shot_lm, want_lm):
            cv2.fillPoly(mouth, [np.round(lm[48:60] - [x0, y0]).astype(np.int32)], 1)
        mouth = cv2.dilate(mouth, np.ones((3, 3), np.uint8), iterations=max(1, int(0.03 * fw)))
        weight = (cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=max(1, int(0.05 * fw)))
                  & covered.astype(np.uint8) & (1 - mouth)).astype(np.float32)
        # the light field is smooth (sigma 12% of the face): made on a 4x smaller grid, then upsampled
        small = (max(2, rw // 4), max(2, rh // 4))
        sigma = max(0.5, 0.03 * fw)
        diff = (region.astype(np.float32) - warped.astype(np.float32)) * weight[..., None]
        num = cv2.GaussianBlur(cv2.resize(diff, small, interpolation=cv2.INTER_AREA), (0, 0), sigma)
        den = cv2.GaussianBlur(cv2.resize(weight, small, interpolation=cv2.INTER_AREA), (0, 0), sigma)[..., None]
        light = cv2.resize(np.where(den > 1e-3, num / np.maximum(den, 1e-3), 0.0).astype(np.float32), (rw, rh),
                           interpolation=cv2.INTER_LINEAR)
        fixed = warped.astype(np.float32) + light
        out = shot.copy()
        a = alpha[..., None]
        out[y0:y1, x0:x1] = np.clip(region.astype(np.float32) * (1 - a) + fixed * a + 0.5, 0, 255).astype(np.uint8)
        return out
