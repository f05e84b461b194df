"""Latent action <-> real action, the one place: every map is read off the co-occurrence table of
the latent actions a world infers and the true actions of the same transitions.

- latent -> real (fit_action_map, ActionMap): each latent goes to the true action it co-occurs
  with most. `genie label --map` writes the mapped name beside each latent; the probe
  (lookup_probe) fits the map on half the episodes and scores it on the other half.
- real -> latent (direction_latents): for each direction the latent most often seen with it
  relative to its own use, argmax_l P(direction | l), which key following holds.
  genie/play/keymap.py's label method uses the other conditional, P(l | key) - P(l), so a latent
  used everywhere does not win every key.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def fit_action_map(latent: np.ndarray, true: np.ndarray, num_latent: int,
                   num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The lookup probe's map: each latent action -> the true action it co-occurs with most.

    latent, true: int [M] paired transitions (true -1 = unknown, ignored; at least one known).
    Returns (mapping int64 [num_latent], counts int64 [num_latent, num_classes]); a latent action
    never seen with a known true action maps to the most frequent true action overall.
    num_classes defaults to the largest true action + 1.
    """
    keep = true >= 0
    latent, true = np.asarray(latent)[keep].astype(np.int64), np.asarray(true)[keep].astype(np.int64)
    classes = int(true.max()) + 1 if num_classes is None else int(num_classes)
    table = np.zeros((num_latent, classes), dtype=np.int64)
    np.add.at(table, (latent, true), 1)
    fallback = np.bincount(true, minlength=classes).argmax()
    return np.where(table.sum(1) > 0, table.argmax(1), fallback), table


@dataclass
class ActionMap:
    """Latent action -> real action, fit on footage with true actions (see fit_map)."""

    mapping: np.ndarray  # int64 [num_latent]: real action id of each latent action
    names: list[str]  # real action names, indexed by real action id
    counts: np.ndarray  # int64 [num_latent, num_real]: co-occurrences the map was fit on
    agreement: float  # share of the fit transitions whose true action is the mapped one
    majority: float  # share of the most frequent true action (the baseline to beat)
    source: str

    @classmethod
    def fit(cls, latent: np.ndarray, true: np.ndarray, names: list[str], num_latent: int, source: str) -> ActionMap:
        """Fit on paired transitions (true -1 = unknown; at least one known); names[i] names true
        action i (ids past the names are named by their number)."""
        known = true >= 0
        classes = max(len(names), int(true.max()) + 1)
        names = [*names, *(str(i) for i in range(len(names), classes))]
        mapping, counts = fit_action_map(latent, true, num_latent, classes)
        agreement = float((mapping[latent[known]] == true[known]).mean())
        majority = float(np.bincount(true[known], minlength=classes).max() / known.sum())
        return cls(mapping, names, counts, agreement, majority, source)

    def name(self, latent: int) -> str:
        return self.names[int(self.mapping[latent])]

    def describe(self) -> str:
        seen = self.counts.sum(1)
        pairs = ", ".join(f"{a}->{self.name(a)}" + ("" if seen[a] else " (unseen)") for a in range(len(self.mapping)))
        return (f"map from {self.source} ({int(seen.sum()):,} transitions with true actions): {pairs}; "
                f"agreement on that footage {self.agreement:.1%} (majority baseline {self.majority:.1%})")


def fit_half(episodes: np.ndarray) -> np.ndarray:
    """bool [M]: the transitions whose episode is in the probe's fit half (a fixed random half)."""
    unique = np.unique(episodes)
    fit_eps = np.random.default_rng(0).permutation(unique)[: len(unique) // 2]
    return np.isin(episodes, fit_eps)


def lookup_probe(latent: np.ndarray, true: np.ndarray, episodes: np.ndarray, num_latent: int,
                 num_classes: int | None = None) -> dict:
    """Fit latent -> most frequent true action on half the episodes (fit_half), score it on the other."""
    fit, keep = fit_half(episodes), true >= 0
    if len(np.unique(episodes[keep])) < 2 or not (keep & fit).any() or not (keep & ~fit).any():
        return {"note": "needs footage of at least 2 episodes with true actions"}
    classes = int(true.max()) + 1 if num_classes is None else num_classes
    mapping, counts = fit_action_map(latent[fit & keep], true[fit & keep], num_latent, classes)
    test_true = true[~fit & keep]
    return {
        "accuracy": float((mapping[latent[~fit & keep]] == test_true).mean()),
        "majority_baseline": float(np.bincount(test_true, minlength=classes).max() / len(test_true)),
        "fit_transitions": int((fit & keep).sum()),
        "test_transitions": int((~fit & keep).sum()),
        "mapping": mapping.tolist(),
        "counts": counts.tolist(),
    }


def direction_latents(probe_h: dict, min_share: float = 0.01) -> dict[str, int]:
    """For each direction, the latent action seen with it most often relative to its own use,
    argmax_l P(direction | l), among latents used in at least `min_share` of the fit transitions."""
    counts = np.asarray(probe_h["counts"], dtype=np.float64)  # [A, 3]: left, none, right
    used = counts.sum(1)
    eligible = used >= min_share * used.sum()
    share = counts / np.maximum(used[:, None], 1)
    column = {"left": 0, "none": 1, "right": 2}
    return {d: int(np.argmax(np.where(eligible, share[:, c], -1))) for d, c in column.items()}
