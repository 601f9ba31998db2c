"""'Did you mean' suggestions, as stanc3 gives them: the closest candidate by edit distance
(insertions, deletions, substitutions and swaps of neighbours), if it is close enough."""

from __future__ import annotations

from collections.abc import Iterable


def edit_distance(a: str, b: str) -> int:
    """Optimal-string-alignment distance: a swap of two neighbours counts as one edit."""
    rows = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        rows[i][0] = i
    for j in range(len(b) + 1):
        rows[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            rows[i][j] = min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                rows[i][j] = min(rows[i][j], rows[i - 2][j - 2] + 1)
    return rows[-1][-1]


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``word``, or None when none is within a third of its length."""
    if not word or len(word) > 64:
        return None
    best, best_d = None, None
    for c in sorted(set(candidates)):
        if c == word or abs(len(c) - len(word)) > 3:
            continue
        d = edit_distance(word.lower(), c.lower())
        if best_d is None or d < best_d:
            best, best_d = c, d
    limit = max(1, len(word) // 3)
    return best if best_d is not None and best_d <= limit else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    match = closest(word, candidates)
    return f"Did you mean '{match}'?" if match else None
