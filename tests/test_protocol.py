"""The wire protocol on its own: array codec, framing, request validation, decoder fuzzing."""
from __future__ import annotations

import socket
import struct

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowvq_shared import messages as m
from flowvq_shared.settings import PHONE_GUIDANCE
from flowvq_shared import protocol as p


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int8", "int16", "int32",
                                   "int64", "uint8", "uint16", "uint32", "bool", ">f4", ">i8"])
def test_array_round_trip_over_dtypes(dtype):
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    out = p.unpack_message(p.pack_message({"type": "x", "a": a}))["a"]
    assert out.shape == a.shape and out.dtype == a.dtype.newbyteorder("<")
    np.testing.assert_array_equal(out, a)
    assert out.flags.writeable


def test_nan_inf_empty_and_nesting_round_trip():
    a = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], np.float32)
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    msg = {"type": "x", "id": 7, "nested": {"list": [a, {"deep": img}], "empty": np.zeros((0, 64),
           np.float32), "s": "héllo", "b": b"\x00\x01", "none": None, "flag": True}}
    out = p.unpack_message(p.pack_message(msg))
    np.testing.assert_array_equal(out["nested"]["list"][0], a)
    assert np.isnan(out["nested"]["list"][0][0]) and np.isinf(out["nested"]["list"][0][1])
    np.testing.assert_array_equal(out["nested"]["list"][1]["deep"], img)
    assert out["nested"]["empty"].shape == (0, 64)
    assert out["nested"]["s"] == "héllo" and out["nested"]["b"] == b"\x00\x01"
    assert out["nested"]["none"] is None and out["nested"]["flag"] is True


@pytest.mark.parametrize("arr", [np.array([1 + 2j]), np.array(["a"]), np.array([object()]),
                                 np.zeros(2, dtype=[("a", "f4")])])
def test_refused_dtypes_on_encode(arr):
    with pytest.raises((p.ProtocolError, TypeError)):
        p.pack_message({"type": "x", "a": arr})


@pytest.mark.parametrize("dtype", ["|O", "<c8", "|V4", "<U1", "|S1", "<M8[s]", "nonsense"])
def test_refused_dtypes_on_decode(dtype):
    raw = msgpack.packb({"type": "x", "a": {"__ndarray__": True, "dtype": dtype, "shape": [1],
                                            "data": b"\x00" * 8}})
    with pytest.raises(p.ProtocolError) as e:
        p.unpack_message(raw)
    assert e.value.code in (p.BAD_REQUEST, p.BAD_FRAME)


def test_array_byte_length_must_match_shape():
    raw = msgpack.packb({"type": "x", "a": {"__ndarray__": True, "dtype": "<f4", "shape": [3],
                                            "data": b"\x00" * 8}})
    with pytest.raises(p.ProtocolError, match="needs 12"):
        p.unpack_message(raw)


def test_absurd_shape_refused_without_allocating():
    raw = msgpack.packb({"type": "x", "a": {"__ndarray__": True, "dtype": "<f4",
                                            "shape": [10**9, 64], "data": b""}})
    with pytest.raises(p.ProtocolError) as e:
        p.unpack_message(raw)
    assert e.value.code == p.TOO_LARGE


def test_frame_header_and_limit():
    frame = p.encode_frame({"type": "ping", "id": 1})
    (n,) = struct.unpack(">I", frame[:4])
    assert n == len(frame) - 4
    with pytest.raises(p.ProtocolError) as e:
        p.encode_frame({"type": "x", "blob": b"\x00" * 2000}, max_size=1000)
    assert e.value.code == p.TOO_LARGE


def test_socket_framing_helpers_round_trip():
    a, b = socket.socketpair()
    with a, b:
        p.send_frame(a, {"type": "progress", "id": "j", "fraction": 0.5,
                         "x": np.ones((2, 2), np.float32)})
        got = p.recv_frame(b)
        assert got["fraction"] == 0.5 and got["x"].sum() == 4
        b.sendall(struct.pack(">I", 10**9))
        with pytest.raises(p.ProtocolError):
            p.recv_frame(a, max_size=1024)


@pytest.mark.parametrize("payload", [msgpack.packb([1, 2]), msgpack.packb("x"),
                                     msgpack.packb({"id": 1}), msgpack.packb({"type": 5}),
                                     msgpack.packb({1: "int key", "type": "x"}), b"", b"\xc1"])
def test_not_a_message(payload):
    with pytest.raises(p.ProtocolError):
        p.unpack_message(payload)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=512))
