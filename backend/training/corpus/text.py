"""Sentences for the corpus: CMU-dictionary words in a function/content-word rhythm.

Vocabulary: the pronunciation dictionary pocketsphinx ships (cmudict-en-us.dict), so every
word can also be force-aligned. Meaning does not matter to a mouth; English stress rhythm
(short function words between content words, phrase breaks, questions) does.
"""
from __future__ import annotations

import functools
import os
import re

import numpy as np

FUNCTION_WORDS = (
    "the a an of to and in is it you that he she was for on are with as i his they be at one "
    "have this from or had by but what some we can out other were all there when up use your "
    "how said each which do their if will way about many then them would so these her see him "
    "has more could go come did my no most who over know than call first may down been now "
    "find any new only our very just where after back little much before good through also"
).split()


@functools.lru_cache(maxsize=1)
def vocabulary() -> tuple[str, ...]:
    """Content words: plain alphabetic CMU entries of 3-10 letters (no variants, no acronyms)."""
    import pocketsphinx

    path = os.path.join(pocketsphinx.get_model_path(), "en-us", "cmudict-en-us.dict")
    words = []
    plain = re.compile(r"^[a-z]{3,10}$")
    with open(path, encoding="utf-8") as f:
        for line in f:
            word = line.split(" ", 1)[0]
            if plain.match(word):
                words.append(word)
    return tuple(words)


def sentence(rng: np.random.Generator, n_words: int) -> list[str]:
    words = []
    vocab = vocabulary()
    while len(words) < n_words:
        if rng.random() < 0.45:
            words.append(FUNCTION_WORDS[rng.integers(len(FUNCTION_WORDS))])
        words.append(vocab[rng.integers(len(vocab))])
    return words[:n_words]


def utterance(rng: np.random.Generator, seconds: float, rate_wpm: float,
              question: float = 0.15, exclaim: float = 0.1) -> tuple[str, list[str]]:
    """Text to last about `seconds` at `rate_wpm`; returns (text with punctuation, words)."""
    total = max(3, int(round(seconds * rate_wpm / 60.0)))
    parts, words = [], []
    while len(words) < total:
        n = int(min(total - len(words), max(3, rng.integers(4, 13))))
        ws = sentence(rng, n)
        if n > 6 and rng.random() < 0.5:  # a comma makes a phrase break mid-sentence
            k = int(rng.integers(3, n - 2))
            ws_text = " ".join(ws[:k]) + ", " + " ".join(ws[k:])
        else:
            ws_text = " ".join(ws)
        r = rng.random()
        end = "?" if r < question else "!" if r < question + exclaim else "."
        parts.append(ws_text[0].upper() + ws_text[1:] + end)
        words.extend(ws)
    return " ".join(parts), words
