"""Per-part keypoint weights over the 144 SMPL-X keypoints (the ``smplx`` package's order).

The parts are MMHuman3D's (``HUMAN_DATA_PARTS`` intersected with its ``smplx`` convention):
*body* (pelvis, hips, spine, legs, feet, neck, collars, arms, toes and heels; the head joint is
not body), *hands* (finger joints and fingertips, not the wrists), *face* (head, jaw, eyes,
nose, ears and the 68 landmarks). Every keypoint is in exactly one part.
"""

from __future__ import annotations

import torch

NUM_KEYPOINTS = 144
BODY = tuple(range(0, 15)) + tuple(range(16, 22)) + tuple(range(60, 66))
HANDS = tuple(range(25, 55)) + tuple(range(66, 76))
FACE = (15, 22, 23, 24) + tuple(range(55, 60)) + tuple(range(76, 144))
#: left_shoulder, right_shoulder, left_hip, right_hip: the first stage's keypoints.
SHOULDERS_HIPS = (16, 17, 1, 2)


def part_weights(body: float, hand: float, face: float, shoulder_hip_only: bool = False,
                 apply_body_to_torso: bool = True, device=None, dtype=torch.float32) -> torch.Tensor:
    """``[144]`` keypoint weights: ``body``/``hand``/``face`` on each part's keypoints.

    ``shoulder_hip_only``: 1 on the shoulders and hips, 0 elsewhere, times ``body`` when
    ``apply_body_to_torso`` (SMPLify; MMHuman3D's SMPLify-X leaves it at 1 there).
    """
    if shoulder_hip_only:
        w = torch.zeros(NUM_KEYPOINTS, dtype=dtype, device=device)
        w[list(SHOULDERS_HIPS)] = body if apply_body_to_torso else 1.0
        return w
    w = torch.ones(NUM_KEYPOINTS, dtype=dtype, device=device)
    w[list(BODY)] = body
    w[list(HANDS)] = hand
    w[list(FACE)] = face
    return w
