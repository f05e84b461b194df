"""What footage's true actions mean to evaluation: classes, and which way each moves the player.

Recorded footage stores raw action ids with their names (a shard's `action_names`). Evaluation
reads them through ActionClasses:
- classes: CoinRun's 15 procgen actions collapse to its 6 movement classes (DOWN and the six
  letter keys do nothing, so they join NOOP; UP jumps); any other footage keeps one class per action.
- horizontal: each class's sideways direction, read off its name: -1 if it says "left", +1 if
  "right", 0 otherwise (CoinRun's LEFT+JUMP is left; JUMP and NOOP are no horizontal move).
The judge (genie.models.judge) is trained on the classes; key following is read on `horizontal`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_pipeline.coinrun import ACTION_NAMES, MOVEMENT_CLASSES, MOVEMENT_OF_ACTION
from genie.errors import GenieError

DIRECTION_NAMES = {-1: "left", 0: "none", 1: "right"}


@dataclass(frozen=True)
class ActionClasses:
    """Raw action ids -> classes -> horizontal direction."""

    names: tuple[str, ...]  # class names, indexed by class id
    of_action: tuple[int, ...]  # class id of each raw action id

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def horizontal(self) -> np.ndarray:
        """int64 [num_classes]: -1 left, 0 no horizontal move, +1 right."""
        lower = [n.lower() for n in self.names]
        return np.array([-1 if "left" in n else 1 if "right" in n else 0 for n in lower], dtype=np.int64)

    def classify(self, actions: np.ndarray) -> np.ndarray:
        """Raw action ids int [...] (-1 unknown) -> class ids int64 [...] (-1 unknown)."""
        actions = np.asarray(actions, dtype=np.int64)
        table = np.asarray(self.of_action, dtype=np.int64)
        return np.where(actions >= 0, table[np.clip(actions, 0, len(table) - 1)], -1)


def action_classes(action_names: list[str] | None, where: str = "footage") -> ActionClasses:
    """The ActionClasses of footage whose raw actions are `action_names` (a shard's names)."""
    if not action_names:
        raise GenieError(f"{where} has no action names; evaluation needs footage from `genie record`")
    if list(action_names) == ACTION_NAMES:
        return ActionClasses(tuple(MOVEMENT_CLASSES), tuple(int(c) for c in MOVEMENT_OF_ACTION))
    return ActionClasses(tuple(action_names), tuple(range(len(action_names))))
