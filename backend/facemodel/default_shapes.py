"""The default model's 64 expression shapes and its identity space, authored from anatomy.

Each shape is a deformation of the neutral head written in terms of the head's regions: the jaw
rotates about the temporomandibular axis, lip corners travel along the cheek, lids slide over
the eyeball, brows rise and fall, cheeks puff. A delta is (deformed - neutral) at weight 1.
Left means the subject's left (+x), as in ARKit. Magnitudes are in centimetres, chosen from
typical ranges of facial movement (a wide jaw opening moves the chin ~4 cm).
"""
from __future__ import annotations

import numpy as np

from flowvq_shared.channels import CHANNEL_INDEX, N_EXPRESSION

from .default_head import (
    CAVITY, EYE_LEFT, EYE_RIGHT, EYE_Y, EYEBALL_RADIUS, JAW_PIVOT, LOWER_LID_OPEN, MOUTH_HALF_WIDTH,
    MOUTH_Y, SKIN, TEETH_LOWER, TONGUE, UPPER_LID_OPEN, Head, eye_t, eye_weight, gauss, lid_profile,
    smoothstep,
)

W = MOUTH_HALF_WIDTH
JAW_OPEN_ANGLE = 0.33     # radians at jawOpen = 1


def _rot_x(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_y(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


class _Regions:
    """Soft per-vertex weights over the neutral head, shared by the shape authors."""

    def __init__(self, head: Head):
        v = head.vertices
        self.v = v
        self.x, self.y, self.z = v[:, 0], v[:, 1], v[:, 2]
        self.head = head
        self.skin = (head.part == SKIN).astype(float)
        self.front = self.skin * smoothstep(1.0, 4.0, self.z)
        x, y = self.x, self.y
        ms = head.mouth_side
        win = np.exp(-((np.abs(x) / (W + 0.4)) ** 4))
        self.lip_window = win
        # flat over the vermilion, then fading into the skin around it
        self.upper_lip = self.front * (ms > 0) * np.exp(-(np.maximum(y - MOUTH_Y - 0.8, 0) / 0.6) ** 2) * win
        self.lower_lip = self.front * (ms < 0) * np.exp(-(np.maximum(MOUTH_Y - 1.1 - y, 0) / 0.7) ** 2) * win
        self.inner_upper = self.upper_lip * np.exp(-((y - MOUTH_Y) / 0.3) ** 2)
        self.inner_lower = self.lower_lip * np.exp(-((MOUTH_Y - y) / 0.3) ** 2)
        self.outer_upper = self.upper_lip * np.exp(-((y - MOUTH_Y - 0.6) / 0.35) ** 2)
        self.outer_lower = self.lower_lip * np.exp(-((MOUTH_Y - y - 0.9) / 0.4) ** 2)
        self.lips = self.upper_lip + self.lower_lip + self.front * (ms == 0) * np.exp(-((y - MOUTH_Y) / 0.8) ** 2) * win
        self.jaw = self._jaw_weight()

    def _jaw_weight(self):
        x, y, z, ms = self.x, self.y, self.z, self.head.mouth_side
        ax = np.abs(x)
        y_b = MOUTH_Y + np.maximum(ax - W, 0.0) * 1.15
        dist = y_b - y
        on_slit = (np.abs(y - MOUTH_Y) < 0.2) & (ms != 0) & (ax < W)
        dist = dist + np.where(on_slit, -ms * 0.5 * (1 - smoothstep(0.6 * W, W, ax)), 0.0)
        width = 0.25 + 1.2 * smoothstep(0.7 * W, 1.6 * W, ax)
        w = smoothstep(-1.0, 1.0, dist / width)
        w = w * smoothstep(-1.0, 2.5, z)
        return w * self.skin

    def corner(self, s, sx=1.0, sy=0.85):
        return self.front * gauss(self.x, self.y, s * W, MOUTH_Y, sx, sy)

    def side_x(self, s, center=1.1, sigma=1.3):
        return np.exp(-0.5 * ((self.x - s * center) / sigma) ** 2)


def _eye_lids(r: _Regions, s: int):
    """Upper and lower lid weights (1 at the margin, decaying away from it) plus the fissure profile."""
    x, y = r.x, r.y
    t = eye_t(x, s)
    prof = lid_profile(t, 1.0) / 1.0
    hu, hl = lid_profile(t, UPPER_LID_OPEN), lid_profile(t, LOWER_LID_OPEN)
    near = r.skin * (np.abs(x - s * 2.97) < 2.6) * (r.z > 2)
    es = r.head.eye_side
    up = near * (es > 0) * np.exp(-np.maximum(y - (EYE_Y + hu), 0) ** 2 / 0.5)
    lo = near * (es < 0) * np.exp(-np.maximum((EYE_Y - hl) - y, 0) ** 2 / 0.3)
    return up, lo, prof, hu, hl


def _conform_lids(r: _Regions, s: int, new: np.ndarray) -> np.ndarray:
    """Keep moved lid skin on the eyeball: z follows the sphere the lids slide over."""
    k = 0 if s > 0 else 1
    c = r.head.eye_centers[k]
    rad = EYEBALL_RADIUS + 0.1

    def sz(px, py):
        q = rad * rad - (px - c[0]) ** 2 - (py - c[1]) ** 2
        return np.sqrt(np.maximum(q, 0.0))

    w = eye_weight(r.x, r.y, s) * r.skin * (r.z > 2)
    new[:, 2] += w * (sz(new[:, 0], new[:, 1]) - sz(r.x, r.y))
    return new


def _rotate_part(r: _Regions, mask, rot, center, weight=1.0):
    v = r.v
    moved = (v - center) @ rot.T + center
    return (moved - v) * (np.asarray(weight) * mask)[:, None]


def _eyeball(r: _Regions, s: int, rot) -> np.ndarray:
    label = EYE_LEFT if s > 0 else EYE_RIGHT
    k = 0 if s > 0 else 1
    return _rotate_part(r, (r.head.part == label).astype(float), rot, r.head.eye_centers[k])


def _jaw_motion(r: _Regions, transform) -> np.ndarray:
    """Move the mandible (skin weighted, lower teeth/tongue/lower cavity rigidly)."""
    head = r.head
    moved = transform(r.v) - r.v
    w = r.jaw.copy()
    rigid = (head.part == TEETH_LOWER) | (head.part == TONGUE)
    w[rigid] = 1.0
    cav = head.part == CAVITY
    w[cav] = np.where(head.mouth_side[cav] < 0, 1.0, np.where(head.mouth_side[cav] > 0, 0.0, 0.5))
    return moved * w[:, None]


def _vec(weight, d):
    return np.asarray(weight)[:, None] * np.asarray(d, float)[None, :]


def author_expression_deltas(head: Head) -> np.ndarray:
    """(64,V,3) deltas of the default model, in channel order."""
    r = _Regions(head)
    V = len(head.vertices)
    out = np.zeros((N_EXPRESSION, V, 3))
    x, y, z = r.x, r.y, r.z
    pivot = np.array([0.0, JAW_PIVOT[1], JAW_PIVOT[2]])

    def put(name, delta, cavity_follows=True):
        delta = np.asarray(delta, float)
        if cavity_follows:
            cav = np.where((head.part == CAVITY) & (head.anchor >= 0))[0]
            delta[cav] = head.anchor_weight[cav, None] * delta[head.anchor[cav]]
        out[CHANNEL_INDEX[name]] = delta

    for s, side in ((1, "Left"), (-1, "Right")):
        up, lo, prof, hu, hl = _eye_lids(r, s)
        lids = up + lo
        # eyeBlink: the upper lid comes down over the eye to meet a barely rising lower lid
        new = r.v.copy()
        new[:, 1] += -(hu + 0.85 * hl) * up + 0.15 * hl * lo
        new[:, 0] += -s * 0.12 * prof * lo
        put(f"eyeBlink{side}", _conform_lids(r, s, new) - r.v)
        # gaze: the eyeball turns, the lids follow part of the way
        wide_prof = lids * np.clip(prof, 0, 1) ** 0.3
        new = r.v.copy()
        new[:, 1] += -0.55 * UPPER_LID_OPEN * up * prof ** 0.3 - 0.18 * lo * prof ** 0.3
        put(f"eyeLookDown{side}", _conform_lids(r, s, new) - r.v + _eyeball(r, s, _rot_x(0.35)))
        new = r.v.copy()
        new[:, 1] += 0.25 * UPPER_LID_OPEN * up * prof ** 0.3 + 0.12 * lo * prof ** 0.3
        put(f"eyeLookUp{side}", _conform_lids(r, s, new) - r.v + _eyeball(r, s, _rot_x(-0.35)))
        new = r.v.copy()
        new[:, 0] += -s * 0.2 * wide_prof
        put(f"eyeLookIn{side}", _conform_lids(r, s, new) - r.v + _eyeball(r, s, _rot_y(-s * 0.4)))
        new = r.v.copy()
        new[:, 0] += s * 0.2 * wide_prof
        put(f"eyeLookOut{side}", _conform_lids(r, s, new) - r.v + _eyeball(r, s, _rot_y(s * 0.4)))
        # eyeSquint: the lower lid rises and the upper lid drops a little; the cheek bunches
        new = r.v.copy()
        new[:, 1] += 0.6 * hl * lo - 0.12 * hu * up + 0.15 * r.front * gauss(x, y, s * 3.4, 2.2, 1.3, 0.6)
        put(f"eyeSquint{side}", _conform_lids(r, s, new) - r.v)
        # eyeWide: the upper lid lifts off the iris
        new = r.v.copy()
        new[:, 1] += 0.45 * hu * up - 0.1 * hl * lo
        put(f"eyeWide{side}", _conform_lids(r, s, new) - r.v)

    # jaw
    rot = _rot_x(JAW_OPEN_ANGLE)
    put("jawOpen", _jaw_motion(r, lambda p: (p - pivot) @ rot.T + pivot), cavity_follows=False)
    put("jawForward", _jaw_motion(r, lambda p: p + [0.0, 0.0, 0.7]), cavity_follows=False)
    yaw = _rot_y(0.06)
    put("jawLeft", _jaw_motion(r, lambda p: (p - pivot) @ yaw.T + pivot + [0.45, 0, 0]), cavity_follows=False)
    put("jawRight", _jaw_motion(r, lambda p: (p - pivot) @ yaw.T.T + pivot - [0.45, 0, 0]), cavity_follows=False)

    # lips
    close = _rot_x(-0.28)
    lower_close = r.front * (head.mouth_side < 0) * np.exp(-((MOUTH_Y - y) / 1.6) ** 2) * r.lip_window
    d = ((r.v - pivot) @ close.T + pivot - r.v) * lower_close[:, None]
    d += _vec(r.upper_lip, [0, -0.3, 0.05])
    put("mouthClose", d)
    lipz = r.lips
    for s, side in ((1, "Left"), (-1, "Right")):
        c = r.corner(s, 1.3, 0.9)
        cheek = r.front * gauss(x, y, s * 3.6, -1.2, 1.3, 1.6)
        d = _vec(c, [s * 0.7, 1.0, -0.85]) + _vec(cheek, [s * 0.15, 0.35, 0.15])
        d += _vec(r.front * gauss(x, y, s * 3.4, 2.4, 1.2, 0.5), [0, 0.12, 0])
        put(f"mouthSmile{side}", d)
        put(f"mouthFrown{side}", _vec(r.corner(s, 1.1, 0.9), [s * 0.15, -0.7, -0.1])
            + _vec(r.lower_lip * r.side_x(s, 1.6, 1.0), [0, -0.15, 0]))
        put(f"mouthDimple{side}", _vec(r.corner(s, 0.9, 0.8), [s * 0.4, 0.05, -0.5]))
        put(f"mouthStretch{side}", _vec(r.corner(s, 1.1, 0.9), [s * 0.65, -0.35, -0.25])
            + _vec(r.lower_lip * r.side_x(s, 1.5, 1.1), [s * 0.2, -0.3, 0]))
        press = r.side_x(s, 1.2, 1.5)
        put(f"mouthPress{side}", _vec(r.upper_lip * press, [0, -0.05, 0.0])
            + _vec(r.lower_lip * press, [0, 0.25, 0.05])
            + _vec(r.front * gauss(x, y, s * 1.5, -6.3, 2.5, 2.0), [0, 0.15, 0.1]))
        put(f"mouthLowerDown{side}", _vec(r.lower_lip * r.side_x(s, 1.1, 1.3), [s * 0.05, -0.55, -0.05])
            + _vec(r.front * (head.mouth_side < 0) * gauss(x, y, s * 1.2, -6.5, 1.8, 1.5), [0, -0.3, -0.15]))
        put(f"mouthUpperUp{side}", _vec(r.upper_lip * r.side_x(s, 1.1, 1.3), [s * 0.05, 0.5, 0])
            + _vec(r.corner(s, 0.8, 0.8), [0, 0.25, 0])
            + _vec(r.front * gauss(x, y, s * 1.5, -1.8, 0.9, 0.8), [0, 0.15, 0]))
        lateral_cheek = r.skin * gauss(x, y, s * 5.8, -1.5, 1.8, 2.4) * smoothstep(1.0, 4.0, z)
        put(f"cheekSquint{side}", _vec(r.front * gauss(x, y, s * 3.6, 1.7, 1.4, 0.9), [0, 0.3, 0.1])
            + _vec(lateral_cheek, [0, 0.35, 0.3])
            + _vec(_eye_lids(r, s)[1] * _eye_lids(r, s)[2], [0, 0.1, 0]))
        put(f"noseSneer{side}", _vec(r.front * gauss(x, y, s * 1.25, -0.3, 0.8, 0.8), [0, 0.4, 0.0])
            + _vec(r.upper_lip * r.side_x(s, 1.4, 1.2), [0, 0.55, 0]) + _vec(r.corner(s, 0.8, 0.8), [0, 0.35, 0])
            + _vec(r.front * gauss(x, y, s * 0.8, 2.0, 0.5, 0.6), [0, 0.15, -0.05]))
        put(f"browOuterUp{side}", _vec(r.front * gauss(x, y, s * 4.4, 5.3, 1.3, 1.4), [0, 0.5, 0]))
        brow = r.front * gauss(x, y, s * 3.0, 5.4, 2.0, 1.0) * (1 + 0.5 * np.exp(-0.5 * ((x - s * 1.5) / 0.9) ** 2))
        put(f"browDown{side}", _vec(brow, [-s * 0.35, -0.3, 0.25])
            + _vec(r.front * gauss(x, y, s * 2.5, 4.3, 1.6, 0.5), [0, -0.12, 0]))
        put(f"cheekRaise{side}", _vec(r.front * gauss(x, y, s * 3.5, 1.5, 1.5, 1.0), [0, 0.4, 0.12])
            + _vec(lateral_cheek, [0, 0.45, 0.35])
            + _vec(_eye_lids(r, s)[1] * _eye_lids(r, s)[2], [0, 0.18, 0])
            + _vec(r.corner(s, 1.2, 1.0), [s * 0.05, 0.2, 0]))
        put(f"nasolabialDeepen{side}", _vec(r.front * gauss(x, y, s * 2.6, -1.6, 0.8, 1.2), [s * 0.05, 0.22, 0.18])
            + _vec(r.upper_lip * r.side_x(s, 1.4, 0.9), [0, 0.15, 0]))

    put("mouthFunnel", _vec(r.corner(1, 1.0, 0.9), [-0.55, 0.05, 0.4]) + _vec(r.corner(-1, 1.0, 0.9), [0.55, 0.05, 0.4])
        + _vec(r.upper_lip * r.side_x(0, 0, 1.4), [0, 0.35, 0.55]) + _vec(r.lower_lip * r.side_x(0, 0, 1.4), [0, -0.4, 0.55]))
    put("mouthPucker", _vec(r.corner(1, 1.1, 0.9), [-0.6, 0.15, 0.6]) + _vec(r.corner(-1, 1.1, 0.9), [0.6, 0.15, 0.6])
        + _vec(lipz, [0, 0.0, 0.55]) + _vec(r.upper_lip, [0, -0.05, 0]) + _vec(r.lower_lip, [0, 0.1, 0]))
    mouth_region = r.front * gauss(x, y, 0.0, MOUTH_Y - 0.3, 2.4, 1.3)
    put("mouthLeft", _vec(mouth_region, [0.7, 0.0, 0.0]) + _vec(r.corner(1, 0.9, 0.8), [0, 0, -0.25]))
    put("mouthRight", _vec(mouth_region, [-0.7, 0.0, 0.0]) + _vec(r.corner(-1, 0.9, 0.8), [0, 0, -0.25]))
    put("mouthRollLower", _vec(r.inner_lower, [0, 0.12, -0.55]) + _vec(r.outer_lower, [0, 0.4, -0.2]))
    put("mouthRollUpper", _vec(r.inner_upper, [0, 0.05, -0.55]) + _vec(r.outer_upper, [0, -0.3, -0.35]))
    chin = r.front * gauss(x, y, 0.0, -6.3, 2.0, 1.3)
    put("mouthShrugLower", _vec(r.lower_lip, [0, 0.35, 0.25]) + _vec(chin, [0, 0.3, 0.15]))
    put("mouthShrugUpper", _vec(r.upper_lip, [0, 0.3, 0.03]))
    put("browInnerUp", _vec(r.front * (gauss(x, y, 1.5, 5.3, 1.2, 1.3) + gauss(x, y, -1.5, 5.3, 1.2, 1.3)), [0, 0.55, 0]))
    puff = r.front * (gauss(x, y, 3.9, -2.6, 1.4, 1.6) + gauss(x, y, -3.9, -2.6, 1.4, 1.6))
    put("cheekPuff", _vec(puff, [0, 0, 0.35]) + np.stack([0.6 * np.sign(x) * puff, 0 * x, 0 * x], -1)
        + _vec(lipz, [0, 0, 0.6]) + _vec(r.corner(1, 0.8, 0.8), [-0.2, 0, 0.3]) + _vec(r.corner(-1, 0.8, 0.8), [0.2, 0, 0.3]))

    # tongue
    tongue = (head.part == TONGUE).astype(float)
    tz0 = z[head.part == TONGUE].min()
    tz1 = z[head.part == TONGUE].max()
    tip = tongue * smoothstep(tz0, tz1, z)
    put("tongueOut", _vec(tongue, [0, -0.5, 2.8]) + _vec(tip, [0, -0.2, 0.4])
        + _vec(r.lower_lip * r.side_x(0, 0, 1.5), [0, -0.3, 0.2]), cavity_follows=True)
    put("tongueUp", _vec(tip ** 2, [0, 0.9, 0.2]))
    put("tongueBetweenTeeth", _vec(tip, [0, 0.25, 1.2]) + _vec(r.upper_lip * r.side_x(0, 0, 1.5), [0, 0.1, 0])
        + _vec(r.lower_lip * r.side_x(0, 0, 1.5), [0, -0.2, 0.05]))
    put("lipBiteLower", _vec(r.lower_lip * np.exp(-((MOUTH_Y - y) / 0.8) ** 2), [0, 0.45, -0.55]))
    put("lipsPart", _vec(r.upper_lip * r.side_x(0, 0, 1.5), [0, 0.12, 0]) + _vec(r.lower_lip * r.side_x(0, 0, 1.5), [0, -0.3, 0]))
    put("lipsTighten", _vec(r.upper_lip, [0, -0.15, -0.15]) + _vec(r.lower_lip, [0, 0.15, -0.15]))
    put("chinRaise", _vec(chin, [0, 0.35, 0.2]) + _vec(r.lower_lip, [0, 0.25, 0.25]))
    knit = np.zeros((V, 3))
    for s in (1, -1):
        g = r.front * gauss(x, y, s * 1.8, 5.1, 1.2, 1.0)
        knit += _vec(g, [-s * 0.3, -0.12, 0.03])
    put("browKnit", knit)
    neck = r.skin * smoothstep(-7.5, -8.6, y) * smoothstep(-2.0, 4.0, z)
    put("neckTighten", _vec(neck, [0, -0.3, -0.2]) + _vec(r.corner(1, 1.0, 1.0), [0.25, -0.3, 0])
        + _vec(r.corner(-1, 1.0, 1.0), [-0.25, -0.3, 0]))
    return out.astype(np.float32)


IDENTITY_NAMES: tuple[str, ...] = (
    "faceWidth", "lowerFaceLength", "jawWidth", "chinForward", "noseForward", "noseWidth",
    "lipFullness", "mouthWidth", "eyeSpacing", "browHeight", "cheekFullness", "midfaceForward",
)


def author_identity_basis(head: Head) -> np.ndarray:
    """(K,V,3) identity directions, each scaled to about one standard deviation of adults."""
    r = _Regions(head)
    v = head.vertices
    x, y, z = r.x, r.y, r.z
    V = len(v)
    basis = []
    basis.append(np.stack([0.05 * x, 0 * x, 0 * x], -1))
    low = smoothstep(1.0, -8.0, y)
    basis.append(np.stack([0 * x, -0.5 * low, 0.05 * low * (z > 2)], -1))
    jaw = smoothstep(-1.0, -6.0, y) * (1 - np.exp(-((x / 2.5) ** 2)))
    basis.append(np.stack([0.07 * x * jaw, 0 * x, 0 * x], -1))
    chin = r.front * gauss(x, y, 0, -7.0, 2.2, 1.4)
    basis.append(_vec(chin, [0, -0.1, 0.5]))
    nose = r.front * np.exp(-0.5 * (x / 0.9) ** 2) * smoothstep(-1.5, -0.5, y) * smoothstep(3.8, 2.5, y)
    basis.append(_vec(nose, [0, 0, 0.35]))
    wing = r.front * gauss(x, y, 0, -0.3, 1.6, 0.8)
    basis.append(np.stack([0.12 * x * wing, 0 * x, 0 * x], -1))
    basis.append(_vec(r.upper_lip * np.exp(-((y - MOUTH_Y) / 0.5) ** 2), [0, 0.0, 0.12])
                 + _vec(r.upper_lip, [0, 0.1, 0.05]) + _vec(r.lower_lip, [0, -0.12, 0.05]))
    basis.append(np.stack([0.1 * x * r.front * gauss(x, y, 0, MOUTH_Y, 3.0, 1.2), 0 * x, 0 * x], -1))
    eyes = np.zeros((V, 3))
    for s, label in ((1, EYE_LEFT), (-1, EYE_RIGHT)):
        g = r.skin * gauss(x, y, s * 2.97, EYE_Y, 1.8, 1.4)
        g = np.where(head.part == label, 1.0, g)
        eyes[:, 0] += s * 0.25 * g
    basis.append(eyes)
    basis.append(_vec(r.front * np.exp(-0.5 * ((y - 5.3) / 0.9) ** 2) * np.exp(-((x / 5.5) ** 4)), [0, 0.3, 0]))
    cheeks = r.front * (gauss(x, y, 3.8, -1.5, 1.6, 2.0) + gauss(x, y, -3.8, -1.5, 1.6, 2.0))
    basis.append(np.stack([0.2 * np.sign(x) * cheeks, 0 * x, 0.25 * cheeks], -1))
    mid = r.front * gauss(x, y, 0, -2.0, 3.5, 3.0)
    basis.append(_vec(mid, [0, 0, 0.4]))
    out = np.stack(basis)
    # inner parts follow the skin they hang off (cavity) or the jaw/teeth region they sit in
    cav = np.where((head.part == CAVITY) & (head.anchor >= 0))[0]
    out[:, cav] = out[:, head.anchor[cav]] * head.anchor_weight[None, cav, None]
    return out.astype(np.float32)
