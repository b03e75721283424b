"""The coefficient space both sides agree on: 64 expression channels, 6 pose channels, 9 emotions.

Channels 0-51 are Apple's 52 ARKit blendshapes, in the order and spelling of
ARFaceAnchor.BlendShapeLocation's documentation; 52-63 are FlowVQ's own extras for speech and
emotion movements ARKit lacks (documented in docs/coefficients.md).
"""
from __future__ import annotations

ARKIT_NAMES: tuple[str, ...] = (
    # left eye
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft",
    # right eye
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight",
    # jaw and mouth
    "jawForward", "jawLeft", "jawRight", "jawOpen",
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
    # brows
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    # cheeks
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    # nose
    "noseSneerLeft", "noseSneerRight",
    # tongue
    "tongueOut",
)

# FlowVQ extras: speech articulations and emotion action units that ARKit has no shape for.
EXTRA_NAMES: tuple[str, ...] = (
    "tongueUp",            # tongue tip on the alveolar ridge: T D N L
    "tongueBetweenTeeth",  # dental fricatives: TH
    "lipBiteLower",        # lower lip under the upper teeth: F V
    "lipsPart",            # lips apart while the teeth stay nearly closed: S Z, breath
    "lipsTighten",         # AU23, lips narrowed and hardened: anger, determination
    "chinRaise",           # AU17, mentalis pushes the lower lip up: sadness, doubt
    "browKnit",            # corrugator draws the brows together: worry, fear, concentration
    "cheekRaiseLeft",      # AU6 orbicularis oculi (Duchenne smile)
    "cheekRaiseRight",
    "nasolabialDeepenLeft",  # AU11: sadness, contempt
    "nasolabialDeepenRight",
    "neckTighten",         # AU21 platysma: fear, strain
)

EXPRESSION_NAMES: tuple[str, ...] = ARKIT_NAMES + EXTRA_NAMES
N_EXPRESSION = len(EXPRESSION_NAMES)
assert len(ARKIT_NAMES) == 52 and N_EXPRESSION == 64 and len(set(EXPRESSION_NAMES)) == 64

# Pose: rotation in radians (about x = pitch, y = yaw, z = roll) then translation in model units.
POSE_NAMES: tuple[str, ...] = ("pitch", "yaw", "roll", "tx", "ty", "tz")
N_POSE = len(POSE_NAMES)

# The paper's 9 classes: the 8 MEAD emotions + ordinary talking (HDTF).
EMOTIONS: tuple[str, ...] = (
    "neutral", "angry", "contempt", "disgusted", "fear", "happy", "sad", "surprised", "talking",
)
N_EMOTIONS = len(EMOTIONS)

INTENSITY_RANGE = (0.0, 2.0)  # 1 = as trained; >1 exaggerates the deviation from neutral

CHANNEL_INDEX = {name: i for i, name in enumerate(EXPRESSION_NAMES)}

# The speech articulators the coarticulation model drives, minus the smile (an emotion channel too):
# phone guidance blends these, and an emotion's display may only add to them (backend/emotion/adapt.py).
SPEECH_ARTICULATORS: tuple[str, ...] = (
    "jawOpen", "mouthClose", "mouthPressLeft", "mouthPressRight", "mouthRollLower", "mouthRollUpper",
    "lipBiteLower", "mouthUpperUpLeft", "mouthUpperUpRight", "tongueBetweenTeeth", "lipsPart", "tongueUp",
    "mouthStretchLeft", "mouthStretchRight", "mouthFunnel", "mouthPucker", "mouthShrugUpper",
    "mouthLowerDownLeft", "mouthLowerDownRight")


def emotion_index(label: str) -> int:
    """Index of an emotion label; ValueError names the valid ones."""
    key = str(label).strip().lower()
    aliases = {"disgust": "disgusted", "surprise": "surprised", "anger": "angry",
               "fearful": "fear", "talk": "talking", "speech": "talking"}
    key = aliases.get(key, key)
    if key not in EMOTIONS:
        raise ValueError(f"unknown emotion {label!r}; valid: {', '.join(EMOTIONS)}")
    return EMOTIONS.index(key)


# How much each channel opens (+) or closes (-) the lips: the one definition of a generated mouth's
# opening (evaluate/mouth.py measures lip-sync with it; the voice map moves it). Fixed before any evaluation.
OPENING_WEIGHTS: dict[str, float] = {
    "jawOpen": 1.0, "mouthClose": -1.0,
    "mouthLowerDownLeft": 0.25, "mouthLowerDownRight": 0.25,
    "mouthUpperUpLeft": 0.25, "mouthUpperUpRight": 0.25,
    "lipsPart": 0.3, "mouthFunnel": 0.2,
    "mouthPressLeft": -0.2, "mouthPressRight": -0.2, "mouthRollLower": -0.2, "mouthRollUpper": -0.2,
}
