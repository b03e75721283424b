"""VQIG on tiny configs: code-index round trip, both training stages learn, checkpoints round-trip."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from flowvq.errors import CheckpointError
from flowvq.training.vqig import TrainSettings, generator_batch, to_tensor, train_codebook, train_generator
from flowvq.training.vqig_data import PlateData
from flowvq.vqig import (CodebookConfig, GeneratorConfig, VQIGGenerator, load_codebook, load_generator, refine,
                         save_codebook, save_generator)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine: extra threads only wait for each other."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def crops():
    """32 px crops of a real photo (skimage's astronaut ships inside the package), jittered."""
    import cv2
    from skimage import data

    img = data.astronaut()
    rng = np.random.default_rng(0)
    out = []
    for _ in range(32):
        x, y = rng.integers(150, 190, 2)
        out.append(cv2.resize(img[y - 20:y + 180, x:x + 200], (32, 32), interpolation=cv2.INTER_AREA))
    return np.stack(out)


@pytest.fixture(scope="module")
def codebook(crops):
    torch.manual_seed(0)
    model, disc, hist = train_codebook(crops, CodebookConfig.tiny(),
                                       TrainSettings(steps=80, batch=8, lr=3e-4, disc_start=40), device="cpu")
    return model, disc, hist


@pytest.fixture(scope="module")
def plate_data(crops):
    """Target = crop t; warped = a soft, slightly misplaced version of it, as a geometry warp gives."""
    import cv2

    rng = np.random.default_rng(1)
    warped = []
    for t in range(len(crops)):
        dx, dy = rng.uniform(-1, 1, 2)
        m = np.float32([[1, 0, dx], [0, 1, dy]])
        shifted = cv2.warpAffine(crops[t], m, (32, 32), borderMode=cv2.BORDER_REFLECT)
        warped.append(cv2.GaussianBlur(shifted, (0, 0), 1.0))
    coeffs = rng.normal(size=(len(crops), 70)).astype(np.float32)
    return PlateData(crops, np.stack(warped), coeffs, np.zeros(len(crops), np.int64), crops[:1])


def _mean(hist, key, sl):
    return float(np.mean([r[key] for r in hist[sl]]))


def test_paper_config_sizes():
    cfg = CodebookConfig()
    assert (cfg.image_size, cfg.latent_size, cfg.embed_dim, cfg.n_codes) == (512, 16, 256, 1024)
    gcfg = GeneratorConfig()
    assert gcfg.codebook == cfg and gcfg.coeff_dim == 70


def test_code_index_round_trip(codebook, crops):
    model = codebook[0]
    x = to_tensor(crops[:4], "cpu")
    with torch.no_grad():
        z_q, idx, _ = model.encode(x)
        assert idx.shape == (4, model.cfg.latent_size, model.cfg.latent_size)
        assert torch.allclose(model.quantizer.get_codebook_feat(idx), z_q, atol=1e-6)
        assert torch.allclose(model.decode_code(idx), model.decode(z_q), atol=1e-5)
        # re-encoding the quantised latent picks the same entries
        assert torch.equal(model.quantizer.indices(z_q), idx)


def test_codebook_training_losses_fall(codebook):
    hist = codebook[2]
    assert _mean(hist, "l1", slice(-10, None)) < 0.7 * _mean(hist, "l1", slice(0, 10))
    assert _mean(hist, "total", slice(-10, None)) < _mean(hist, "total", slice(0, 10))
    assert any(r["d"] > 0 for r in hist[40:])  # the adversarial part really ran


def test_generator_training_and_checkpoint(codebook, plate_data, tmp_path):
    model, disc, _ = codebook
    torch.manual_seed(0)
    frozen = {k: v.clone() for k, v in model.state_dict().items()}
    gen, gdisc, hist = train_generator(plate_data, model, GeneratorConfig.tiny(codebook=model.cfg),
                                       TrainSettings(steps=30, batch=8, lr=1e-3, code_steps=30), device="cpu")
    assert _mean(hist, "ce", slice(20, 30)) < 0.75 * _mean(hist, "ce", slice(0, 5))
    every = np.arange(len(plate_data))
    src, warped, target, coeffs = generator_batch(plate_data, every, gen.cfg.motion_window, "cpu")
    with torch.no_grad():
        l1_before = F.l1_loss(gen(src, warped, coeffs, w=1.0)["image"], target).item()
    gen, gdisc, hist = train_generator(plate_data, init=(gen, gdisc),
                                       settings=TrainSettings(steps=40, batch=8, lr=1e-3, code_steps=0, disc_start=38),
                                       device="cpu")
    with torch.no_grad():
        l1_after = F.l1_loss(gen(src, warped, coeffs, w=1.0)["image"], target).item()
    assert l1_after < 0.9 * l1_before, (l1_before, l1_after)  # the image level learned
    assert hist[-1]["d"] > 0  # its adversarial part ran
    for k, v in gen.vqgan.state_dict().items():  # the codebook stage stayed frozen
        assert torch.equal(v, frozen[k]), k

    src, warped, target, coeffs = generator_batch(plate_data, np.arange(4), gen.cfg.motion_window, "cpu")
    with torch.no_grad():
        out1 = gen(src, warped, coeffs, w=1.0)
        out0 = gen(src, warped, coeffs, w=0.0)
        assert torch.allclose(out0["image"], gen.vqgan.decode_code(out0["indices"]), atol=1e-5)
        assert not torch.allclose(out1["image"], out0["image"])  # w really controls the output

    path = save_generator(tmp_path / "g.pt", gen, gdisc, step=60)
    loaded = load_generator(path)
    with torch.no_grad():
        assert torch.allclose(loaded(src, warped, coeffs, w=1.0)["image"], out1["image"], atol=1e-5)
    with pytest.raises(CheckpointError):
        load_codebook(path)
    cb_path = save_codebook(tmp_path / "c.pt", model, disc)
    m2 = load_codebook(cb_path)
    assert all(torch.equal(a, b) for a, b in zip(m2.state_dict().values(), model.state_dict().values()))

    win = np.stack([plate_data.coeffs[[0, 0, 1]]])
    refined = refine(loaded, plate_data.sources[0], plate_data.warped[:1], win, w=0.5)
    assert refined.shape == (1, 32, 32, 3) and refined.dtype == np.uint8


def test_image_level_reaches_every_trainable_parameter(codebook, plate_data):
    model = codebook[0]
    gen = VQIGGenerator(GeneratorConfig.tiny(codebook=model.cfg), model).train()
    src, warped, target, coeffs = generator_batch(plate_data, np.arange(2), gen.cfg.motion_window, "cpu")
    # CFT and AdaIN start as identities (zero-initialised); nudge them so every path is live
    for p in gen.parameters():
        if p.requires_grad:
            p.data.add_(torch.randn_like(p) * 1e-3)
    out = gen.predict(src, warped, coeffs)
    img = gen.decode(out["logits"].argmax(-1).view(-1, 8, 8), out["enc_feats"], out["sigma"], 1.0)
    loss = F.cross_entropy(out["logits"].flatten(0, 1), torch.zeros(2 * 64, dtype=torch.long)) + img.abs().mean()
    loss = loss + out["z_f"].pow(2).mean()
    loss.backward()
    missing = [n for n, p in gen.named_parameters() if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    assert not missing, missing
    assert not any(p.requires_grad for p in gen.vqgan.parameters())


def test_bad_checkpoint_file(tmp_path):
    bad = tmp_path / "x.pt"
    torch.save({"format": 99}, bad)
    with pytest.raises(CheckpointError):
        load_generator(bad)
    with pytest.raises(CheckpointError):
        load_generator(tmp_path / "missing.pt")


def test_train_vqig_cli_prepares_a_real_clip_and_fine_tunes(tmp_path):
    """`flowvq train vqig --person CLIP` end to end on a tiny config: tracker -> crops + geometry
    warps -> codebook -> generator; then a fine-tune from that checkpoint on the saved data."""
    import argparse
    import json
    from pathlib import Path

    clip = Path(__file__).resolve().parents[2] / "shared" / "data" / "video_with_audio" / "theresa_may_5s.mp4"
    if not clip.is_file():
        pytest.skip(f"shared test data not found at {clip}")
    from flowvq.training import vqig_cli as cli

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    cli.register(sub)
    out = tmp_path / "run"
    prep = tmp_path / "prep"
    args = parser.parse_args(["vqig", "--person", str(clip), "--end", "0.32", "--size", "32", "--prepare-only",
                              "-o", str(prep)])
    assert args.func(args) == 0
    assert sorted(p.name for p in prep.iterdir()) == ["data.npz"]  # tracked and prepared, nothing trained
    args = parser.parse_args(["vqig", "--data", str(prep / "data.npz"), "--size", "32", "--tiny",
                              "--codebook-steps", "6", "--steps", "6", "--batch", "2", "--device", "cpu",
                              "-o", str(out)])
    assert args.func(args) == 0
    data = PlateData.load(out / "data.npz")
    assert len(data) >= 6 and data.frames.shape[1:] == (32, 32, 3) and data.coeffs.shape[1] == 70
    assert np.abs(data.coeffs[0]).max() < 1e-5  # curves are relative to the clip's portrait frame
    assert np.abs(data.warped[0].astype(int) - data.frames[0]).mean() < 3  # frame 0 warps onto itself
    log = json.loads((out / "train_log.json").read_text())
    assert log["frames"] == len(data)
    args = parser.parse_args(["vqig", "--data", str(out / "data.npz"), "--init", str(out / "vqig.pt"),
                              "--steps", "2", "--batch", "2", "--device", "cpu", "-o", str(tmp_path / "ft")])
    assert args.func(args) == 0
    assert load_generator(tmp_path / "ft" / "vqig.pt").cfg == load_generator(out / "vqig.pt").cfg
