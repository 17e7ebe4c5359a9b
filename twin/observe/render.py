"""Headless animated-GIF capture of a PyBullet scene.

Uses PyBullet's software ``ER_TINY_RENDERER``, which works in ``DIRECT`` mode (no
OpenGL, no display). Every PyBullet call names the recorder's own physics client, so
recording never touches PyBullet's default client.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from servo_core.errors import ConfigError, TwinError
from twin.observe.files import atomic_file

__all__ = ["GifRecorder"]

_YAW_DEG = 45.0
_PITCH_DEG = -25.0
_FOV_DEG = 60.0
_MARGIN = 1.15
"""Extra room around the robot's bounding sphere (1.0 would touch the frame edge)."""
_MIN_RADIUS_M = 0.05


class GifRecorder:
    """Collect frames of one PyBullet body from a fixed 3/4 camera and save them as a GIF.

    The camera looks at the centre of the body's axis-aligned bounding box (base and
    every link) as it is when the recorder is created, from yaw 45°, pitch −25°, at a
    distance that keeps the box's bounding sphere inside a 60° vertical field of view.
    Frames are palette-quantised (``P`` mode, ≤ 256 colours, about ``width*height``
    bytes each) as they are captured.
    """

    def __init__(
        self,
        client_id: int,
        body_id: int,
        width: int = 320,
        height: int = 240,
        fps: float = 15.0,
    ) -> None:
        """Aim the camera at ``body_id`` in physics client ``client_id``.

        ``width`` and ``height`` are the frame size in pixels, ``fps`` the playback rate
        in frames per second (also the rate the caller should capture at).
        """
        if int(width) <= 0 or int(height) <= 0:
            raise ConfigError(f"GifRecorder frame size must be positive, got {width}x{height}")
        if not (math.isfinite(fps) and fps > 0.0):
            raise ConfigError(f"GifRecorder fps must be a positive number, got {fps}")
        from sim_models.bullet import pybullet

        p = pybullet()
        self._p: Any = p
        self.client_id = int(client_id)
        self.body_id = int(body_id)
        self.width = int(width)
        self.height = int(height)
        self.fps = float(fps)
        self.frame_interval_s: float = 1.0 / self.fps
        self._frames: list[Any] = []  # PIL.Image.Image in "P" mode
        self._view, self._projection = self._aim()

    def _aim(self) -> tuple[list[float], list[float]]:
        """View and projection matrices framing the body's current bounding box."""
        p = self._p
        cid = self.client_id
        try:
            n_joints = p.getNumJoints(self.body_id, physicsClientId=cid)
            boxes = [p.getAABB(self.body_id, link, physicsClientId=cid) for link in range(-1, n_joints)]
        except p.error as exc:
            raise TwinError(f"GifRecorder: cannot read body {self.body_id} in client {cid}: {exc}") from exc
        # Frame the space the robot can sweep, not its first pose: an arm that
        # starts upright and then reaches down must stay in view.
        base = np.array(p.getBasePositionAndOrientation(self.body_id, physicsClientId=cid)[0])
        corners = np.array([c for b in boxes for c in b], dtype=np.float64)
        reach = float(np.max(np.linalg.norm(corners - base, axis=1)))
        centre = base + np.array([0.0, 0.0, 0.45 * reach])
        radius = max(0.65 * reach, _MIN_RADIUS_M)
        # The vertical FOV is the narrower one for landscape frames; use the narrower.
        aspect = self.width / self.height
        half_v = math.radians(_FOV_DEG) / 2.0
        half_h = math.atan(math.tan(half_v) * aspect)
        distance = _MARGIN * radius / math.sin(min(half_v, half_h))
        view = p.computeViewMatrixFromYawPitchRoll(
            cameraTargetPosition=centre.tolist(),
            distance=distance,
            yaw=_YAW_DEG,
            pitch=_PITCH_DEG,
            roll=0.0,
            upAxisIndex=2,
            physicsClientId=cid,
        )
        projection = p.computeProjectionMatrixFOV(
            fov=_FOV_DEG,
            aspect=aspect,
            nearVal=max(0.01, (distance - 2.0 * radius) * 0.5),
            farVal=distance + 4.0 * radius,
            physicsClientId=cid,
        )
        return list(view), list(projection)

    def capture(self) -> None:
        """Render the scene now and keep the frame (palette-quantised) in memory."""
        from PIL import Image

        p = self._p
        try:
            w, h, rgba, _depth, _seg = p.getCameraImage(
                self.width,
                self.height,
                viewMatrix=self._view,
                projectionMatrix=self._projection,
                renderer=p.ER_TINY_RENDERER,
                flags=p.ER_NO_SEGMENTATION_MASK,
                physicsClientId=self.client_id,
            )
        except p.error as exc:
            raise TwinError(f"GifRecorder: getCameraImage failed: {exc}") from exc
        rgb = np.asarray(rgba, dtype=np.uint8).reshape(h, w, 4)[:, :, :3]
        frame = Image.fromarray(np.ascontiguousarray(rgb), mode="RGB")
        self._frames.append(frame.quantize(colors=256, method=Image.Quantize.FASTOCTREE))

    def __len__(self) -> int:
        """Number of frames captured so far."""
        return len(self._frames)

    def save(self, path: Path) -> Path:
        """Write the frames to ``path`` as a looping animated GIF; return ``path``.

        Each frame lasts ``1000 / fps`` ms rounded to GIF's 10 ms steps (at least 20 ms),
        so 15 fps plays at about 14.3 fps. Pillow merges consecutive identical frames into
        one longer frame, so a still scene gives fewer GIF frames than captures (same total
        duration).
        Raises :class:`~servo_core.errors.TwinError` when nothing was captured.
        """
        if not self._frames:
            raise TwinError("GifRecorder.save: no frames captured")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # GIF delays are in centiseconds (Pillow truncates); round to the nearest one,
        # at least 2 cs since viewers replace shorter delays by 10 cs.
        duration_ms = 10 * max(2, round(100.0 / self.fps))
        first, *rest = self._frames
        with atomic_file(path) as tmp:
            first.save(
                tmp,
                format="GIF",
                save_all=True,
                append_images=rest,
                loop=0,
                duration=duration_ms,
                disposal=1,
            )
        return path
