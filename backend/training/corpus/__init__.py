"""The starter training corpus: espeak-ng speech + viseme/emotion/blink/head-motion curves.

Names load lazily so that `flowvq --help` (which imports corpus.cli) stays fast.
"""
__all__ = ["CorpusConfig", "Utterance", "build_corpus", "make_utterance"]


def __getattr__(name):
    if name in __all__:
        from . import build

        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
