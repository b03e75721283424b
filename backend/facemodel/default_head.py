"""The default head, built from first principles: a parametric skull/face surface in centimetres.

Coordinates: x towards the subject's left (the viewer's right), y up, z forward (out of the
face); the origin is near the centre of the head, which is also the pose pivot.

The skin is one tensor-product grid over (azimuth u, height y), closed by a fan at the crown and
under the jaw. The mouth and the two eyes are slits cut along grid rows (the slit's interior
vertices are duplicated: one copy belongs to the upper lip / lid, one to the lower), so the lips
have a true inner contour and lids can close. A pouch hangs off the mouth slit as the oral
cavity; teeth, a tongue and two eyeballs are separate parts. Nothing here is read from a file.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.interpolate import PchipInterpolator

# Face layout (cm), chosen from common adult anthropometry (eye fissure ~2.9 cm, mouth ~5 cm).
EYE_Y = 3.4
EYE_INNER_X = 1.55
EYE_OUTER_X = 4.4
EYE_CENTER_X = 0.5 * (EYE_INNER_X + EYE_OUTER_X)
EYEBALL_RADIUS = 1.45
MOUTH_Y = -3.4
MOUTH_HALF_WIDTH = 2.5
UPPER_LID_OPEN = 0.52      # upper margin above the fissure line at its peak
LOWER_LID_OPEN = 0.30
JAW_PIVOT = np.array([0.0, 1.0, 1.5])   # temporomandibular axis (y, z used), runs along x

# Head profile keypoints: height y -> half-width A, front z, back z (before facial relief).
_PROFILE = np.array([
    # y      A     zf     zb
    [-9.0, 0.0, 3.0, 3.0],
    [-8.6, 3.0, 7.8, 0.5],
    [-7.8, 4.3, 9.5, -1.5],
    [-6.0, 5.6, 10.2, -2.8],
    [-4.0, 6.3, 10.6, -3.8],
    [-2.0, 6.8, 10.8, -5.2],
    [0.0, 7.1, 10.8, -7.0],
    [2.0, 7.3, 10.4, -8.5],
    [3.4, 7.5, 10.0, -9.3],
    [5.0, 7.6, 10.3, -9.8],
    [7.0, 7.6, 10.0, -10.0],
    [9.0, 7.4, 9.2, -9.8],
    [11.0, 6.6, 7.6, -9.0],
    [12.5, 5.0, 5.0, -7.0],
    [13.5, 2.8, 2.0, -4.0],
    [14.0, 0.0, -1.0, -1.0],
])
_A = PchipInterpolator(_PROFILE[:, 0], _PROFILE[:, 1])
_ZF = PchipInterpolator(_PROFILE[:, 0], _PROFILE[:, 2])
_ZB = PchipInterpolator(_PROFILE[:, 0], _PROFILE[:, 3])
Y_BOTTOM, Y_TOP = float(_PROFILE[0, 0]), float(_PROFILE[-1, 0])

# Part labels, per vertex.
SKIN, CAVITY, TEETH_UPPER, TEETH_LOWER, TONGUE, EYE_LEFT, EYE_RIGHT = range(7)
PART_NAMES = ("skin", "cavity", "teeth_upper", "teeth_lower", "tongue", "eye_left", "eye_right")


def gauss(x, y, cx, cy, sx, sy):
    return np.exp(-0.5 * (((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))


def smoothstep(e0, e1, t):
    s = np.clip((np.asarray(t, dtype=np.float64) - e0) / (e1 - e0), 0.0, 1.0)
    return s * s * (3 - 2 * s)


def lid_profile(t, peak):
    """Opening of a lid along the fissure, t=0 inner corner .. 1 outer corner (0 outside)."""
    t = np.clip(t, 0.0, 1.0)
    return peak * np.sin(np.pi * t) ** 0.85 * (1.0 + 0.15 * (0.5 - t))


def eye_t(x, side):
    """Position along a fissure: 0 at the inner corner, 1 at the outer one (side +1 left, -1 right)."""
    return (side * x - EYE_INNER_X) / (EYE_OUTER_X - EYE_INNER_X)


@dataclass
class Head:
    """The built head: geometry plus the per-vertex facts the shape authors need."""

    vertices: np.ndarray            # (V,3) float64
    faces: np.ndarray               # (F,3) int
    uv: np.ndarray                  # (V,2)
    part: np.ndarray                # (V,) part label
    mouth_side: np.ndarray          # (V,) +1 upper lip side, -1 lower, 0 on the corner row
    eye_side: np.ndarray            # (V,) +1 above the fissure line, -1 below, 0 on it
    grid_u: np.ndarray              # (V,) azimuth of skin vertices (nan elsewhere)
    anchor: np.ndarray              # (V,) mouth-slit vertex a cavity vertex hangs off (-1 if none)
    anchor_weight: np.ndarray       # (V,) how much of the lip motion a cavity vertex follows
    eye_centers: np.ndarray         # (2,3) left (+x) then right eyeball centres
    landmarks68: np.ndarray = field(default_factory=lambda: np.zeros(68, int))

    @property
    def skin(self) -> np.ndarray:
        return self.part == SKIN


def _knots_u(n: int) -> np.ndarray:
    s = np.linspace(-1.0, 1.0, n, endpoint=False)
    return np.pi * (0.42 * s + 0.58 * s ** 3)


def _rows_y() -> np.ndarray:
    dense = np.arange(-8.2, 6.61, 0.25)
    below = np.array([-8.85, -8.55])
    above = np.concatenate([np.arange(7.0, 11.6, 0.5), [12.2, 12.8, 13.3, 13.7]])
    return np.concatenate([below, dense, above])


def _snap(knots: np.ndarray, targets) -> np.ndarray:
    knots = knots.copy()
    for t in targets:
        knots[np.argmin(np.abs(knots - t))] = t
    return np.sort(knots)


def _surface(u: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Base head surface (no relief): superellipse cross-sections, flatter at the front."""
    a, zf, zb = _A(y), _ZF(y), _ZB(y)
    zc, d = 0.5 * (zf + zb), 0.5 * (zf - zb)
    x = a * np.sin(u)
    c = np.cos(u)
    front = np.sign(c) * np.abs(c) ** np.where(c > 0, 0.75, 1.0)
    z = zc + d * front
    return np.stack([x, y + 0 * u, z], -1)


