"""The starter training corpus: espeak-ng speech + viseme/emotion/blink/head-motion curves."""
from .build import CorpusConfig, Utterance, build_corpus, make_utterance

__all__ = ["CorpusConfig", "Utterance", "build_corpus", "make_utterance"]
