"""The geometry path: pose the fitted mesh, rasterise the dense correspondence, warp the portrait.

Per frame:
1. the fitted face (identity fixed, the take's expression, the portrait's pose + the take's
   pose delta) is projected with the portrait's camera;
2. the rasteriser gives, for every pixel of a working grid over the head's region, the portrait
   pixel that the same surface point occupied in the portrait (backward map);
3. outside the head the displacement is extended by normalised convolution and faded to zero
   at the region's border, so hair, neck and background follow smoothly and nothing tears;
4. the full-resolution portrait is resampled (bicubic) through the upsampled map; the mouth
   interior (cavity, teeth, tongue of the mesh) is composited where the lips part;
5. the background stays still (WarpSettings.static_background): the warped person, with the
   person's matte warped by the same map as its alpha, is composited over a clean plate (the
   portrait with the person inpainted; matte.py, computed once per portrait), so what the head
   uncovers is the plate, and the wall next to the head is not dragged along;
6. the region is pasted back; since the displacement is zero at its border, the seam is
   invisible (the feathered blend is the displacement fall-off itself)."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from .fit import PortraitFit
from .matte import Layers, person_layers
from .mouth import interior_colours, interior_mask
from .raster import interpolate, rasterize


@dataclass(frozen=True)
class WarpSettings:
    work_head_px: int = 192  # head size in the working (correspondence) grid, in pixels
    margin: float = 0.45  # region margin around the head, as a fraction of the head's size
    fade: float = 0.3  # the displacement fades to zero over this fraction of the head's size (<= margin)
    interpolation: int = cv2.INTER_CUBIC  # final resampling of the full-resolution portrait
    expression_mode: str = "relative"  # "relative": take expression added to the fit; "absolute": replaces it
    static_background: bool = True  # composite the warped person over a clean plate (False: the warp drags it)

    def __post_init__(self):
        if self.expression_mode not in ("relative", "absolute"):
            raise ValueError(f"expression_mode must be relative or absolute, got {self.expression_mode!r}")


SEAM_PX = 3.0  # working-grid pixels over which the head's outline eases into the surrounding fill


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


class FaceWarper:
    """Holds one portrait and its fit; `frame(expression, pose_delta)` renders one plate."""

    def __init__(self, portrait: np.ndarray, model, fit: PortraitFit, settings: WarpSettings = WarpSettings(),
                 device: str | torch.device = "cpu"):
        self.portrait = np.ascontiguousarray(portrait)
        self.h, self.w = portrait.shape[:2]
        self.model, self.fit, self.settings = model, fit, settings
        self.device = torch.device(device)
        self.identity_shape = model.identity_shape(fit.identity)
        src_cam = model.pose(model.vertices(fit.expression, fit.identity), fit.pose)
        self.src_px = model.project(src_cam, fit.camera).astype(np.float32)  # (V,2) portrait pixels
        self.interior = interior_mask(model)
        skin = (model.part == 0) if model.part is not None else np.ones(model.n_vertices, bool)
        self.skin = skin
        self.faces_t = torch.as_tensor(model.faces.astype(np.int64), device=self.device)
        lip = self._lip_colour()
        colours = interior_colours(model, self.identity_shape, self.portrait, lip)
        # the part of the mouth interior the portrait itself shows (an open mouth) is warped from
        # its real pixels; only what the portrait hides is synthesised
        seen = self.interior & self._visible_vertices(src_cam)
        if self._mouth_visibility(src_cam) < 0.3:
            seen[:] = False
        # per-vertex attributes: source x, source y, interior flag, interior colour (3), seen in portrait
        self.attr_static = np.concatenate([self.interior[:, None].astype(np.float32), colours / 255.0,
                                           seen[:, None].astype(np.float32)], 1)
        self._layers: Layers | None = None
        self._alpha8: np.ndarray | None = None

    @property
    def layers(self) -> Layers:
        """The portrait's person matte and clean plate, made on the first frame that needs them
        (callers that only ask for landmarks never pay for grabCut)."""
        if self._layers is None:
            layers = person_layers(self.portrait, np.concatenate([self.fit.landmarks, self.src_px[self.skin]]))
            self._alpha8 = np.clip(layers.alpha * 255.0 + 0.5, 0, 255).astype(np.uint8)
            self._layers = layers
        return self._layers

    def _visible_vertices(self, cam_v: np.ndarray) -> np.ndarray:
        px = self.model.project(cam_v, self.fit.camera).astype(np.float32)
        lo = px[self.skin].min(0)
        s = min(1.0, self.settings.work_head_px / max(float((px[self.skin].max(0) - lo).max()), 1.0))
        size = np.ceil((px[self.skin].max(0) - lo) * s).astype(int) + 3
        xy = (px - lo) * s + 1
        frags = rasterize(torch.from_numpy(xy), torch.from_numpy(-cam_v[:, 2]), self.faces_t.cpu(),
                          int(size[1]), int(size[0]))
        tris = frags.tri[frags.mask].unique().numpy()
        out = np.zeros(self.model.n_vertices, bool)
        out[self.model.faces[tris].ravel()] = True
        return out

    def _lip_colour(self):
        lm = self.fit.landmarks[48:60].astype(np.int32)
        mask = np.zeros((self.h, self.w), np.uint8)
        cv2.fillPoly(mask, [lm], 1)
        inner = self.fit.landmarks[60:68].astype(np.int32)
        cv2.fillPoly(mask, [inner], 0)
        if mask.sum() < 10:
            return None
        return np.median(self.portrait[mask > 0], axis=0)

    def target_vertices(self, expression: np.ndarray, pose_delta: np.ndarray) -> np.ndarray:
        """Camera-space vertices of a frame. The take's pose is added to the portrait's; the take's
        expression is added to the portrait's fitted one ("relative", the default: an all-zero
        take renders the portrait unchanged) or replaces it ("absolute")."""
        expression = np.asarray(expression, np.float32)
        if self.settings.expression_mode == "relative":
            expression = self.fit.expression + expression
        base = self.identity_shape + np.tensordot(expression, self.model.deltas, axes=(0, 0))
        return self.model.pose(base, self.fit.pose + np.asarray(pose_delta, np.float32))

    def target_landmarks(self, expression: np.ndarray, pose_delta: np.ndarray) -> np.ndarray:
        """(68,2) portrait pixels where the frame's landmarks land: the portrait's detected landmarks
        moved by the model's landmark motion (the fit's error cancels, as in dubbing)."""
        lm = self.model.landmarks68
        expression = np.asarray(expression, np.float32)
        if self.settings.expression_mode == "relative":
            expression = self.fit.expression + expression
        base = self.identity_shape[lm] + np.tensordot(expression, self.model.deltas[:, lm], axes=(0, 0))
        cam = self.model.pose(base, self.fit.pose + np.asarray(pose_delta, np.float32))
        return (self.fit.landmarks + self.model.project(cam, self.fit.camera) - self.src_px[lm]).astype(np.float32)

    def _mouth_visibility(self, cam_v: np.ndarray) -> float:
        lm = cam_v[self.model.landmarks68]
        gap = float(np.linalg.norm(lm[[61, 62, 63]] - lm[[67, 66, 65]], axis=1).mean())
        scale = float(np.linalg.norm(lm[45] - lm[36]))
        return float(_smoothstep((gap / max(scale, 1e-6) - 0.02) / 0.06))

    def _region(self, tgt_px: np.ndarray):
        pts = np.concatenate([self.src_px[self.skin], tgt_px[self.skin]])
        lo, hi = pts.min(0), pts.max(0)
        size = float((hi - lo).max())
        m = self.settings.margin * size
        x0, y0 = np.floor(np.maximum(lo - m, 0)).astype(int)
        x1, y1 = np.ceil(np.minimum(hi + m, [self.w - 1, self.h - 1])).astype(int)
        if x1 <= x0 + 4 or y1 <= y0 + 4:
            return None
        scale = min(1.0, self.settings.work_head_px / max(float((tgt_px[self.skin].max(0) - tgt_px[self.skin].min(0)).max()), 1.0))
        ramp = min(self.settings.fade, self.settings.margin) * size * scale
        return (int(x0), int(y0), int(x1) + 1, int(y1) + 1), scale, ramp

    def frame(self, expression: np.ndarray, pose_delta: np.ndarray, with_alpha: bool = False):
        """The plate (H,W,3) uint8; with_alpha: (plate, alpha), alpha (H,W) float32 = where the frame
        shows the moved person (the matte warped with it), a matte pass for compositing."""
        cam_v = self.target_vertices(expression, pose_delta)
        tgt_px = self.model.project(cam_v, self.fit.camera).astype(np.float32)
        region = self._region(tgt_px)
        if region is None:
            return (self.portrait.copy(), self.layers.alpha.copy()) if with_alpha else self.portrait.copy()
        (x0, y0, x1, y1), s, ramp = region
        rw, rh = x1 - x0, y1 - y0
        ww, wh = max(2, int(round(rw * s))), max(2, int(round(rh * s)))
        sx, sy = ww / rw, wh / rh
        xy = np.stack([(tgt_px[:, 0] - x0 + 0.5) * sx - 0.5, (tgt_px[:, 1] - y0 + 0.5) * sy - 0.5], 1)
        frags = rasterize(torch.from_numpy(xy).to(self.device), torch.from_numpy(-cam_v[:, 2]).to(self.device),
                          self.faces_t, wh, ww)
        attr = np.concatenate([self.src_px, self.attr_static], 1)
        img = interpolate(torch.from_numpy(attr).to(self.device), self.faces_t, frags).cpu().numpy()
        covered = frags.mask.cpu().numpy()
        # a mouth that is barely open shows no interior: the lips' own pixels fill the slit
        interior_cover = img[..., 2] * covered
        seen = np.clip(img[..., 6] / np.maximum(interior_cover, 1e-3), 0, 1) * (interior_cover > 0)
        interior = interior_cover * (1 - seen) * self._mouth_visibility(cam_v)
        known = covered & ((interior_cover < 0.5) | (seen > 0.5))

        # displacement (portrait pixels) of each working pixel's source point
        gx = (np.arange(ww, dtype=np.float32) + 0.5) / sx - 0.5 + x0
        gy = (np.arange(wh, dtype=np.float32) + 0.5) / sy - 0.5 + y0
        px, py = np.meshgrid(gx, gy)
        d = np.stack([img[..., 0] - px, img[..., 1] - py], -1) * known[..., None]
        d = self._extend(d, known, ramp, (ww, wh), covered)

        # full-resolution resampling of the region
        d_full = cv2.resize(d, (rw, rh), interpolation=cv2.INTER_LINEAR)
        fx, fy = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
        mx, my = fx + d_full[..., 0], fy + d_full[..., 1]
        warped = cv2.remap(self.portrait, mx, my, self.settings.interpolation, borderMode=cv2.BORDER_REFLECT)
        if interior.max() > 0.01:
            colour = img[..., 3:6] / np.maximum(interior_cover, 1e-3)[..., None]
            warped = self._composite_mouth(warped, interior, colour, (rw, rh))
        a = None
        if self.settings.static_background or with_alpha:
            plate = self.layers.plate[y0:y1, x0:x1]
            a = cv2.remap(self._alpha8, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if self.settings.static_background:
            warped = self._over_plate(warped, plate, a)
        out = self.portrait.copy()
        out[y0:y1, x0:x1] = warped
        if not with_alpha:
            return out
        alpha = self.layers.alpha.copy()
        alpha[y0:y1, x0:x1] = a / np.float32(255)
        return out, alpha

    @staticmethod
    def _over_plate(warped: np.ndarray, plate: np.ndarray, a: np.ndarray) -> np.ndarray:
        """The warped person over the clean plate; `a` (uint8) is the matte moved by the same map."""
        w = a.astype(np.float32) / np.float32(255)  # 255/255 is exactly 1: alpha 255 gives the warped pixel
        return cv2.blendLinear(warped, np.ascontiguousarray(plate), w, 1 - w)  # 6x faster than numpy

    @staticmethod
    def _extend(d: np.ndarray, known: np.ndarray, ramp: float, size, covered: np.ndarray | None = None) -> np.ndarray:
        """Fill the displacement outside `known` smoothly and fade it to zero over `ramp` pixels.
        Inside the head, within SEAM_PX of its outline, the mesh's displacement eases into the fill:
        a step there, sampled on the working grid, tore the jaw's edge when the mouth opened wide."""
        k = known.astype(np.float32)
        if k.sum() == 0:
            return np.zeros_like(d)
        ww, wh = size
        s_small = max(1.0, 0.02 * max(ww, wh))
        s_large = max(2.0, 0.12 * max(ww, wh))
        ks, ds = cv2.GaussianBlur(k, (0, 0), s_small), cv2.GaussianBlur(d, (0, 0), s_small)
        # the wide blur runs on a 4x smaller grid: same result for a smooth field, 16x less work
        small = (max(2, ww // 4), max(2, wh // 4))
        kl = cv2.resize(cv2.GaussianBlur(cv2.resize(k, small, interpolation=cv2.INTER_AREA), (0, 0), s_large / 4),
                        (ww, wh), interpolation=cv2.INTER_LINEAR)
        dl = cv2.resize(cv2.GaussianBlur(cv2.resize(d, small, interpolation=cv2.INTER_AREA), (0, 0), s_large / 4),
                        (ww, wh), interpolation=cv2.INTER_LINEAR)
        near = ds / np.maximum(ks, 1e-6)[..., None]
        far = dl / np.maximum(kl, 1e-6)[..., None]
        a = np.clip(ks / 0.2, 0.0, 1.0)[..., None]
        fill = a * near + (1 - a) * far
        dist = cv2.distanceTransform((1 - known).astype(np.uint8), cv2.DIST_L2, 5)
        fade = (1.0 - _smoothstep(dist / max(ramp, 1.0)))[..., None]
        if covered is not None:
            inside = cv2.distanceTransform(covered.astype(np.uint8), cv2.DIST_L2, 5)
            a = _smoothstep(inside / SEAM_PX)[..., None]
            d = a * d + (1 - a) * fill
        return np.where(known[..., None], d, fill * fade).astype(np.float32)

    @staticmethod
    def _composite_mouth(warped, interior, colour, size):
        rw, rh = size
        alpha = cv2.resize(interior.astype(np.float32), (rw, rh), interpolation=cv2.INTER_LINEAR)
        # tighten the upsampled coverage to a soft edge of about two output pixels
        alpha = _smoothstep((alpha - 0.15) / 0.7)[..., None]
        col = cv2.resize(colour.astype(np.float32), (rw, rh), interpolation=cv2.INTER_LINEAR) * 255.0
        out = warped.astype(np.float32) * (1 - alpha) + np.clip(col, 0, 255) * alpha
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)
