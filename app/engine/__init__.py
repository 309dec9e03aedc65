"""The screening engine: pure functions over an immutable knowledge base."""

from app.engine.inputs import ScreeningInput
from app.engine.result import ScreeningResult
from app.engine.screen import ENGINE_VERSION, screen

__all__ = ["ENGINE_VERSION", "ScreeningInput", "ScreeningResult", "screen"]
