"""Sampling schedules, apart from the models.

LiveAvatar's 4-step path is diffusers' FlowMatchEulerDiscreteScheduler(shift 3) used as-is
(its double shift gives the spec's [1000, 857.69, 602.15, 8.93]). Wan2.2-S2V feeds integer
timesteps from a shifted linspace(0.999, 0, N+1) grid; diffusers' UniPC with flow sigmas is
used for the update with that sigma grid passed explicitly.
"""
from __future__ import annotations

import numpy as np
import torch


def liveavatar_schedule(steps: int = 4, shift: float = 3.0) -> tuple[list[float], list[float]]:
    """(timesteps fed to the model, sigmas incl. the terminal 0) of the distilled Euler path."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    s = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift)
    s.set_timesteps(steps)
    return [float(t) for t in s.timesteps], [float(x) for x in s.sigmas]


def s2v_sigmas(steps: int, shift: float) -> np.ndarray:
    base = np.linspace(0.999, 0.0, steps + 1)[:-1]
    return shift * base / (1 + (shift - 1) * base)


def s2v_timesteps(steps: int = 40, shift: float = 3.0) -> list[int]:
    """Integer timesteps the S2V model receives (truncated)."""
    return [int(s * 1000) for s in s2v_sigmas(steps, shift)]


class EulerFlow:
    """x <- x + (σ_{i+1} − σ_i)·v in fp32 (both models' Euler update)."""

    def __init__(self, sigmas: list[float], timesteps: list[float]):
        self.sigmas, self.timesteps = sigmas, timesteps

    def step(self, v: torch.Tensor, i: int, x: torch.Tensor) -> torch.Tensor:
        return (x.float() + (self.sigmas[i + 1] - self.sigmas[i]) * v.float()).to(x.dtype)


def make_s2v_solver(solver: str, steps: int, shift: float):
    """Returns (timesteps for the model, step(v, i, x)) for 'unipc' (default), 'dpm++' or 'euler'."""
    sig = s2v_sigmas(steps, shift)
    ts = [int(s * 1000) for s in sig]
    if solver == "euler":
        e = EulerFlow(list(sig) + [0.0], ts)
        return ts, e.step
    from diffusers import DPMSolverMultistepScheduler, UniPCMultistepScheduler

    if solver == "unipc":
        sch = UniPCMultistepScheduler(num_train_timesteps=1000, prediction_type="flow_prediction",
                                      use_flow_sigmas=True, flow_shift=1.0, solver_order=2, predict_x0=True,
                                      solver_type="bh2", lower_order_final=True)
    elif solver == "dpm++":
        sch = DPMSolverMultistepScheduler(num_train_timesteps=1000, prediction_type="flow_prediction",
                                          use_flow_sigmas=True, flow_shift=1.0, solver_order=2)
        sig = shift * np.linspace(1, 0, steps + 1)[:steps] / (1 + (shift - 1) * np.linspace(1, 0, steps + 1)[:steps])
        ts = [int(s * 1000) for s in sig]
    else:
        raise ValueError(f"sample_solver must be unipc, dpm++ or euler, got {solver!r}")
    sch.set_timesteps(steps)
    # Replace the scheduler's grid with the exact Wan grid (already shifted; terminal 0).
    sch.sigmas = torch.tensor(list(sig) + [0.0], dtype=torch.float32)
    sch.timesteps = torch.tensor(ts, dtype=torch.int64)

    def step(v, i, x):
        return sch.step(v.float(), sch.timesteps[i], x.float(), return_dict=False)[0].to(x.dtype)
    return ts, step