def _relief(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Forward offset of facial features: nose, sockets, brow ridge, cheekbones, lips, chin."""
    dz = np.zeros_like(x)
    # nose: a ridge from the nasion to the tip, then back to the subnasale
    yk = np.array([-1.6, -0.9, -0.3, 0.3, 1.2, 2.4, 3.4, 4.2])
    hk = np.array([0.0, 0.7, 1.9, 2.6, 2.0, 1.2, 0.7, 0.0])
    wk = np.array([0.6, 0.75, 0.95, 0.85, 0.6, 0.5, 0.55, 0.6])
    h = np.interp(y, yk, hk)
    w = np.interp(y, yk, wk)
    dz += h * np.exp(-0.5 * (x / w) ** 2)
    for s in (-1, 1):                      # alae (nostril wings)
        dz += 0.85 * gauss(x, y, s * 1.25, -0.35, 0.5, 0.45)
        dz -= 1.0 * gauss(x, y, s * EYE_CENTER_X, EYE_Y + 0.1, 1.45, 0.95)     # eye sockets
        dz += 0.55 * gauss(x, y, s * 4.4, 1.2, 1.3, 1.1)                      # cheekbones
        dz -= 0.25 * gauss(x, y, s * (MOUTH_HALF_WIDTH + 0.1), MOUTH_Y, 0.45, 0.45)  # corners
    dz += 0.5 * np.exp(-0.5 * ((y - 5.1) / 0.6) ** 2) * np.exp(-((x / 4.8) ** 4))  # brow ridge
    dz += 0.7 * gauss(x, y, 0.0, MOUTH_Y, 2.6, 1.8)      # muzzle
    dz += 0.35 * gauss(x, y, 0.0, -2.9, 1.9, 0.45)       # upper lip
    dz += 0.45 * gauss(x, y, 0.0, -4.0, 1.7, 0.5)        # lower lip
    dz -= 0.3 * gauss(x, y, 0.0, -5.0, 1.5, 0.4)         # labiomental groove
    dz += 0.55 * gauss(x, y, 0.0, -6.8, 1.4, 0.9)        # chin
    return dz


def _eye_conform_z(x, y, ecx, ecz):
    """Front z of the sphere the lids slide over (concentric with, slightly larger than the eye)."""
    r = EYEBALL_RADIUS + 0.1
    q = r * r - (x - ecx) ** 2 - (y - EYE_Y) ** 2
    return ecz + np.sqrt(np.maximum(q, 0.0))


def eye_weight(x, y, side):
    """Region where the skin rides on the eyeball (lids), flat-topped."""
    q = ((x - side * EYE_CENTER_X) / 1.75) ** 2 + ((y - EYE_Y) / 1.05) ** 2
    return np.exp(-q ** 2)


def _uv_sphere(center, radii, n_lon, n_lat):
    lon = np.linspace(-np.pi, np.pi, n_lon, endpoint=False)
    lat = np.linspace(-np.pi / 2, np.pi / 2, n_lat + 1)[1:-1]
    lo, la = np.meshgrid(lon, lat)
    pts = np.stack([np.cos(la) * np.sin(lo), np.sin(la), np.cos(la) * np.cos(lo)], -1).reshape(-1, 3)
    pts = np.concatenate([pts, [[0, -1, 0], [0, 1, 0]]])
    verts = center + pts * radii
    faces = []
    nr = len(lat)
    for i in range(nr - 1):
        for j in range(n_lon):
            a, b = i * n_lon + j, i * n_lon + (j + 1) % n_lon
            c, d = a + n_lon, b + n_lon
            faces += [(a, b, d), (a, d, c)]
    south, north = nr * n_lon, nr * n_lon + 1
    for j in range(n_lon):
        faces.append((south, (j + 1) % n_lon, j))
        top = (nr - 1) * n_lon
        faces.append((north, top + j, top + (j + 1) % n_lon))
    uv = np.stack([(lo.ravel() / (2 * np.pi) + 0.5), (np.concatenate([la.ravel()]) / np.pi + 0.5)], -1)
    uv = np.concatenate([uv, [[0.5, 0.0], [0.5, 1.0]]])
    return verts, np.array(faces), uv


def build_head(n_u: int = 96) -> Head:
    """Build the neutral default head with its part/region labels and 68 landmark vertices."""
    ys = _rows_y()
    mouth_row = int(np.argmin(np.abs(ys - MOUTH_Y)))
    eye_row = int(np.argmin(np.abs(ys - EYE_Y)))
    ys[mouth_row], ys[eye_row] = MOUTH_Y, EYE_Y
    u_eye_in = np.arcsin(EYE_INNER_X / _A(EYE_Y))
    u_eye_out = np.arcsin(EYE_OUTER_X / _A(EYE_Y))
    u_mouth = np.arcsin(MOUTH_HALF_WIDTH / _A(MOUTH_Y))
    us = _snap(_knots_u(n_u), [-u_eye_out, -u_eye_in, u_eye_in, u_eye_out, -u_mouth, u_mouth, 0.0])
    nr, nc = len(ys), len(us)
    U, Y = np.meshgrid(us, ys)                      # (nr, nc)
    grid_index = np.arange(nr * nc).reshape(nr, nc)

    # Slits: columns strictly inside the corners get a second (lower) copy on the slit row.
    def cols_between(lo, hi):
        return [j for j in range(nc) if lo + 1e-9 < us[j] < hi - 1e-9]

    slits = {
        "mouth": (mouth_row, cols_between(-u_mouth, u_mouth)),
        "eye_right": (eye_row, cols_between(-u_eye_out, -u_eye_in)),
        "eye_left": (eye_row, cols_between(u_eye_in, u_eye_out)),
    }
    lower_copy = {}                                  # (row, col) -> index of the lower copy
    extra_u, extra_y = [], []
    n_grid = nr * nc
    for name, (row, cols) in slits.items():
        for j in cols:
            lower_copy[(row, j)] = n_grid + len(extra_u)
            extra_u.append(us[j])
            extra_y.append(ys[row])
    su = np.concatenate([U.ravel(), extra_u])
    sy = np.concatenate([Y.ravel(), extra_y])
    n_skin = len(su)
    is_lower_copy = np.zeros(n_skin, bool)
    is_lower_copy[n_grid:] = True

    # Triangles: quads between rows; rows below a slit row use the lower copies.
    faces = []
    for i in range(nr - 1):
        for j in range(nc):
            j2 = (j + 1) % nc
            a, b = grid_index[i, j], grid_index[i, j2]
            c, d = grid_index[i + 1, j], grid_index[i + 1, j2]
            # the row i is *below* row i+1; quads above a slit row keep the upper copy (default)
            # vertices on row i+1 seen from below use their lower copy
            c = lower_copy.get((i + 1, j), c)
            d = lower_copy.get((i + 1, j2), d)
            faces += [(a, b, d), (a, d, c)]
    bottom, top = n_skin, n_skin + 1
    for j in range(nc):
        j2 = (j + 1) % nc
        faces.append((bottom, grid_index[0, j2], grid_index[0, j]))
        faces.append((top, grid_index[nr - 1, j], grid_index[nr - 1, j2]))
    faces = np.array(faces)
    # Orientation check happens below (flip so normals point outwards).

    base = _surface(su, sy)
    x, y = base[:, 0], base[:, 1]
    front = np.clip(np.cos(su), 0.0, 1.0) ** 0.5
    z = base[:, 2] + _relief(x, y) * front
    skin_v = np.stack([x, y, z], -1)

    # Side of each slit line: rows above +1, below -1; slit copies explicit.
    row_idx = np.concatenate([np.repeat(np.arange(nr), nc), [r for (r, _j) in lower_copy.keys()]])
    mouth_side = np.sign(row_idx - mouth_row).astype(float)
    eye_side = np.sign(row_idx - eye_row).astype(float)
    upper_copy_mask = np.zeros(n_skin, bool)
    for (row, j), low in lower_copy.items():
        up = grid_index[row, j]
        upper_copy_mask[up] = True
        if row == mouth_row:
            mouth_side[up], mouth_side[low] = 1.0, -1.0
        else:
            eye_side[up], eye_side[low] = 1.0, -1.0

    # Open the eyes: move lid margins apart along the fissure, then lay the lids on the eyeball.
    eye_centers = np.zeros((2, 3))
    for k, side in enumerate((1, -1)):
        ecx = side * EYE_CENTER_X
        surf_z = float(_surface(np.array([np.arcsin(ecx / _A(EYE_Y))]), np.array([EYE_Y]))[0, 2]
                       + _relief(np.array([ecx]), np.array([EYE_Y]))[0])
        ecz = surf_z + 0.45 - EYEBALL_RADIUS
        eye_centers[k] = (ecx, EYE_Y, ecz)
        t = eye_t(x, side)
        near = (np.abs(x - ecx) < 2.5) & (skin_v[:, 2] > 0)
        dy_up = lid_profile(t, UPPER_LID_OPEN) * np.exp(-((y - EYE_Y) / 0.9) ** 2)
        dy_lo = -lid_profile(t, LOWER_LID_OPEN) * np.exp(-((y - EYE_Y) / 0.7) ** 2)
        dy = np.where(eye_side > 0, dy_up, np.where(eye_side < 0, dy_lo, 0.0)) * near
        skin_v[:, 1] += dy
        w = eye_weight(skin_v[:, 0], skin_v[:, 1], side) * near
        zc = _eye_conform_z(skin_v[:, 0], skin_v[:, 1], ecx, ecz)
        zc = np.where(zc > ecz + 1e-6, zc, skin_v[:, 2])
        skin_v[:, 2] = (1 - w) * skin_v[:, 2] + w * zc

    # Mouth: corners sit slightly low, lips barely parted, the inner contour rolls inwards.
    xm = skin_v[:, 0]
    in_mouth = np.exp(-((np.abs(xm) / 3.6) ** 4))
    skin_v[:, 1] -= 0.15 * (np.clip(xm / MOUTH_HALF_WIDTH, -1.4, 1.4) ** 2) * np.exp(-((skin_v[:, 1] - MOUTH_Y) / 1.5) ** 2) * in_mouth
    lipw = np.clip(1 - (xm / MOUTH_HALF_WIDTH) ** 2, 0, 1)
    skin_v[:, 1] += 0.03 * mouth_side * (row_idx == mouth_row) * lipw
    skin_v[:, 2] -= 0.3 * np.exp(-((skin_v[:, 1] - MOUTH_Y) / 0.3) ** 2) * in_mouth * (skin_v[:, 2] > 0)

    poles = np.array([[0.0, Y_BOTTOM, float(_ZF(Y_BOTTOM))], [0.0, Y_TOP, float(_ZF(Y_TOP))]])
    verts = [skin_v, poles]
    uv = [np.stack([su / (2 * np.pi) + 0.5, (sy - Y_BOTTOM) / (Y_TOP - Y_BOTTOM)], -1) * [1.0, 0.75],
          [[0.5, 0.0], [0.5, 0.75]]]
    n = n_skin + 2
    part = [np.full(n, SKIN)]
    m_side = [np.concatenate([mouth_side, [-1.0, 1.0]])]
    e_side = [np.concatenate([eye_side, [-1.0, 1.0]])]
    anchors = [np.full(n, -1)]
    anchor_w = [np.zeros(n)]
    all_faces = [faces]

    # Oral cavity: rings hanging inwards off the mouth slit, closed by a fan at the back.
    cols = slits["mouth"][1]
    jl, jr = cols[0] - 1, cols[-1] + 1
    loop = ([grid_index[mouth_row, jl]] + [grid_index[mouth_row, j] for j in cols]
            + [grid_index[mouth_row, jr]] + [lower_copy[(mouth_row, j)] for j in reversed(cols)])
    loop = np.array(loop)
    loop_side = np.concatenate([[0], np.ones(len(cols)), [0], -np.ones(len(cols))])
    lp = skin_v[loop]
    depth = [0.35, 1.1, 2.2, 3.5, 4.6]
    shrink = [0.95, 0.92, 0.85, 0.7, 0.45]
    height = [0.25, 0.8, 1.3, 1.35, 0.9]
    follow = [0.85, 0.6, 0.35, 0.15, 0.05]
    ring_start = n
    rings = []
    for k in range(len(depth)):
        xr = lp[:, 0] * shrink[k]
        prof = np.sqrt(np.clip(1 - (lp[:, 0] / MOUTH_HALF_WIDTH) ** 2, 0, 1))
        yr = MOUTH_Y + loop_side * height[k] * prof - 0.1 * k
        zr = lp[:, 2] - depth[k]
        rings.append(np.stack([xr, yr, zr], -1))
    ring_pts = np.concatenate(rings)
    back = np.array([[0.0, MOUTH_Y - 0.5, lp[:, 2].max() - 5.3]])
    cav_v = np.concatenate([ring_pts, back])
    L = len(loop)
    cav_faces = []
    prev = loop
    for k in range(len(depth)):
        cur = ring_start + k * L + np.arange(L)
        for i in range(L):
            i2 = (i + 1) % L
            cav_faces += [(prev[i], cur[i], cur[i2]), (prev[i], cur[i2], prev[i2])]
        prev = cur
    back_idx = ring_start + len(depth) * L
    for i in range(L):
        cav_faces.append((prev[i], back_idx, prev[(i + 1) % L]))
    verts.append(cav_v)
    uv.append(np.tile([[0.02, 0.95]], (len(cav_v), 1)))
    part.append(np.full(len(cav_v), CAVITY))
    m_side.append(np.concatenate([np.tile(loop_side, len(depth)), [-1.0]]))
    e_side.append(np.zeros(len(cav_v)))
    anchors.append(np.concatenate([np.tile(loop, len(depth)), [-1]]))
    anchor_w.append(np.concatenate([np.repeat(follow, L), [0.0]]))
    all_faces.append(np.array(cav_faces))
    n += len(cav_v)

    # Teeth: two arches (rectangular tubes) behind the lips; tongue: a flattened ellipsoid.
    zl = float(lp[:, 2].max())
    for label, y0, y1 in ((TEETH_UPPER, MOUTH_Y + 0.1, MOUTH_Y + 1.0), (TEETH_LOWER, MOUTH_Y - 0.95, MOUTH_Y - 0.05)):
        phi = np.linspace(-1.25, 1.25, 21)
        ax, az = 2.1 * np.sin(phi), zl - 0.85 - 2.4 * (1 - np.cos(phi))
        nx, nz = np.sin(phi), np.cos(phi)
        sec = [(0.0, y0), (0.0, y1), (-0.6, y1), (-0.6, y0)]   # (inward offset, y)
        tv = np.array([[ax[i] + o * nx[i], yy, az[i] + o * nz[i]] for i in range(len(phi)) for (o, yy) in sec])
        tf = []
        for i in range(len(phi) - 1):
            for s in range(4):
                a, b = i * 4 + s, i * 4 + (s + 1) % 4
                c, d = a + 4, b + 4
                tf += [(n + a, n + c, n + d), (n + a, n + d, n + b)]
        for cap in (0, len(phi) - 1):
            a = cap * 4
            tf += [(n + a, n + a + 1, n + a + 2), (n + a, n + a + 2, n + a + 3)]
        verts.append(tv)
        uv.append(np.tile([[0.05, 0.95]], (len(tv), 1)))
        part.append(np.full(len(tv), label))
        m_side.append(np.full(len(tv), 1.0 if label == TEETH_UPPER else -1.0))
        e_side.append(np.zeros(len(tv)))
        anchors.append(np.full(len(tv), -1))
        anchor_w.append(np.zeros(len(tv)))
        all_faces.append(np.array(tf))
        n += len(tv)
    tv, tf, tuv = _uv_sphere(np.array([0.0, MOUTH_Y - 0.75, zl - 3.0]), np.array([1.7, 0.55, 2.3]), 14, 8)
    verts.append(tv)
    uv.append(tuv * 0.1 + [0.0, 0.85])
    part.append(np.full(len(tv), TONGUE))
    m_side.append(np.full(len(tv), -1.0))
    e_side.append(np.zeros(len(tv)))
    anchors.append(np.full(len(tv), -1))
    anchor_w.append(np.zeros(len(tv)))
    all_faces.append(tf + n)
    n += len(tv)

    for k, label in enumerate((EYE_LEFT, EYE_RIGHT)):
        ev, ef, euv = _uv_sphere(eye_centers[k], np.full(3, EYEBALL_RADIUS), 20, 12)
        verts.append(ev)
        uv.append(euv * 0.1 + [0.1 * (k + 1), 0.85])
        part.append(np.full(len(ev), label))
        m_side.append(np.zeros(len(ev)))
        e_side.append(np.zeros(len(ev)))
        anchors.append(np.full(len(ev), -1))
        anchor_w.append(np.zeros(len(ev)))
        all_faces.append(ef + n)
        n += len(ev)

    head = Head(
        vertices=np.concatenate(verts), faces=np.concatenate(all_faces).astype(np.int64),
        uv=np.concatenate(uv), part=np.concatenate(part), mouth_side=np.concatenate(m_side),
        eye_side=np.concatenate(e_side),
        grid_u=np.concatenate([su, [np.nan, np.nan], np.full(n - n_skin - 2, np.nan)]),
        anchor=np.concatenate(anchors), anchor_weight=np.concatenate(anchor_w), eye_centers=eye_centers,
    )
    head.landmarks68 = _pick_landmarks(head, grid_index, lower_copy, mouth_row, eye_row, us, ys, slits)
    _orient_faces(head)
    return head


def _orient_faces(head: Head) -> None:
    """Flip skin triangles so their normals point away from the head centre."""
    v, f = head.vertices, head.faces
    skin_f = head.part[f[:, 0]] == SKIN
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    c = v[f].mean(1)
    outward = np.einsum("ij,ij->i", n, c - [0.0, 2.0, 0.0]) > 0
    if (outward[skin_f]).mean() < 0.5:
        head.faces = f[:, [0, 2, 1]]


def _pick_landmarks(head, grid_index, lower_copy, mouth_row, eye_row, us, ys, slits) -> np.ndarray:
    v = head.vertices
    skin = np.where(head.part == SKIN)[0]
    skin = skin[np.isfinite(head.grid_u[skin])]

    def nearest_xy(x, y, pool):
        d = (v[pool, 0] - x) ** 2 + (v[pool, 1] - y) ** 2 + 100.0 * (v[pool, 2] < 2.0)
        return int(pool[np.argmin(d)])

    def nearest_uy(u, y):
        d = ((head.grid_u[skin] - u) * 7.0) ** 2 + (v[skin, 1] - y) ** 2
        return int(skin[np.argmin(d)])

    lm = np.zeros(68, int)
    jaw_u = [-1.33, -1.31, -1.26, -1.18, -1.06, -0.9, -0.68, -0.38, 0.0]
    jaw_y = [3.6, 1.6, -0.4, -2.4, -4.3, -5.8, -6.9, -7.5, -7.85]
    for k in range(9):
        lm[k] = nearest_uy(jaw_u[k], jaw_y[k])
        lm[16 - k] = nearest_uy(-jaw_u[k], jaw_y[k])
    brow_x = [5.3, 4.4, 3.4, 2.4, 1.3]
    brow_y = [4.75, 5.2, 5.4, 5.35, 5.1]
    for k in range(5):
        lm[17 + k] = nearest_xy(-brow_x[k], brow_y[k], skin)
        lm[26 - k] = nearest_xy(brow_x[k], brow_y[k], skin)
    for k, yy in enumerate([3.4, 2.4, 1.4, 0.35]):
        lm[27 + k] = nearest_xy(0.0, yy, skin)
    for k, xx in enumerate([-1.1, -0.55, 0.0, 0.55, 1.1]):
        lm[31 + k] = nearest_xy(xx, -0.7 + 0.15 * abs(xx), skin)

    def slit_vertex(row, x, lower):
        js = [j for j in range(len(us)) if np.cos(us[j]) > 0]
        j = min(js, key=lambda j: abs(v[grid_index[row, j], 0] - x))
        idx = grid_index[row, j]
        return int(lower_copy.get((row, j), idx)) if lower else int(idx)

    def corner(row, x):
        j = int(np.argmin(np.abs(np.where(np.cos(us) > 0, v[grid_index[row], 0], 1e9) - x)))
        return int(grid_index[row, j]), j

    # eyes (36-41 subject's right at -x, 42-47 left)
    for base, s in ((36, -1), (42, 1)):
        outer, _ = corner(eye_row, s * EYE_OUTER_X)
        inner, _ = corner(eye_row, s * EYE_INNER_X)
        a = EYE_INNER_X + (EYE_OUTER_X - EYE_INNER_X) * np.array([0.33, 0.67])
        if s < 0:   # 36 outer, 37 38 upper (outer->inner), 39 inner, 40 41 lower (inner->outer)
            lm[36], lm[39] = outer, inner
            lm[37], lm[38] = slit_vertex(eye_row, -a[1], False), slit_vertex(eye_row, -a[0], False)
            lm[40], lm[41] = slit_vertex(eye_row, -a[0], True), slit_vertex(eye_row, -a[1], True)
        else:       # 42 inner, 43 44 upper, 45 outer, 46 47 lower (outer->inner)
            lm[42], lm[45] = inner, outer
            lm[43], lm[44] = slit_vertex(eye_row, a[0], False), slit_vertex(eye_row, a[1], False)
            lm[46], lm[47] = slit_vertex(eye_row, a[1], True), slit_vertex(eye_row, a[0], True)
    # mouth
    cr, jr = corner(mouth_row, -MOUTH_HALF_WIDTH)
    cl, jl = corner(mouth_row, MOUTH_HALF_WIDTH)
    lm[60], lm[64] = cr, cl
    lm[48], lm[54] = grid_index[mouth_row, jr - 1], grid_index[mouth_row, jl + 1]
    lower_pool = skin[head.mouth_side[skin] < 0]
    upper_pool = skin[head.mouth_side[skin] > 0]
    for k, (xx, yy) in enumerate([(-1.6, -3.05), (-0.65, -2.72), (0.0, -2.78), (0.65, -2.72), (1.6, -3.05)]):
        lm[49 + k] = nearest_xy(xx, yy, upper_pool)
    for k, (xx, yy) in enumerate([(1.6, -3.95), (0.7, -4.3), (0.0, -4.4), (-0.7, -4.3), (-1.6, -3.95)]):
        lm[55 + k] = nearest_xy(xx, yy, lower_pool)
    for k, xx in enumerate([-0.85, 0.0, 0.85]):
        lm[61 + k] = slit_vertex(mouth_row, xx, False)
    for k, xx in enumerate([0.85, 0.0, -0.85]):
        lm[65 + k] = slit_vertex(mouth_row, xx, True)
    return lm
