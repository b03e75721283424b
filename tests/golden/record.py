"""Record the golden takes (tests/golden/*.npz) with the current code: `python tests/golden/record.py`.

Run once before a restructure; test_golden.py then checks that the code still makes the same takes.
The input is a committed espeak-ng line (speech.wav), so the goldens do not depend on espeak's version.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# (name, settings): defaults (phone guidance + blinks on), flow alone, an emotion at another rate
CASES = {
    "default": dict(emotion="talking", intensity=1.0, takes=2, seed=7, fps=25.0),
    "flow_only": dict(emotion="happy", intensity=1.3, takes=2, seed=3, fps=24.0, blinks=False,
                      phone_guidance=0.0),
    "angry_30fps": dict(emotion="angry", intensity=0.6, takes=1, seed=11, fps=30.0, temperature=0.8),
}


def speech() -> Path:
    path = HERE / "speech.wav"
    if not path.exists():
        subprocess.run(["espeak-ng", "-v", "en-us+m3", "-s", "160", "-w", str(path),
                        "Every morning she opens the window and watches the boats move across the bay."],
                       check=True, capture_output=True)
    return path


def main() -> int:
    from flowvq.cli import main as cli

    for name, s in CASES.items():
        args = [str(speech()), "-o", str(HERE / "out" / name), "-q"]
        for k, v in s.items():
            if k == "blinks":
                args += [] if v else ["--no-blinks"]
            else:
                args += [f"--{k.replace('_', '-')}", str(v)]
        assert cli(["generate", *args]) == 0
        for k in range(1, s["takes"] + 1):
            with np.load(HERE / "out" / name / f"take_{k}.npz") as z:
                np.savez_compressed(HERE / f"{name}_take_{k}.npz", expression=z["expression"], pose=z["pose"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
