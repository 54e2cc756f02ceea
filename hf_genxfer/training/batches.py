"""Deterministic batches: batch number -> example indices, so that a resumed run sees exactly the batches it would have.

The corpus is read as an endless concatenation of seeded permutations (one per epoch); batch `b` of process `r` is
slice `b * num_processes + r` of it. Nothing but the batch number has to be saved to resume.
"""

from __future__ import annotations

import torch


class IndexStream:
    def __init__(self, num_examples: int, batch_size: int, seed: int, process_index: int = 0, num_processes: int = 1):
        if num_examples < 1:
            raise ValueError(
                "The training set is empty: check data.classes, data.shots_per_class and the dataset path."
            )
        self.num_examples = num_examples
        self.batch_size = batch_size
        self.seed = seed
        self.process_index = process_index
        self.num_processes = num_processes
        self._permutations: dict[int, torch.Tensor] = {}

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch not in self._permutations:
            if len(self._permutations) > 4:
                self._permutations.pop(min(self._permutations))
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._permutations[epoch] = torch.randperm(self.num_examples, generator=generator)
        return self._permutations[epoch]

    def indices(self, batch_number: int) -> list[int]:
        """Example indices of this process's `batch_number`-th batch."""
        start = (batch_number * self.num_processes + self.process_index) * self.batch_size
        positions = torch.arange(start, start + self.batch_size)
        epochs, offsets = positions // self.num_examples, positions % self.num_examples
        return [int(self._permutation(int(e))[int(o)]) for e, o in zip(epochs, offsets)]
