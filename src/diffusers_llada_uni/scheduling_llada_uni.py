# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Flow-matching Euler scheduler for the LLaDA2.0-Uni image decoder."""

from __future__ import annotations

from typing import Literal

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.schedulers.scheduling_flow_match_euler_discrete import (
    FlowMatchEulerDiscreteScheduler,
    FlowMatchEulerDiscreteSchedulerOutput,
)
# `DiffusionPipeline.from_pretrained` finds a component's load method by looking the diffusers base classes up in the
# component's own module, so this module must expose `SchedulerMixin` by name.
from diffusers.schedulers.scheduling_utils import SchedulerMixin  # noqa: F401


class LLaDAUniFlowMatchScheduler(FlowMatchEulerDiscreteScheduler):
    r"""
    diffusers' [`FlowMatchEulerDiscreteScheduler`] with two additions the LLaDA2.0-Uni decoders need.

    Both decoders of the original are exactly this scheduler's maths (in diffusers' terms `sigma = 1 - t`): the 50-step
    decoder is the deterministic Euler step with `shift=6` (the original's `t / (t + 6 - 6t)`), the distilled turbo
    decoder is `stochastic_sampling=True` with no shift (predict the clean latent, re-noise it to the next level).
    What the parent does not do:

    1. The default schedule is built in data time `t` with the original's arithmetic and exposed, unrounded, as
       `data_timesteps` (the `t` the DiT is called with). Recovering `t` as `1 - sigma` from float32 sigmas moves it by
       up to one float32 step near `t = 0`, and the DiT's time embedding (`t * 1000` into sinusoids) turns one such step
       into about 1e-5 relative change of the decoded latent, the size of the tolerance against the original.
       `time_grid_dtype` says in which precision the original built its `linspace`: float32 for the 50-step decoder,
       float64 (then rounded) for the turbo decoder.
    2. `step(..., noise=...)` takes the re-noising noise from the caller, so a run can replay pre-drawn noise (the
       parent only draws it from a `generator`).

    Any other use (custom `sigmas`, dynamic shifting, Karras sigmas, ...) is the parent's, with
    `data_timesteps = 1 - sigmas`.
    """

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        shift: float = 1.0,
        use_dynamic_shifting: bool = False,
        base_shift: float | None = 0.5,
        max_shift: float | None = 1.15,
        base_image_seq_len: int = 256,
        max_image_seq_len: int = 4096,
        invert_sigmas: bool = False,
        shift_terminal: float | None = None,
        use_karras_sigmas: bool = False,
        use_exponential_sigmas: bool = False,
        use_beta_sigmas: bool = False,
        time_shift_type: Literal["exponential", "linear"] = "exponential",
        stochastic_sampling: bool = False,
        time_grid_dtype: Literal["float32", "float64"] = "float32",
    ):
        if time_grid_dtype not in ("float32", "float64"):
            raise ValueError(f"`time_grid_dtype` must be 'float32' or 'float64', got {time_grid_dtype!r}.")
        super().__init__(
            num_train_timesteps=num_train_timesteps,
            shift=shift,
            use_dynamic_shifting=use_dynamic_shifting,
            base_shift=base_shift,
            max_shift=max_shift,
            base_image_seq_len=base_image_seq_len,
            max_image_seq_len=max_image_seq_len,
            invert_sigmas=invert_sigmas,
            shift_terminal=shift_terminal,
            use_karras_sigmas=use_karras_sigmas,
            use_exponential_sigmas=use_exponential_sigmas,
            use_beta_sigmas=use_beta_sigmas,
            time_shift_type=time_shift_type,
            stochastic_sampling=stochastic_sampling,
        )
        self.data_timesteps = None

    def _uses_default_grid(self, sigmas, timesteps) -> bool:
        c = self.config
        return (
            sigmas is None
            and timesteps is None
            and not c.use_dynamic_shifting
            and not c.invert_sigmas
            and not c.shift_terminal
            and not (c.use_karras_sigmas or c.use_exponential_sigmas or c.use_beta_sigmas)
        )

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: str | torch.device | None = None,
        sigmas: list[float] | None = None,
        mu: float | None = None,
        timesteps: list[float] | None = None,
    ) -> None:
        r"""
        Sets the schedule. With only `num_inference_steps` it is the original's: `num_inference_steps` model calls at
        `t = linspace(0, 1, num_inference_steps + 1)[:-1]` mapped by `t / (t + shift - shift * t)`, ending at `t = 1`.
        Anything else is the parent's `set_timesteps`.
        """
        if not self._uses_default_grid(sigmas, timesteps):
            super().set_timesteps(num_inference_steps, device=device, sigmas=sigmas, mu=mu, timesteps=timesteps)
            self.data_timesteps = (1.0 - self.sigmas[:-1]).to(torch.float32)
            return
        if not isinstance(num_inference_steps, int) or isinstance(num_inference_steps, bool) or num_inference_steps < 1:
            raise ValueError(f"`num_inference_steps` must be a positive int, got {num_inference_steps!r}.")
        dtype = torch.float32 if self.config.time_grid_dtype == "float32" else torch.float64
        t = torch.linspace(0, 1, num_inference_steps + 1, dtype=dtype)
        shift = self.shift
        if shift != 1.0:
            # Same operation order as the original, so that float32 rounding matches it bit for bit.
            t = t / (t + shift - shift * t)
        t = t.to(torch.float32)
        sigmas = 1.0 - t
        self.num_inference_steps = num_inference_steps
        self.sigmas = sigmas.to(device=device)
        self.timesteps = (sigmas[:-1] * self.config.num_train_timesteps).to(device=device)
        self.data_timesteps = t[:-1].to(device=device)
        self._step_index = None
        self._begin_index = None

    def step(
        self,
        model_output: torch.FloatTensor,
        timestep: float | torch.FloatTensor,
        sample: torch.FloatTensor,
        s_churn: float = 0.0,
        s_tmin: float = 0.0,
        s_tmax: float = float("inf"),
        s_noise: float = 1.0,
        generator: torch.Generator | None = None,
        per_token_timesteps: torch.Tensor | None = None,
        return_dict: bool = True,
        noise: torch.Tensor | None = None,
    ) -> FlowMatchEulerDiscreteSchedulerOutput | tuple:
        r"""
        The parent's `step`. `noise` (only with `stochastic_sampling`): the noise to re-noise with, shaped like
        `sample`, used instead of drawing it from `generator`.
        """
        if noise is None:
            return super().step(
                model_output,
                timestep,
                sample,
                s_churn=s_churn,
                s_tmin=s_tmin,
                s_tmax=s_tmax,
                s_noise=s_noise,
                generator=generator,
                per_token_timesteps=per_token_timesteps,
                return_dict=return_dict,
            )
        if not self.config.stochastic_sampling:
            raise ValueError("`noise` is only used with `stochastic_sampling=True`; this scheduler is deterministic.")
        if per_token_timesteps is not None:
            raise ValueError("`noise` cannot be combined with `per_token_timesteps`.")
        if tuple(noise.shape) != tuple(sample.shape):
            raise ValueError(f"`noise` must have the sample's shape {tuple(sample.shape)}, got {tuple(noise.shape)}.")
        if self.step_index is None:
            self._init_step_index(timestep)
        sample = sample.to(torch.float32)
        sigma = self.sigmas[self.step_index]
        sigma_next = self.sigmas[self.step_index + 1]
        x0 = sample - sigma * model_output
        prev_sample = (1.0 - sigma_next) * x0 + sigma_next * noise.to(device=sample.device, dtype=sample.dtype)
        self._step_index += 1
        prev_sample = prev_sample.to(model_output.dtype)
        if not return_dict:
            return (prev_sample,)
        return FlowMatchEulerDiscreteSchedulerOutput(prev_sample=prev_sample)
