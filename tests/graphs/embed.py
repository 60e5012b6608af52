"""A deterministic embedding for semantic store search: letter counts.

Each text becomes 26 letter counts plus a constant, so texts sharing letters are close
and no text (not even one without letters) embeds to the zero vector.
"""

from __future__ import annotations

from collections.abc import Sequence

DIMS = 27


def embed(texts: Sequence[str]) -> list[list[float]]:
    vectors = []
    for text in texts:
        vector = [0.0] * DIMS
        for char in text.lower():
            if "a" <= char <= "z":
                vector[ord(char) - ord("a")] += 1.0
        vector[-1] = 0.01
        vectors.append(vector)
    return vectors
