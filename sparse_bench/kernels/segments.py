"""Expert-sorted rows: the segment of each expert, and chunks of at most a given number of rows."""

from __future__ import annotations


def expert_segments(counts: list[int], first_expert: int = 0) -> list[tuple[int, int, int]]:
    """(expert, first row, rows) of every non-empty segment of ``counts`` rows (experts first_expert, ...)."""
    segments, start = [], 0
    for e, n in enumerate(counts):
        if n:
            segments.append((first_expert + e, start, n))
        start += n
    return segments


def expert_chunks(counts: list[int], max_rows: int) -> list[tuple[int, int, list[int]]]:
    """Cut expert-sorted rows into chunks of at most ``max_rows`` rows, along expert boundaries where
    possible.

    counts: rows per expert. Returns (first expert, first row, rows per expert from the first expert) per
    chunk: consecutive small experts share a chunk; an expert with more than max_rows rows is cut into blocks.
    """
    chunks, row, first, group = [], 0, 0, []
    for expert, n in enumerate(counts):
        if group and sum(group) + n > max_rows:
            chunks.append((first, row, group))
            row, group = row + sum(group), []
        if not group:
            first = expert
        if n > max_rows:  # its own blocks; the last, partial block stays open for the next experts
            for _ in range(n // max_rows):
                chunks.append((expert, row, [max_rows]))
                row += max_rows
            n %= max_rows
            if not n:
                continue
        group.append(n)
    if group:
        chunks.append((first, row, group))
    return chunks


def expert_blocks(counts: list[int], max_rows: int) -> list[tuple[int, int, list]]:
    """(first row, rows, segments) of each ``expert_chunks`` block of at most max_rows rows; segments:
    (expert, first row within the block, rows), non-empty only."""
    return [(start, sum(group), expert_segments(group, first))
            for first, start, group in expert_chunks(counts, max_rows)]
