"""The order in which training features are visited: reproducible, resumable and sharded.

The features are visited in epochs, each a fresh permutation drawn from ``seed + epoch``; the
epochs are laid end to end into one endless stream. Global micro-batch ``i`` is stream positions
``[i*G, (i+1)*G)`` with ``G = batch_size * world_size``, and process ``r`` takes the slice
``[r*batch_size, (r+1)*batch_size)`` of it. The data position of a run is therefore one integer
(micro-batches consumed), and a single process with ``batch_size = G`` sees exactly the union of
what ``world_size`` processes see.
"""

from __future__ import annotations

import torch


class BatchSchedule:
    """Indices of the features of each micro-batch for one process."""

    def __init__(self, num_features: int, batch_size: int, *, seed: int, rank: int = 0, world_size: int = 1):
        if num_features < 1:
            raise ValueError("there are no training features to train on")
        self.num_features = num_features
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self._permutations: dict[int, list[int]] = {}

    def _permutation(self, epoch: int) -> list[int]:
        if epoch not in self._permutations:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._permutations = {epoch: torch.randperm(self.num_features, generator=generator).tolist()}
        return self._permutations[epoch]

    def indices(self, micro_batch: int) -> list[int]:
        """Feature indices of this process's part of global micro-batch ``micro_batch``."""
        global_batch = self.batch_size * self.world_size
        start = micro_batch * global_batch + self.rank * self.batch_size
        out = []
        for position in range(start, start + self.batch_size):
            epoch, offset = divmod(position, self.num_features)
            out.append(self._permutation(epoch)[offset])
        return out

    def epoch(self, micro_batch: int) -> float:
        """How many passes over the data ``micro_batch`` micro-batches make."""
        return micro_batch * self.batch_size * self.world_size / self.num_features
