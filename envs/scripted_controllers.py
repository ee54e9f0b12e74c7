"""Scripted expert controllers for Gymnasium MuJoCo tasks: deterministic functions of the observation.

Each controller is `policy(observation) -> action`, built from the env it will drive, and reads the
state back from the observation only, so that a dataset recorded with it satisfies
action == policy(stored state) exactly (the alignment tests rely on it). The exception is
CentralPatternGait, an open-loop gait: it reads the simulator's clock, so its action is a function of
the timestep, which is what hides the gait's phase from a single observation.
"""

from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np


def _frame_skipped_step(model: mujoco.MjModel, frame_skip: int, x: np.ndarray, u: np.ndarray) -> np.ndarray:
    """(qpos, qvel) after one env step (frame_skip simulator steps) from state x under control u."""
    data = mujoco.MjData(model)
    data.qpos[:], data.qvel[:], data.ctrl[:] = x[: model.nq], x[model.nq :], u
    for _ in range(frame_skip):
        mujoco.mj_step(model, data)
    return np.concatenate([data.qpos, data.qvel])


def linearize(model: mujoco.MjModel, frame_skip: int, eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Discrete-time (A, B) of one env step around qpos = qvel = ctrl = 0, by central differences.

    MuJoCo's mjd_transitionFD refuses the RK4 integrator these envs use, so we difference MuJoCo's own
    RK4 step instead: the linearisation is of exactly the dynamics the env simulates.
    """
    nx, nu = model.nq + model.nv, model.nu
    x0, u0 = np.zeros(nx), np.zeros(nu)
    f = lambda x, u: _frame_skipped_step(model, frame_skip, x, u)  # noqa: E731
    a = np.stack([(f(x0 + eps * e, u0) - f(x0 - eps * e, u0)) / (2 * eps) for e in np.eye(nx)], axis=1)
    b = np.stack([(f(x0, u0 + eps * e) - f(x0, u0 - eps * e)) / (2 * eps) for e in np.eye(nu)], axis=1)
    return a, b


def solve_dare(a: np.ndarray, b: np.ndarray, q: np.ndarray, r: np.ndarray, iters: int = 10_000) -> np.ndarray:
    """LQR gain K (u = -K x) from the discrete algebraic Riccati equation, by fixed-point iteration."""
    p = q.copy()
    for _ in range(iters):
        k = np.linalg.solve(r + b.T @ p @ b, b.T @ p @ a)
        p_next = q + a.T @ p @ (a - b @ k)
        if np.max(np.abs(p_next - p)) <= 1e-10 * np.max(np.abs(p)):
            return k
        p = p_next
    raise RuntimeError("Riccati iteration did not converge: the linearised system is not stabilisable with these weights")


class DoublePendulumLQR:
    """LQR balancing InvertedDoublePendulum-v5 (cart + two hinges) around the upright position.

    Observation (v5): [x, sin θ1, sin θ2, cos θ1, cos θ2, ẋ, θ̇1, θ̇2, constraint force]; the state
    (x, θ1, θ2, ẋ, θ̇1, θ̇2) is read back with atan2. Velocities are clipped to ±10 in the
    observation, which only matters far from upright, where the episode is lost anyway.
    """

    def __init__(self, env: gym.Env, q_diag=(1.0, 10.0, 10.0, 0.1, 0.1, 0.1), r: float = 1.0):
        base = env.unwrapped
        a, b = linearize(base.model, base.frame_skip)
        self.gain = solve_dare(a, b, np.diag(q_diag), np.array([[r]]))
        self.low, self.high = env.action_space.low, env.action_space.high

    def state(self, obs: np.ndarray) -> np.ndarray:
        return np.array([obs[0], np.arctan2(obs[1], obs[3]), np.arctan2(obs[2], obs[4]), obs[5], obs[6], obs[7]])

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return np.clip(-self.gain @ self.state(obs), self.low, self.high).astype(np.float32)


class ReacherOperationalSpace:
    """Operational-space PD for Reacher-v5: a fingertip force toward the target, mapped to torques by J^T.

    Observation (v5): [cos q, sin q, target xy, q̇, fingertip - target xy]. The force F = -kp (tip -
    target) becomes torques J(q)^T F, with joint damping -kq q̇; the small gains keep the control cost
    (|a|² per step) low, which is most of what separates a good Reacher return from a poor one.
    """

    link1, link2 = 0.1, 0.11  # joint0 -> joint1, joint1 -> fingertip (reacher.xml)

    def __init__(self, env: gym.Env, kp: float = 20.0, kq: float = 0.1):
        self.kp, self.kq = kp, kq
        self.low, self.high = env.action_space.low, env.action_space.high

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        q = np.arctan2(obs[2:4], obs[0:2])
        qd, tip_minus_target = obs[6:8], obs[8:10]
        s1, c1, s12, c12 = np.sin(q[0]), np.cos(q[0]), np.sin(q.sum()), np.cos(q.sum())
        jac = np.array([[-self.link1 * s1 - self.link2 * s12, -self.link2 * s12],
                        [self.link1 * c1 + self.link2 * c12, self.link2 * c12]])
        torque = jac.T @ (-self.kp * tip_minus_target) - self.kq * qd
        return np.clip(torque, self.low, self.high).astype(np.float32)


class CentralPatternGait:
    """An open-loop central-pattern-generator gait: joint j's torque is a_j sin(2π f t + φ_j), clipped.

    t is the simulator's clock (env.unwrapped.data.time, zero after every reset), not the
    observation: the gait's phase is hidden from a policy that sees one observation, which is what
    makes context matter on datasets recorded with it (an agent must infer the phase from the recent
    states, or from the timestep). Unlike the controllers above, then, action == policy(state) does
    not hold for a stored state; it holds for the (state, timestep) pair.
    """

    def __init__(self, env: gym.Env, frequency: float, amplitudes, phases):
        self.base = env.unwrapped
        self.frequency = float(frequency)
        self.amplitudes, self.phases = np.asarray(amplitudes, np.float64), np.asarray(phases, np.float64)
        if self.amplitudes.shape != env.action_space.shape or self.phases.shape != env.action_space.shape:
            raise ValueError(f"a gait needs one amplitude and one phase per actuator {env.action_space.shape}, got "
                             f"{self.amplitudes.shape} and {self.phases.shape}")
        self.low, self.high = env.action_space.low, env.action_space.high

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        angle = 2 * np.pi * self.frequency * self.base.data.time + self.phases
        return np.clip(self.amplitudes * np.sin(angle), self.low, self.high).astype(np.float32)
