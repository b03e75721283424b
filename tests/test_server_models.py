"""Model-backed requests over the real protocol: the face model and the tracker."""
from __future__ import annotations

import numpy as np

from flowvq_shared.channels import EXPRESSION_NAMES

from wire import Client, require


def test_face_model_arrives_as_named_arrays(backend):
    with Client(backend.host, backend.port) as c:
        require(c, "face_model")
        r, progress = c.request({"type": "face_model", "id": "fm"})
        assert r["type"] == "result" and r["request"] == "face_model"
        assert tuple(r["names"]) == EXPRESSION_NAMES
        v = r["neutral"].shape[0]
        assert r["deltas"].shape == (64, v, 3) and r["faces"].shape[1] == 3
        assert r["faces"].max() < v and r["landmarks68"].shape == (68,)
        moved = np.abs(r["deltas"]).reshape(64, -1).max(axis=1)
        assert (moved[r["has_channel"]] > 0).all()
        jaw = EXPRESSION_NAMES.index("jawOpen")
        assert moved[jaw] > 0.5 * moved.max()  # jawOpen is one of the big shapes
        bad, _ = c.request({"type": "face_model", "id": "x", "model": "../../etc/passwd"})
        assert bad["type"] == "error" and bad["code"] == "bad_request"


def test_track_a_portrait_over_the_wire(backend, portrait_png):
    with Client(backend.host, backend.port) as c:
        require(c, "track")
        r, _ = c.request({"type": "track", "id": "t", "image": portrait_png.read_bytes()})
        assert r["type"] == "result", r
        assert r["expression"].shape == (1, 64) and r["pose"].shape == (1, 6)
        assert r["landmarks"].shape == (1, 68, 2)
        assert np.isfinite(r["expression"]).all() and float(r["confidence"][0]) > 0
        assert {"focal", "width", "height"} <= set(r["camera"])
