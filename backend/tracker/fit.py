"""Fit a morphable model to 2D landmarks: identity once per clip, then pose + bounded expression per frame.

Each frame is a small bounded nonlinear least-squares problem (scipy's trust-region reflective
solver) with analytic Jacobians: 68 reprojection residuals, a shrinkage prior on expression,
a smoothed L1 (sparsity) prior so a few channels explain a frame rather than many overlapping
ones sharing it, and a temporal term tying each frame to the previous one (warm start + smoothing). Landmarks
cannot see the tongue, gaze or cheek puffs: those channels stay at the prior (0).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares, lsq_linear

from flowvq.facemodel.model import Camera, FaceModel, rotation_matrix

# dlib's jaw contour slides with head turn; trust it less than the inner points.
LANDMARK_WEIGHTS = np.ones(68)
LANDMARK_WEIGHTS[:17] = 0.5

# Channels whose landmark motion is mostly a mix of others (gaze moves only the lids, squints
# and dimples overlap blinks and smiles): a stronger prior makes the fit prefer the primary one.
# The lip-shape channels (shrug, roll, pucker, funnel) also move the inner lips vertically: on a real
# face they soak up the person's rest mouth shape (the identity basis cannot), and with an equal
# prior small openings were then fitted as those channels relaxing while jawOpen sat at its bound 0
# (issue #14: mouth opening vs dlib's lip gap 0.2 on a barely-parting speaker). They are secondary,
# and lipsPart (lips apart without the jaw: what a barely-parting mouth does) is primary.
MOUTH_SHAPE = ("mouthShrugLower", "mouthShrugUpper", "mouthRollLower", "mouthRollUpper", "mouthPucker",
               "mouthFunnel")
SECONDARY = frozenset(
    [f"eyeLook{d}{s}" for d in ("Down", "In", "Out", "Up") for s in ("Left", "Right")]
    + [f"{n}{s}" for n in ("eyeSquint", "cheekSquint", "cheekRaise", "mouthDimple", "mouthPress",
                           "nasolabialDeepen") for s in ("Left", "Right")]
    + ["lipsTighten", "browKnit", "chinRaise", "lipBiteLower", "neckTighten",
       "tongueOut", "tongueUp", "tongueBetweenTeeth", *MOUTH_SHAPE])


@dataclass(frozen=True)
class FitConfig:
    expression_prior: float = 2.0       # L2 shrinkage of expression weights (residual unit: 1% eye width)
    secondary_factor: float = 6.0       # prior multiplier for SECONDARY channels
    identity_prior: float = 0.5         # L2 prior on identity coefficients (unit-variance basis)
    temporal_expression: float = 0.05   # tie to the previous frame's expression
    temporal_pose: float = 0.5          # tie to the previous frame's pose (radians / model units)
    identity_frames: int = 30           # key frames used to fit the identity (spread over the clip)
    identity_rounds: int = 3            # alternations of (per-frame fit, identity fit) on the key frames
    max_iter: int = 15
    sparsity: float = 1.0               # L1 weight on expression (few channels act at once), smoothed below
    sparsity_eps: float = 0.02          # |e| is smoothed as sqrt(e^2+eps^2)-eps (quadratic below eps)


def _drot(angles: np.ndarray) -> list[np.ndarray]:
    """Derivatives of R = Rz(roll) Ry(yaw) Rx(pitch) with respect to pitch, yaw, roll."""
    p, y, r = angles
    cp, sp, cy, sy, cr, sr = np.cos(p), np.sin(p), np.cos(y), np.sin(y), np.cos(r), np.sin(r)
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    drx = np.array([[0, 0, 0], [0, -sp, -cp], [0, cp, -sp]])
    dry = np.array([[-sy, 0, cy], [0, 0, 0], [-cy, 0, -sy]])
    drz = np.array([[-sr, -cr, 0], [cr, -sr, 0], [0, 0, 0]])
    return [rz @ ry @ drx, rz @ dry @ rx, drz @ ry @ rx]


def bounded_gauss_newton(fun, jac, x, lo, hi, iters: int, tol: float = 1e-6) -> np.ndarray:
    """Levenberg-damped Gauss-Newton; each step is a convex bounded linear least squares (BVLS)."""
    r = fun(x)
    cost = r @ r
    mu = 1e-3
    for _ in range(iters):
        j = jac(x)
        n = j.shape[1]
        a = np.concatenate([j, np.sqrt(mu) * np.diag(np.sqrt((j * j).sum(0) + 1e-9))])
        b = np.concatenate([-r, np.zeros(n)])
        lo_s, hi_s = lo - x, hi - x
        step = lsq_linear(a, b, bounds=(np.minimum(lo_s, 0), np.maximum(hi_s, 0)), method="bvls").x
        x_new = np.clip(x + step, lo, hi)
        r_new = fun(x_new)
        c_new = r_new @ r_new
        if c_new < cost:
            done = cost - c_new < tol * max(cost, 1e-12)
            x, r, cost, mu = x_new, r_new, c_new, max(mu / 5, 1e-7)
            if done:
                break
        else:
            mu *= 10
            if mu > 1e6:
                break
    return x


class LandmarkFitter:
    """Holds one model's landmark basis and a camera; fits frames and identities."""

    def __init__(self, model: FaceModel, camera: Camera, config: FitConfig = FitConfig()):
        self.model, self.camera, self.config = model, camera, config
        lm = model.landmarks68
        self.base = model.neutral[lm].astype(np.float64)                      # (68,3)
        self.ident = model.identity_basis[:, lm].astype(np.float64)           # (K,68,3)
        self.expr = model.deltas[:, lm].astype(np.float64)                    # (64,68,3)
        bounds = getattr(model, "expression_bounds", None)
        if bounds is None:
            bounds = np.tile([0.0, 1.0], (64, 1))
        self.lo, self.hi = bounds[:, 0].astype(float), bounds[:, 1].astype(float)
        # channels the landmarks cannot see are pinned (tiny range) so they stay at the prior
        visible = np.abs(self.expr).max(axis=(1, 2)) > 1e-4
        self.free = visible & model.has_channel
        self.scale = max(model.eye_corner_distance(), 1e-6)
        self.w = np.repeat(LANDMARK_WEIGHTS, 2)
        factor = np.array([config.secondary_factor if n in SECONDARY else 1.0 for n in model.names])
        self.prior = np.sqrt(config.expression_prior * factor)

    def shape(self, identity: np.ndarray) -> np.ndarray:
        return self.base + np.tensordot(identity, self.ident, axes=(0, 0)) if len(identity) else self.base

    def project(self, pts: np.ndarray, pose: np.ndarray) -> np.ndarray:
        rot = rotation_matrix(pose[:3])
        cam = pts @ rot.T + pose[3:]
        c = self.camera
        depth = np.maximum(-cam[:, 2], 1e-6)
        return np.stack([c.cx + c.focal * cam[:, 0] / depth, c.cy - c.focal * cam[:, 1] / depth], -1)

    def _proj_jac(self, pts: np.ndarray, pose: np.ndarray):
        """Projected points (68,2) and d(proj)/d(camera-space point) (68,2,3), plus the rotation."""
        rot = rotation_matrix(pose[:3])
        cam = pts @ rot.T + pose[3:]
        f = self.camera.focal
        s = np.maximum(-cam[:, 2], 1e-6)
        proj = np.stack([self.camera.cx + f * cam[:, 0] / s, self.camera.cy - f * cam[:, 1] / s], -1)
        j = np.zeros((len(pts), 2, 3))
        j[:, 0, 0] = f / s
        j[:, 0, 2] = f * cam[:, 0] / s ** 2
        j[:, 1, 1] = -f / s
        j[:, 1, 2] = -f * cam[:, 1] / s ** 2
        return proj, j, rot

    def initial_pose(self, obs: np.ndarray, identity: np.ndarray) -> np.ndarray:
        """Pose from PnP on the neutral landmarks (OpenCV's camera flips y and z)."""
        import cv2

        pts = self.shape(identity)
        c = self.camera
        k = np.array([[c.focal, 0, c.cx], [0, c.focal, c.cy], [0, 0, 1.0]])
        flip = np.diag([1.0, -1.0, -1.0])
        ok, rvec, tvec = cv2.solvePnP(pts.astype(np.float64), obs.astype(np.float64), k, None,
                                      flags=cv2.SOLVEPNP_EPNP)
        if ok:
            rot = flip @ cv2.Rodrigues(rvec)[0]
            t = flip @ tvec.ravel()
            yaw = np.arcsin(np.clip(-rot[2, 0], -1, 1))
            pitch, roll = np.arctan2(rot[2, 1], rot[2, 2]), np.arctan2(rot[1, 0], rot[0, 0])
            pose = np.array([pitch, yaw, roll, *t])
            if t[2] < 0 and abs(pitch) < 1.2 and abs(yaw) < 1.3:
                return pose
        # fallback: frontal, at the distance that matches the landmark spread
        spread = np.linalg.norm(obs[45] - obs[36])
        tz = -c.focal * self.scale / max(spread, 1e-6)
        ctr = obs.mean(0)
        return np.array([0, 0, 0, (ctr[0] - c.cx) * -tz / c.focal, -(ctr[1] - c.cy) * -tz / c.focal, tz])

    def fit_frame(self, obs, identity, init_pose=None, init_expr=None, prev_pose=None, prev_expr=None):
        """Pose (6,) and expression (64,) for one frame of observed landmarks (68,2) in pixels."""
        cfg = self.config
        identity = np.asarray(identity, float)
        pts0 = self.shape(identity)
        free = np.where(self.free)[0]
        nf = len(free)
        pose0 = self.initial_pose(obs, identity) if init_pose is None else np.asarray(init_pose, float)
        e0 = np.zeros(64) if init_expr is None else np.clip(init_expr, self.lo, self.hi)
        spread = max(np.linalg.norm(obs[45] - obs[36]), 1e-3)
        px = spread / 100.0                         # residual unit: 1% of the eye-corner distance
        lam_e = self.prior[free]
        lam_te = np.sqrt(cfg.temporal_expression) if prev_expr is not None else 0.0
        lam_tp = np.sqrt(cfg.temporal_pose) if prev_pose is not None else 0.0
        pe = np.zeros(64) if prev_expr is None else np.asarray(prev_expr, float)
        pp = np.zeros(6) if prev_pose is None else np.asarray(prev_pose, float)
        tscale = np.array([1, 1, 1, 1 / self.scale, 1 / self.scale, 1 / self.scale])  # units -> eye widths

        def unpack(p):
            e = e0.copy()
            e[free] = p[6:]
            return p[:6], e

        sp, eps = cfg.sparsity, cfg.sparsity_eps

        def l1_res(v):
            # residual whose square is 2*sp*(sqrt(v^2+eps^2)-eps): an L1 penalty in least-squares form
            return np.sign(v) * np.sqrt(2 * sp * (np.sqrt(v * v + eps * eps) - eps))

        def l1_jac(v):
            q = np.sqrt(v * v + eps * eps)
            h = q - eps
            small = h < 1e-12
            return np.where(small, np.sqrt(sp / eps), sp * np.abs(v) / (q * np.sqrt(2 * sp * np.maximum(h, 1e-12))))

        def fun(p):
            pose, e = unpack(p)
            pts = pts0 + np.tensordot(e, self.expr, axes=(0, 0))
            proj = self.project(pts, pose)
            r = [((proj - obs) / px).ravel() * self.w, lam_e * e[free]]
            if lam_te:
                r.append(lam_te * (e[free] - pe[free]))
            if lam_tp:
                r.append(lam_tp * (pose - pp) * tscale)
            if sp:
                r.append(l1_res(e[free]))
            return np.concatenate(r)

        def jac(p):
            pose, e = unpack(p)
            pts = pts0 + np.tensordot(e, self.expr, axes=(0, 0))
            _, jp, rot = self._proj_jac(pts, pose)
            n = len(pts)
            rows = []
            jr = np.zeros((n, 2, 6 + nf))
            for a, dr in enumerate(_drot(pose[:3])):
                jr[:, :, a] = np.einsum("nij,nj->ni", jp, pts @ dr.T)
            jr[:, :, 3:6] = jp
            de = np.einsum("kj,fnj->nkf", rot, self.expr[free])          # (n,3,nf)
            jr[:, :, 6:] = np.einsum("nij,njf->nif", jp, de)
            rows.append(jr.reshape(2 * n, -1) / px * self.w[:, None])
            prior = np.zeros((nf, 6 + nf))
            prior[:, 6:] = np.diag(lam_e)
            rows.append(prior)
            if lam_te:
                t = np.zeros((nf, 6 + nf))
                t[:, 6:] = np.eye(nf) * lam_te
                rows.append(t)
            if lam_tp:
                t = np.zeros((6, 6 + nf))
                t[:, :6] = np.diag(lam_tp * tscale)
                rows.append(t)
            if sp:
                t = np.zeros((nf, 6 + nf))
                t[:, 6:] = np.diag(l1_jac(e[free]))
                rows.append(t)
            return np.concatenate(rows)

        x0 = np.concatenate([pose0, e0[free]])
        lo = np.concatenate([np.full(6, -np.inf), self.lo[free]])
        hi = np.concatenate([np.full(6, np.inf), self.hi[free]])
        lo[:3], hi[:3] = -np.pi, np.pi
        pose, e = unpack(bounded_gauss_newton(fun, jac, np.clip(x0, lo, hi), lo, hi, cfg.max_iter))
        rms = float(np.sqrt(np.mean(((self.project(pts0 + np.tensordot(e, self.expr, axes=(0, 0)), pose) - obs)) ** 2)))
        return pose, e, rms

    def fit_identity(self, obs_list, poses, exprs) -> np.ndarray:
        """Identity (K,) that best explains several frames with their poses and expressions fixed."""
        k = self.ident.shape[0]
        if k == 0:
            return np.zeros(0)
        lam = np.sqrt(self.config.identity_prior)

        def fun(a):
            r = [lam * a]
            for obs, pose, e in zip(obs_list, poses, exprs):
                pts = self.shape(a) + np.tensordot(e, self.expr, axes=(0, 0))
                px = max(np.linalg.norm(obs[45] - obs[36]), 1e-3) / 100.0
                r.append(((self.project(pts, pose) - obs) / px).ravel() * self.w)
            return np.concatenate(r)

        def jac(a):
            rows = [np.eye(k) * lam]
            for obs, pose, e in zip(obs_list, poses, exprs):
                pts = self.shape(a) + np.tensordot(e, self.expr, axes=(0, 0))
                _, jp, rot = self._proj_jac(pts, pose)
                px = max(np.linalg.norm(obs[45] - obs[36]), 1e-3) / 100.0
                di = np.einsum("ij,knj->nik", rot, self.ident)
                rows.append(np.einsum("nij,njk->nik", jp, di).reshape(-1, k) / px * self.w[:, None])
            return np.concatenate(rows)

        res = least_squares(fun, np.zeros(k), jac=jac, method="trf", max_nfev=50)
        return res.x

    def fit_sequence(self, landmarks: np.ndarray, valid: np.ndarray, progress=None):
        """(T,68,2) landmarks, (T,) valid -> identity (K,), pose (T,6), expression (T,64), rms (T,)."""
        cfg = self.config
        t_all = len(landmarks)
        idx = np.where(valid)[0]
        k = self.ident.shape[0]
        identity = np.zeros(k)
        keys = idx[np.linspace(0, len(idx) - 1, min(cfg.identity_frames, len(idx))).round().astype(int)]
        for _ in range(cfg.identity_rounds if k else 0):
            fits = [self.fit_frame(landmarks[i], identity) for i in keys]
            identity = self.fit_identity([landmarks[i] for i in keys], [f[0] for f in fits], [f[1] for f in fits])
        pose = np.zeros((t_all, 6))
        expr = np.zeros((t_all, 64))
        rms = np.full(t_all, np.nan)
        prev = None
        for n, i in enumerate(idx):
            if prev is None:
                p, e, r = self.fit_frame(landmarks[i], identity)
            else:
                p, e, r = self.fit_frame(landmarks[i], identity, init_pose=prev[0], init_expr=prev[1],
                                         prev_pose=prev[0], prev_expr=prev[1])
            pose[i], expr[i], rms[i] = p, e, r
            prev = (p, e)
            if progress is not None and n % 10 == 0:
                progress(n / max(len(idx), 1))
        return identity, pose, expr, rms
