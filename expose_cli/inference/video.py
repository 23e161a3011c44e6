"""Person tracks of a video: ids across frames, smoothed parameters and motion files per track.

Frames arrive in order (the pipeline finishes units in input order); each frame's persons get
track ids from an :class:`~expose_cli.inference.tracking.IouTracker` on their boxes, and their
parameters are kept (no meshes: a few hundred numbers per person and frame). When the video is
done, :meth:`VideoTracks.finish` writes under the video's folder::

    tracks.json                      frame -> person -> track id, and each track's files
    tracks/track_000/params.npz      per-frame parameters of the track, smoothed (``--smooth``)
    tracks/track_000/motion.npz      AMASS-style SMPL-X motion (body and full model)
    tracks/track_000/motion.bvh      the same as a BVH of the SMPL-X skeleton (centimetres, y up)

and each tracked frame's folder gets ``tracking.npz``: its persons' boxes and parameters as the
tracks use them (written before the frame's ``result.json``). A resumed run (``--resume``) feeds
the frames done before through the tracker from these files, so its track ids, ``tracks.json`` and
motion files equal an uninterrupted run's.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from smplx.joint_names import JOINT_NAMES

from expose_cli.inference import motion
from expose_cli.inference.export import write_npz
from expose_cli.inference.smoothing import smooth_track
from expose_cli.inference.tracking import IouTracker
from expose_cli.utils.atomic import write_json_atomic

ROTATIONS = ("global_orient", "body_pose", "left_hand_pose", "right_hand_pose", "jaw_pose")
PLAIN = ("betas", "expression", "camera_translation", "camera_weak_perspective", "bbox_xyxy")


@dataclass
class TrackOptions:
    """``smooth``: none | oneeuro | savgol; ``motion``: write motion.npz / motion.bvh (SMPL-X kinds)."""

    smooth: str = "savgol"
    motion: bool = True
    iou_threshold: float = 0.3
    max_age: int = 5


@dataclass
class _Video:
    fps: float
    tracker: IouTracker
    frames: list[int] = field(default_factory=list)
    ids: list[list[int]] = field(default_factory=list)
    params: dict[int, list[tuple[int, dict]]] = field(default_factory=dict)  # id -> [(frame, params)]


def person_params(arrays: dict) -> dict[str, np.ndarray]:
    """The parameters a track keeps of one person's saved arrays (axis-angle rotations, radians)."""
    out = {name: np.asarray(arrays[f"{name}_aa"]) for name in ROTATIONS if f"{name}_aa" in arrays}
    out.update({name: np.asarray(arrays[name]) for name in PLAIN if name in arrays})
    return out


class VideoTracks:
    """Tracks of every video of a run, keyed by the video's output folder."""

    def __init__(self, options: TrackOptions) -> None:
        self.options = options
        self.videos: dict[Path, _Video] = {}

    def add(self, folder: Path, frame: int, fps: float, persons: list[dict]) -> list[int]:
        """Track ids of one frame's persons (``persons``: each one's :func:`person_params`)."""
        video = self.videos.setdefault(folder, _Video(fps, IouTracker(self.options.iou_threshold, self.options.max_age)))
        ids = video.tracker.update(frame, [list(p["bbox_xyxy"][:4]) for p in persons])
        video.frames.append(frame)
        video.ids.append(ids)
        for track_id, params in zip(ids, persons, strict=True):
            video.params.setdefault(track_id, []).append((frame, params))
        return ids

    def finish(self, folder: Path, body_model=None) -> dict:
        """Write the video's ``tracks.json`` and per-track files; returns what ``tracks.json`` holds."""
        video = self.videos.pop(folder)
        tracks = []
        for track_id, entries in sorted(video.params.items()):
            files = self._write_track(folder / "tracks" / f"track_{track_id:03d}", entries, video.fps, body_model)
            tracks.append({"id": track_id, "frames": [f for f, _ in entries], "files": files})
        record = {"fps": video.fps, "smoothing": self.options.smooth,
                  "frames": [{"frame": f, "track_ids": ids} for f, ids in zip(video.frames, video.ids, strict=True)],
                  "tracks": tracks}
        write_json_atomic(folder / "tracks.json", record)
        return record

    def _write_track(self, folder: Path, entries: list[tuple[int, dict]], fps: float, body_model) -> list[str]:
        folder.mkdir(parents=True, exist_ok=True)
        keys = entries[0][1].keys()
        stacked = {k: np.stack([p[k] for _, p in entries]) for k in keys}
        smoothed = smooth_track(stacked, self.options.smooth, fps, ROTATIONS)
        smoothed["frames"] = np.array([f for f, _ in entries], dtype=np.int64)
        write_npz(folder / "params.npz", {k: np.asarray(v, np.float32) if k != "frames" else v
                                          for k, v in smoothed.items()})
        files = [str(folder / "params.npz")]
        if self.options.motion and body_model is not None and "body_pose" in smoothed:
            files += write_motion(folder, smoothed, fps, body_model)
        return files


FRAME_FILE = "tracking.npz"


def write_frame_persons(folder: Path, persons: list[dict]) -> None:
    """``folder/tracking.npz``: a tracked frame's :func:`person_params`, as ``p00/betas``, ... (the
    arrays bit for bit, so tracks rebuilt from it equal the ones built while running)."""
    write_npz(folder / FRAME_FILE, {f"p{i:02d}/{k}": v for i, p in enumerate(persons) for k, v in p.items()})


def read_frame_persons(folder: Path, count: int) -> list[dict] | None:
    """The ``count`` persons of ``folder/tracking.npz``, or ``None`` when the file is absent,
    unreadable or holds another number of persons (the frame is then run again)."""
    try:
        with np.load(folder / FRAME_FILE) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None
    persons: list[dict] = [{} for _ in range(count)]
    for key, value in arrays.items():
        index, _, name = key.partition("/")
        i = int(index[1:]) if index[1:].isdigit() else -1
        if not 0 <= i < count:
            return None
        persons[i][name] = value
    return persons if all("bbox_xyxy" in p for p in persons) else None


def rest_joints(body_model, betas: np.ndarray) -> np.ndarray:
    """The SMPL-X layer's 55 rest-pose joints (m) for ``betas``."""
    with torch.no_grad():
        b = torch.as_tensor(betas, dtype=body_model.v_template.dtype, device=body_model.v_template.device)
        shaped = body_model.v_template + torch.einsum("vcl,l->vc", body_model.shapedirs[..., : len(b)], b)
        joints = body_model.J_regressor @ shaped
    return joints[:55].double().cpu().numpy()


def write_motion(folder: Path, params: dict[str, np.ndarray], fps: float, body_model) -> list[str]:
    """``motion.npz`` (AMASS-style) and ``motion.bvh`` of one smoothed SMPL-X track."""
    frames = len(params["global_orient"])
    betas = params["betas"][0]
    joints = rest_joints(body_model, betas)
    root, trans = motion.to_y_up(params["global_orient"], params["camera_translation"], joints[0])
    pose = motion.full_pose({**params, "global_orient": root}, frames)
    expression = params.get("expression")
    motion.write_amass_npz(folder / "motion.npz", pose, trans, betas, fps, expression=expression)
    parents = body_model.parents[:55].cpu().numpy()
    motion.write_bvh(folder / "motion.bvh", pose, trans + joints[0], joints, parents, list(JOINT_NAMES[:55]), fps)
    return [str(folder / "motion.npz"), str(folder / "motion.bvh")]