def test_decoder_never_crashes_on_random_bytes(data):
    try:
        out = p.unpack_message(data)
        assert isinstance(out, dict) and isinstance(out["type"], str)
    except p.ProtocolError as e:
        assert e.code in p.ERROR_CODES


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_decoder_never_crashes_on_mutated_frames(data):
    msg = {"type": "generate", "id": 3, "emotion": "happy", "takes": 2,
           "samples": np.linspace(-1, 1, 50, dtype=np.float32), "sample_rate": 16000}
    raw = bytearray(p.pack_message(msg))
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    try:
        out = p.unpack_message(bytes(raw[:cut]))
        m.parse_request(out)
    except p.ProtocolError as e:
        assert e.code in p.ERROR_CODES


json_like = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats() | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids,
                                                              max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(m.REQUESTS)), st.dictionaries(
    st.sampled_from(["id", "audio", "samples", "sample_rate", "emotion", "intensity", "takes",
                     "seed", "fps", "temperature", "blinks", "phone_guidance", "image", "portrait", "expression", "pose",
                     "format", "model", "protocol", "token", "refine", "max_side"]),
    json_like, max_size=8))
def test_request_validation_never_crashes(kind, fields):
    try:
        req = m.parse_request({"type": kind, **fields})
        assert req.type == kind
    except p.ProtocolError as e:
        assert e.code in p.ERROR_CODES


def test_generate_request_validation_messages():
    ok = m.parse_request({"type": "generate", "id": 1, "audio": b"RIFF", "emotion": "Happy",
                          "takes": 4, "seed": 7, "fps": 23.976})
    s = ok.settings
    assert s.emotion == "happy" and s.takes == 4 and s.fps == pytest.approx(23.976) and s.blinks
    assert m.parse_request({"type": "generate", "id": 1, "audio": b"RIFF", "blinks": False}).settings.blinks is False
    assert s.phone_guidance == PHONE_GUIDANCE
    assert m.parse_request({"type": "generate", "id": 1, "audio": b"RIFF",
                            "phone_guidance": 0}).settings.phone_guidance == 0
    assert m.parse_request(ok.to_wire()) == ok  # the wire form reads back as the same request
    cases = [({"emotion": "bored"}, "valid: neutral"), ({"takes": 0}, "takes"),
             ({"intensity": 5.0}, "intensity"), ({"fps": float("nan")}, "fps"),
             ({"takes": "3"}, "integer"), ({"audio": None}, "exactly one"), ({"blinks": 1}, "true or false"),
             ({"phone_guidance": 1.5}, "phone_guidance"), ({"phone_guidance": "high"}, "phone_guidance")]
    for patch, text in cases:
        with pytest.raises(p.ProtocolError, match=text):
            m.parse_request({"type": "generate", "id": 1, "audio": b"RIFF", **patch})


def test_learn_actor_request_reads_its_options():
    req = m.parse_request({"type": "learn_actor", "id": 9, "uploads": ["clip1"], "name": "anna"})
    assert (req.steps, req.max_seconds, req.mouth_bank) == (200, None, True)
    small = m.parse_request({"type": "learn_actor", "id": 9, "uploads": ["clip1"], "name": "anna", "mouth_bank": False})
    assert small.mouth_bank is False and m.parse_request(small.to_wire()) == small
    for patch, text in (({"mouth_bank": 0}, "mouth_bank' must be true or false"), ({"name": "a/b"}, "actor id"),
                        ({"uploads": []}, "1 to 8"), ({"steps": 0}, "steps")):
        with pytest.raises(p.ProtocolError, match=text):
            m.parse_request({"type": "learn_actor", "id": 9, "uploads": ["clip1"], "name": "anna", **patch})


def test_render_request_rejects_nan_and_mismatched_lengths():
    exp = np.zeros((10, 64), np.float32)
    pose = np.zeros((10, 6), np.float32)
    base = {"type": "render", "id": 1, "portrait": b"x", "expression": exp, "pose": pose}
    assert m.parse_request(base).expression.shape == (10, 64)
    bad = exp.copy()
    bad[3, 3] = np.nan
    with pytest.raises(p.ProtocolError, match="NaN"):
        m.parse_request({**base, "expression": bad})
    with pytest.raises(p.ProtocolError, match="same"):
        m.parse_request({**base, "pose": pose[:5]})
    with pytest.raises(p.ProtocolError, match=r"\(T, 64\)"):
        m.parse_request({**base, "expression": np.zeros((10, 63), np.float32)})


@pytest.mark.parametrize("dtype", [",", "f4,f4", "(2,)f4", "S3", "<f16", "float32", "O", "x" * 1000])
def test_dtype_strings_outside_the_strict_form(dtype):
    raw = msgpack.packb({"type": "x", "a": {"__ndarray__": True, "dtype": dtype, "shape": [1],
                                            "data": b"\x00" * 4}})
    with pytest.raises(p.ProtocolError) as e:
        p.unpack_message(raw)
    assert e.value.code == p.BAD_REQUEST
