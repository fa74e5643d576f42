"""TokenLedger Python SDK, importable as ``ai_cost_calc``.

A drop-in for the ``ai-cost-calc`` client: the same names and keyword
arguments; point it at your TokenLedger server with ``base_url``.
Standard library only; no Django needed.
"""

__version__ = "0.1.0"

from ai_cost_calc.client import AiCostCalc, UsageSession
from ai_cost_calc.errors import BudgetError, BudgetExceeded, BudgetUnavailable
from ai_cost_calc.extract import (
    Usage,
    anthropic_slug,
    anthropic_usage,
    extract_usage,
    openai_usage,
)

__all__ = [
    "AiCostCalc",
    "BudgetError",
    "BudgetExceeded",
    "BudgetUnavailable",
    "Usage",
    "UsageSession",
    "__version__",
    "anthropic_slug",
    "anthropic_usage",
    "extract_usage",
    "openai_usage",
]
