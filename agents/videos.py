"""Rollout videos of evaluation episodes: MP4 (GIF without ffmpeg) in runs/<name>/videos/, plus a
strip of frames for tensorboard and the file for wandb.

Why a second env. The evaluation runs targets x episodes in one vector env without rendering;
rendering there would slow every episode. Instead the first N episodes of each target are replayed
afterwards, one at a time, in one rgb_array env: the same env spec, reset seed (seed + e), target,
policy mode, context and time limit. The batch-of-one policy computes the same actions up to
floating-point rounding of the batched matmuls, so a replay can drift from its evaluated twin in
a chaotic env; the file name carries the replay's own return and normalized score.

Headless rendering: MuJoCo's MUJOCO_GL picks the OpenGL backend; without a display it is set to
egl (Debian: libegl1) unless the user chose one (osmesa: libosmesa6, slower, no GPU needed).

    runs/<name>/videos/<prefix>step<step>-target<t>-ep<e>-return<R>[-norm<score>].mp4
"""

from __future__ import annotations

import importlib.util
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sequence_models.training.config import ConfigError
from sequence_models.training.run_folder import Video

FRAME_SIZE = 240  # pixels, square; a multiple of 16, so ffmpeg's H.264 encoder takes it unscaled
STRIP_FRAMES = 8  # frames side by side in the tensorboard image


def check_video_support() -> None:
    """Stop before training when videos are asked for and imageio is missing (one line)."""
    if importlib.util.find_spec("imageio") is None:
        raise ConfigError("--eval-video / --video need imageio: pip install -e '.[video]'")


def video_format() -> str:
    """mp4 when an ffmpeg is available (imageio-ffmpeg brings its own), else gif."""
    if importlib.util.find_spec("imageio_ffmpeg") is not None:
        return "mp4"
    return "gif"


def use_headless_gl() -> None:
    """MUJOCO_GL=egl when there is no display and the user did not choose a backend."""
    if not os.environ.get("DISPLAY") and not os.environ.get("MUJOCO_GL"):
        os.environ["MUJOCO_GL"] = "egl"


@dataclass
class RenderedEpisode:
    target: float
    episode: int
    frames: np.ndarray  # (T + 1, H, W, 3) uint8: the reset frame, then one per step
    episode_return: float
    length: int
    fps: float  # the env's render_fps (MuJoCo: 1 / (frame_skip x timestep)): real time


def make_render_env(spec):
    """One rgb_array env of the evaluation's spec (reused for every rendered episode: making it and its
    OpenGL context costs more than a short episode)."""
    import gymnasium as gym

    use_headless_gl()
    return gym.make(spec, render_mode="rgb_array", width=FRAME_SIZE, height=FRAME_SIZE)


def render_episode(model, env, target: float, seed: int, mode: str, context_len: int, return_scale: float,
                   kv_steps: int, horizon: int) -> RenderedEpisode:
    """One episode in the rgb_array env, acted by a batch-of-one Policy (the evaluator's loop, rendered)."""
    import torch

    from agents.policy import Policy
    from envs.observations import flatten_observation

    was_training = model.training
    model.eval()
    try:
        obs, _ = env.reset(seed=seed)
        policy = Policy(model, mode, 1, context_len, kv_steps, return_scale)
        try:
            first = env.render()
        except Exception as e:  # noqa: BLE001 - OpenGL setup errors come as many types; one line says what to do
            raise RuntimeError(f"MuJoCo cannot render with MUJOCO_GL={os.environ.get('MUJOCO_GL')} ({type(e).__name__}: "
                               f"{str(e).splitlines()[0] if str(e) else ''}): install libegl1 (Debian) or use "
                               "MUJOCO_GL=osmesa (libosmesa6)") from e
        frames, rtg, total, length = [first], float(target), 0.0, 0
        with torch.no_grad():
            for t in range(horizon):
                batch_obs = flatten_observation({k: v[None] for k, v in obs.items()} if isinstance(obs, dict)
                                                else np.asarray(obs)[None])
                action = policy.act(batch_obs, np.array([rtg]), t)[0].float().cpu().numpy()
                obs, reward, terminated, truncated, _ = env.step(action)
                frames.append(env.render())
                total, length, rtg = total + float(reward), length + 1, rtg - float(reward)
                if terminated or truncated:
                    break
    finally:
        model.train(was_training)
    fps = float(env.metadata.get("render_fps") or 30)
    return RenderedEpisode(float(target), 0, np.stack(frames).astype(np.uint8), total, length, fps)


def write_video(frames: np.ndarray, stem: Path, fps: float) -> Path:
    """frames -> stem.mp4 (H.264 through imageio-ffmpeg), else stem.gif (imageio's pillow plugin)."""
    import imageio.v3 as iio

    path = Path(f"{stem}.{video_format()}")  # not with_suffix: the stem holds dots (return12.5)
    if path.suffix == ".mp4":
        with iio.imopen(path, "w", plugin="FFMPEG") as video:
            video.write(frames, fps=fps, codec="libx264", macro_block_size=16)
    else:
        iio.imwrite(path, frames, duration=1000.0 / fps, loop=0)
    return path


def frame_strip(frames: np.ndarray, count: int = STRIP_FRAMES) -> np.ndarray:
    """`count` frames spread over the episode, side by side: (H, count·W, 3), what tensorboard shows."""
    picks = np.linspace(0, len(frames) - 1, num=min(count, len(frames))).round().astype(int)
    return np.concatenate([frames[i] for i in picks], axis=1)


def _number(x: float) -> str:
    return re.sub(r"[^0-9a-zA-Z.+-]", "_", f"{x:g}" if abs(x) >= 1000 else f"{x:.1f}")


def record_videos(model, spec, targets, episodes: int, out_dir: Path, step: int, *, seed: int, mode: str,
                  context_len: int, return_scale: float, kv_steps: int, reference=None,
                  prefix: str = "") -> tuple[list[Video], float]:
    """Render the first `episodes` episodes of each target (seeds seed + e) to out_dir, each written
    before the next is rendered (a 1000-step episode is ~170 MB of frames); returns the videos and
    the rendered env steps per second (rendering and encoding included)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    horizon = spec.max_episode_steps or model.max_ep_len
    videos, steps, t0 = [], 0, time.perf_counter()
    env = make_render_env(spec)
    try:
        for target in targets:
            for e in range(episodes):
                ep = render_episode(model, env, target, seed + e, mode, context_len, return_scale, kv_steps, horizon)
                steps += ep.length
                name = f"{prefix}step{step}-target{target:g}-ep{e}-return{_number(ep.episode_return)}"
                score = None
                if reference is not None:
                    score = float(np.asarray(reference.normalize(np.array([ep.episode_return])))[0])
                    name += f"-norm{_number(score)}"
                path = write_video(ep.frames, out_dir / name, ep.fps)
                videos.append(Video(f"video/target{target:g}/ep{e}", path, frame_strip(ep.frames), len(ep.frames),
                                    ep.fps, {"return": ep.episode_return, "normalized": score, "length": ep.length}))
    finally:
        env.close()
    return videos, steps / max(time.perf_counter() - t0, 1e-9)
