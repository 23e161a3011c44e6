"""Person tracks across video frames: IoU cost, optimal (Hungarian) assignment, a few frames of memory.

Each frame's boxes are matched to the live tracks by maximising the total IoU with the track's
last box (an assignment below ``iou_threshold`` does not count); unmatched boxes start new tracks;
a track unseen for more than ``max_age`` frames ends. Ids are 0, 1, 2, ... in order of appearance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from expose_cli.inference.boxes import iou_matrix


def linear_assignment(cost: np.ndarray) -> list[tuple[int, int]]:
    """Rows and columns paired so that the summed ``cost`` is minimal (Hungarian method, O(n^3)).

    A rectangular matrix is padded with zeros; every row of the smaller side gets a partner.
    """
    cost = np.asarray(cost, dtype=np.float64)
    n_rows, n_cols = cost.shape
    if n_rows == 0 or n_cols == 0:
        return []
    n = max(n_rows, n_cols)
    c = np.zeros((n + 1, n + 1))
    c[1:n_rows + 1, 1:n_cols + 1] = cost
    u, v = np.zeros(n + 1), np.zeros(n + 1)
    match = np.zeros(n + 1, dtype=int)  # match[col] = row (1-based; 0 = free)
    for row in range(1, n + 1):
        match[0], col0 = row, 0
        slack, prev = np.full(n + 1, np.inf), np.zeros(n + 1, dtype=int)
        used = np.zeros(n + 1, dtype=bool)
        while match[col0]:
            used[col0] = True
            r = match[col0]
            free = ~used
            reduced = c[r] - u[r] - v
            better = free & (reduced < slack)
            slack[better], prev[better] = reduced[better], col0
            slack_free = np.where(free, slack, np.inf)
            slack_free[0] = np.inf
            col1 = int(np.argmin(slack_free))
            delta = slack_free[col1]
            u[match[used]] += delta
            v[used] -= delta
            slack[free] -= delta
            col0 = col1
        while col0:
            col1 = prev[col0]
            match[col0] = match[col1]
            col0 = col1
    return sorted((int(match[j]) - 1, j - 1) for j in range(1, n + 1)
                  if 0 < match[j] <= n_rows and j <= n_cols)


@dataclass
class _Track:
    id: int
    box: np.ndarray
    last_frame: int


@dataclass
class IouTracker:
    """Online tracker: call :meth:`update` with each frame's boxes, in frame order."""

    iou_threshold: float = 0.3
    max_age: int = 5
    tracks: list[_Track] = field(default_factory=list)
    next_id: int = 0

    def update(self, frame: int, boxes: list) -> list[int]:
        """Track ids of ``boxes`` (``[x1, y1, x2, y2, ...]`` px) seen in ``frame``."""
        self.tracks = [t for t in self.tracks if frame - t.last_frame <= self.max_age]
        ids = [-1] * len(boxes)
        if boxes and self.tracks:
            overlap = iou_matrix(np.array([t.box for t in self.tracks]), np.array([b[:4] for b in boxes]))
            for ti, bi in linear_assignment(-overlap):
                if overlap[ti, bi] >= self.iou_threshold:
                    ids[bi] = self.tracks[ti].id
                    self.tracks[ti].box = np.asarray(boxes[bi][:4], dtype=np.float64)
                    self.tracks[ti].last_frame = frame
        for bi, box in enumerate(boxes):
            if ids[bi] < 0:
                ids[bi] = self.next_id
                self.tracks.append(_Track(self.next_id, np.asarray(box[:4], dtype=np.float64), frame))
                self.next_id += 1
        return ids
