"""The page of an ``expose infer`` folder: a gallery of the images' overlays (each opening its
persons' meshes in 3D over the photo) and the videos (their tracks' meshes in step with the
overlay frames). Meshes come from the persons' ``person_XX.npz`` (``--format npz``, the default)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from expose_cli.inference.inputs import IMAGE_EXTS
from expose_cli.inference.render import track_colour
from expose_cli.io.images import write_image
from expose_cli.view.data import ASSET_DIR, b64_f32, b64_u32, locate, small_arrays, url, write_item

FRAMES_PER_CHUNK = 16  # video frames per data file: what the page loads at a time when scrubbing


def colour_hex(index: int) -> str:
    """The overlay's colour of person / track ``index`` as ``#rrggbb``."""
    return "#" + "".join(f"{round(c * 255):02x}" for c in track_colour(index))


class Faces:
    """Triangle lists written once each (``data/faces_<hash>.js``); persons refer to them by key."""

    def __init__(self, root: Path) -> None:
        self.root, self.keys = root, {}

    def key(self, faces: np.ndarray) -> str:
        f = np.ascontiguousarray(faces, dtype="<u4")
        digest = hashlib.sha256(f.tobytes()).hexdigest()[:12]
        if digest not in self.keys:
            self.keys[digest] = f"faces_{digest}"
            write_item(self.root, self.keys[digest], {"faces": b64_u32(f), "count": int(f.shape[0])})
        return self.keys[digest]


def person_npz(record: dict, root: Path) -> list[Path]:
    """The ``person_XX.npz`` files of one image's (or frame's) record, in person order."""
    return sorted(locate(f, root) for f in record.get("files", []) if Path(f).name.startswith("person_") and f.endswith(".npz"))


def read_person(path: Path, faces: Faces, colour: int, track: int | None = None) -> tuple[dict, dict]:
    """One person for the page: ``{v, faces, colour, params}`` (vertices in the camera frame, metres)
    and the camera it was seen with (``focal`` px, ``size`` [height, width] px)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    person = {"v": b64_f32(arrays["vertices_camera"]), "faces": faces.key(arrays["faces"]),
              "colour": colour_hex(colour), "params": small_arrays(arrays)}
    if track is not None:
        person["track"] = int(track)
    camera = {"focal": float(arrays["focal_length"]), "size": [int(x) for x in arrays["image_size"]]}
    return person, camera


def image_entry(root: Path, index: int, record: dict, faces: Faces) -> dict:
    """An image's manifest entry; its persons' meshes go to ``data/image_<index>.js``."""
    overlay = locate(Path(record["output"]) / "overlay.png", root)
    source = Path(record["input"])
    entry = {"name": source.name, "persons": int(record.get("persons", 0)), "error": record.get("error"),
             "overlay": url(overlay, root) if overlay.is_file() else None,
             "photo": url(source, root) if source.is_file() and source.suffix.lower() in IMAGE_EXTS else None, "key": None}
    persons, camera = [], None
    try:
        for i, path in enumerate(person_npz(record, root)):
            person, camera = read_person(path, faces, i)
            persons.append(person)
    except (OSError, ValueError, KeyError) as exc:  # this image without 3D; the others go on
        entry["error"], persons = f"cannot read its meshes: {exc}", []
    if persons:
        entry["key"] = f"image_{index:06d}"
        entry.update(camera)
        write_item(root, entry["key"], {"persons": persons})
    return entry


def video_entry(root: Path, index: int, video: dict, records: list[dict], faces: Faces) -> dict:
    """A video's manifest entry: its frames' overlays; their tracks' meshes go to
    ``data/video_<index>_<chunk>.js``, :data:`FRAMES_PER_CHUNK` frames each."""
    folder = locate(video["output"], root)
    entry = {"name": Path(video.get("input", folder)).name, "fps": float(video.get("fps", 25.0)),
             "chunk": FRAMES_PER_CHUNK, "frames": [], "tracks": {}, "key": f"video_{index:04d}"}
    pictures = overlay_frames(root, entry["key"], video, records)
    for c in range(0, len(records), FRAMES_PER_CHUNK):
        chunk = []
        for record in records[c:c + FRAMES_PER_CHUNK]:
            overlay = pictures.get(record["frame"])
            entry["frames"].append({"frame": record["frame"], "overlay": url(overlay, root) if overlay else None})
            ids = record.get("track_ids") or list(range(record.get("persons", 0)))
            persons = []
            for track, path in zip(ids, person_npz(record, root), strict=False):
                person, camera = read_person(path, faces, track, track)
                persons.append(person)
                entry.update(camera)
                entry["tracks"][str(track)] = person["colour"]
            chunk.append({"frame": record["frame"], "persons": persons})
        write_item(root, f"{entry['key']}_{c // FRAMES_PER_CHUNK:05d}", {"frames": chunk})
    return entry


def overlay_frames(root: Path, key: str, video: dict, records: list[dict]) -> dict[int, Path]:
    """Frame number -> the picture of a video frame's overlay: its ``overlay.png`` where there is one
    (infer before it wrote overlay.mp4 only), else its frame of the video's ``overlay.mp4`` (every
    frame record in frame order, but those whose rendering failed) saved as
    ``.view/frames/<key>_<frame>.jpg``; browsers do not play OpenCV's mp4v."""
    pngs = {r["frame"]: locate(Path(r["output"]) / "overlay.png", root) for r in records}
    if all(p.is_file() for p in pngs.values()) or not video.get("overlay"):
        return {f: p for f, p in pngs.items() if p.is_file()}
    drawn = [r["frame"] for r in records if not str(r.get("error") or "").startswith("rendering failed")]
    folder = root / ASSET_DIR / "frames"
    folder.mkdir(parents=True, exist_ok=True)
    pictures, cap = {}, cv2.VideoCapture(str(locate(video["overlay"], root)))
    try:
        for frame in drawn:
            ok, bgr = cap.read()
            if not ok:
                break
            pictures[frame] = write_image(folder / f"{key}_{frame:06d}.jpg", cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
                                          (cv2.IMWRITE_JPEG_QUALITY, 90))
    finally:
        cap.release()
    return pictures


def infer_manifest(root: Path, on_item: Callable[[], None] | None = None) -> dict:
    """The page's manifest of the infer folder ``root`` (its ``summary.json``), writing each image's
    and video chunk's data file on the way; ``on_item`` is called once per image or video."""
    summary = json.loads((root / "summary.json").read_text())
    faces = Faces(root)
    video_dirs = {str(Path(v["output"])): v for v in summary.get("videos", [])}
    frames: dict[str, list[dict]] = {k: [] for k in video_dirs}
    images = []
    for record in summary.get("inputs", []):
        if record.get("frame") is not None and str(Path(record["output"]).parent) in frames:
            frames[str(Path(record["output"]).parent)].append(record)
            continue
        images.append(image_entry(root, len(images), record, faces))
        if on_item:
            on_item()
    videos = []
    for folder, video in video_dirs.items():
        videos.append(video_entry(root, len(videos), video, sorted(frames[folder], key=lambda r: r["frame"]), faces))
        if on_item:
            on_item()
    return {"kind": "infer", "title": root.resolve().name, "images": images, "videos": videos,
            "complete": bool(summary.get("complete", True))}


def count_items(root: Path) -> int:
    """Images plus videos of an infer folder (the progress bar's total)."""
    summary = json.loads((root / "summary.json").read_text())
    return sum(1 for r in summary.get("inputs", []) if r.get("frame") is None) + len(summary.get("videos", []))
