# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Block-diffusion generation for LLaDA2.0-Uni (filled in by the generation work)."""


class LLaDAUniGenerationMixin:
    pass
