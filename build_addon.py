"""Build the Blender extension: dist/flowvq_blender-<version>.zip.

The zip holds blender_addon/ (manifest at its root), shared/ vendored as `flowvq_shared`, and
the msgpack, zeroconf and ifaddr wheels, unmodified, for every platform Blender ships on
(downloaded once at build time into build/wheels/, a cache; nothing downloads at run time).

    python build_addon.py [--offline] [--out dist]

--offline uses only the cache and leaves out (and lists) wheels it lacks.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
ADDON = ROOT / "blender_addon"
SHARED = ROOT / "shared"
CACHE = ROOT / "build" / "wheels"
PYTHON = "3.11"  # Blender 4.2 - 5.0 ship Python 3.11
# pip platform tags of the platforms Blender supports
PLATFORMS = {
    "linux-x64": "manylinux_2_28_x86_64",
    "windows-x64": "win_amd64",
    "macos-arm64": "macosx_11_0_arm64",
    "macos-x64": "macosx_10_9_x86_64",
}
# compiled packages need a wheel per platform; pure-Python ones one wheel for all
COMPILED = ("msgpack==1.2.4", "zeroconf==0.154.0")
PURE = ("ifaddr==0.2.0",)


def _download(requirement: str, platform: str | None, dest: Path, offline: bool) -> Path | None:
    """The cached wheel for `requirement` on `platform`, downloading it into the cache if asked."""
    name = requirement.split("==")[0]
    dest.mkdir(parents=True, exist_ok=True)

    def cached() -> Path | None:
        hits = sorted(p for p in dest.glob("*.whl")
                      if p.name.lower().startswith(name.replace("-", "_").lower() + "-"))
        return hits[-1] if hits else None

    if cached() is not None or offline:
        return cached()
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
           "--only-binary=:all:", "--python-version", PYTHON, "-d", str(dest), requirement]
    if platform is not None:
        cmd[5:5] = ["--platform", platform]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["?"])[-1]
        print(f"  no wheel for {requirement} on {platform or 'any'}: {last}", file=sys.stderr)
    return cached()


def collect_wheels(offline: bool) -> tuple[list[Path], list[str]]:
    wheels, missing = [], []
    for req in COMPILED:
        for label, tag in PLATFORMS.items():
            w = _download(req, tag, CACHE / label, offline)
            (wheels.append(w) if w else missing.append(f"{req} ({label})"))
    for req in PURE:
        w = _download(req, None, CACHE / "any", offline)
        (wheels.append(w) if w else missing.append(f"{req} (any)"))
    return wheels, missing


def manifest_text(wheels: list[Path]) -> str:
    text = (ADDON / "blender_manifest.toml").read_text(encoding="utf-8")
    listed = ",\n".join(f'  "./wheels/{w.name}"' for w in wheels)
    new = f"wheels = [\n{listed},\n]" if wheels else "wheels = []"
    text, n = re.subn(r"^wheels = \[.*?\]", new, text, count=1, flags=re.M | re.S)
    if n != 1:
        raise SystemExit("blender_manifest.toml has no `wheels = [...]` line to fill")
    return text


def build(out_dir: Path, offline: bool = False) -> Path:
    manifest = tomllib.loads((ADDON / "blender_manifest.toml").read_text(encoding="utf-8"))
    version = manifest["version"]
    wheels, missing = collect_wheels(offline)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"flowvq_blender-{version}.zip"
    tmp = target.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("blender_manifest.toml", manifest_text(wheels))
        for f in sorted(ADDON.rglob("*.py")):
            if "__pycache__" not in f.parts:
                z.write(f, f.relative_to(ADDON).as_posix())
        for f in sorted(SHARED.rglob("*.py")):
            if "__pycache__" not in f.parts:
                z.write(f, "flowvq_shared/" + f.relative_to(SHARED).as_posix())
        for w in wheels:
            z.write(w, f"wheels/{w.name}")  # unmodified, as Blender requires
    tmp.replace(target)
    print(f"wrote {target} ({target.stat().st_size // 1024} KiB, {len(wheels)} wheels)")
    if missing:
        print("wheels not bundled (unavailable): " + ", ".join(missing), file=sys.stderr)
    return target


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "dist"), help="output folder (default dist/)")
    ap.add_argument("--offline", action="store_true",
                    help="use only wheels already in build/wheels/")
    args = ap.parse_args(argv)
    build(Path(args.out), offline=args.offline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
