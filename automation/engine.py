"""The workflow engine: advances runs through their actions until they finish or wait.

(Filled in by the engine work; `run_advance` is the contract the triggers call.)
"""

from __future__ import annotations


def run_advance(run_id: int) -> None:
    """Execute the run's actions from its position until it finishes or waits."""
