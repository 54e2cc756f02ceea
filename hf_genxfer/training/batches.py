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
        return self.span(start, start + self.batch_size).tolist()

    def span(self, start: int, end: int) -> torch.Tensor:
        """Positions [start, end) of the endless stream of permutations, as slices of them (no Python loop per index)."""
        pieces = []
        while start < end:
            epoch, offset = divmod(start, self.num_examples)
            take = min(end - start, self.num_examples - offset)
            pieces.append(self._permutation(epoch)[offset : offset + take])
            start += take
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces)


class LengthGroupedStream(IndexStream):
    """
    `training.group_by_length`: batches of examples of similar length, so that little padding is computed (as
    transformers' `group_by_length`, and resumable like `IndexStream`: a batch follows from its number alone).

    The stream is cut into mega-batches of `group` consecutive batches (over all processes); within one, examples are
    sorted by length (longest first) and cut into batches again, and those batches are put in a seeded random order.
    Every example is still seen once per pass over the stream.
    """

    def __init__(
        self, lengths, batch_size: int, seed: int, process_index: int = 0, num_processes: int = 1, group: int = 50
    ):
        super().__init__(len(lengths), batch_size, seed, process_index, num_processes)
        self.lengths = torch.as_tensor(lengths, dtype=torch.long)
        self.group = group
        self._cached: tuple[int, list[torch.Tensor]] | None = None

    def _mega_batch(self, number: int) -> list[torch.Tensor]:
        if self._cached is None or self._cached[0] != number:
            size = self.group * self.batch_size
            members = self.span(number * size, (number + 1) * size)
            # Stable, longest first: ties keep the permutation's (seeded) order.
            ordered = members[torch.sort(self.lengths[members], descending=True, stable=True).indices]
            batches = list(ordered.split(self.batch_size))
            generator = torch.Generator().manual_seed(self.seed * 1_000_033 + number)
            order = torch.randperm(len(batches), generator=generator).tolist()
            self._cached = (number, [batches[k] for k in order])
        return self._cached[1]

    def indices(self, batch_number: int) -> list[int]:
        overall = batch_number * self.num_processes + self.process_index
        return self._mega_batch(overall // self.group)[overall % self.group].tolist()


class TaskBatches:
    """
    The batches of a multi-task run as (task, example index) pairs, from the batch number alone (resumable).

    The recipe's mixing draws each example's task; gradient-based loss weightings (GradNorm, PCGrad) compare every
    task's gradient at each step, so for them each batch holds every task, in numbers following the mixing rates
    (at least one example each). Only `train_tasks` (default: all) are drawn.
    """

    def __init__(
        self,
        sizes: dict[str, int],
        batch_size: int,
        multitask,
        seed: int,
        process_index: int = 0,
        num_processes: int = 1,
    ):
        from ..multitask import TaskMixer

        train_tasks = multitask.train_tasks or list(sizes)
        self.batch_size = batch_size
        self.mixer = TaskMixer(
            {task: sizes[task] for task in train_tasks},
            strategy=multitask.mixing,
            cap=multitask.cap,
            temperature=multitask.temperature,
            seed=seed,
            process_index=process_index,
            num_processes=num_processes,
        )
        self.streams = None
        if multitask.loss_weighting in ("gradnorm", "pcgrad"):
            counts = {task: max(1, round(rate * batch_size)) for task, rate in self.mixer.rates.items()}
            self.streams = {
                task: IndexStream(sizes[task], counts[task], seed + k, process_index, num_processes)
                for k, task in enumerate(train_tasks)
            }

    def pairs(self, batch_number: int) -> list[tuple[str, int]]:
        if self.streams is not None:
            return [(task, i) for task, stream in self.streams.items() for i in stream.indices(batch_number)]
        return self.mixer.mixed_batch(batch_number, self.batch_size)


def build_weighting(multitask, task_names: list[str]):
    """The recipe's loss weighting over the tasks that train."""
    from ..multitask import build_loss_weighting

    options = {"weights": multitask.task_weights} if multitask.loss_weighting == "fixed" else {}
    if multitask.loss_weighting == "gradnorm":
        options["alpha"] = multitask.gradnorm_alpha
    return build_loss_weighting(multitask.loss_weighting, multitask.train_tasks or task_names, **options)
