"""The flows' name for :mod:`mmagent.prompting` (prompt files and fencing live in the ground layer,
since tools read prompt files too); kept so flows and users' code import from one familiar place."""

from mmagent.flows.base import FlowError
from mmagent.prompting import (FENCE_CLOSE, FENCE_MARKERS, FENCE_OPEN, PROMPTS_PACKAGE, PromptError, PromptSet,
                               fence, leaks, load_prompts, shipped_path, shipped_prompts)

__all__ = ["FENCE_CLOSE", "FENCE_MARKERS", "FENCE_OPEN", "PROMPTS_PACKAGE", "FlowError", "PromptError", "PromptSet",
           "fence", "leaks", "load_prompts", "shipped_path", "shipped_prompts"]
