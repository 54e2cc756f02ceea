"""Task mixing for multi-task training: how often each task is drawn (round-robin, examples-proportional with a cap,
temperature), and which examples a batch holds, as a pure function of the seed and the batch number.

As with `training.batches.IndexStream`, nothing but the batch number has to be saved to resume: batch `b` of process
`r` is global batch `b * num_processes + r`, and its tasks and example indices are computed from that number alone.
Each task's examples are read as an endless concatenation of seeded permutations (one per epoch of that task), so
every example of a task is visited once per its epoch however the tasks are mixed.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sized
from numbers import Real

import numpy as np

MIXING_STRATEGIES = ("proportional", "round_robin", "temperature")

# Separate random streams for the three kinds of draws, so that e.g. switching between whole-task and mixed batches
# never changes the example order within a task.
_BATCH_TASKS, _EXAMPLE_TASKS, _TASK_PERMUTATIONS = 0, 1, 2


def _check_sizes(sizes: Mapping[str, int | Sized]) -> dict[str, int]:
    """`{task: number of examples}` from ints or anything with a length (e.g. a `datasets.Dataset`)."""
    if not sizes:
        raise ValueError("Task mixing needs at least one task, got none.")
    checked = {}
    for name, size in sizes.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"Task names must be non-empty strings, got {name!r}.")
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
            if not isinstance(size, Sized):
                raise TypeError(f"The size of task {name!r} must be an int or a dataset, got {type(size).__name__}.")
            size = len(size)
        if size < 1:
            raise ValueError(f"Task {name!r} has no examples: every task needs at least one.")
        checked[name] = int(size)
    return checked


def round_robin_rates(sizes: Mapping[str, int | Sized]) -> dict[str, float]:
    """Tasks in turn: every task gets the same share, `1 / number of tasks`, whatever its size."""
    sizes = _check_sizes(sizes)
    return {name: 1 / len(sizes) for name in sizes}


def proportional_rates(sizes: Mapping[str, int | Sized], cap: int | None = None) -> dict[str, float]:
    """Examples-proportional mixing (T5): `rate_i = min(n_i, cap) / sum_j min(n_j, cap)`; no cap by default.

    The cap stops a huge task from drowning the others: tasks above it are drawn as if they had `cap` examples.
    """
    sizes = _check_sizes(sizes)
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 1):
        raise ValueError(f"`cap` must be a positive integer (a number of examples) or None, got {cap!r}.")
    capped = {name: size if cap is None else min(size, int(cap)) for name, size in sizes.items()}
    total = sum(capped.values())
    return {name: size / total for name, size in capped.items()}


def temperature_rates(sizes: Mapping[str, int | Sized], temperature: float = 2.0) -> dict[str, float]:
    """Temperature mixing: `rate_i ∝ (n_i / N) ** (1 / T)`; T=1 is proportional, larger T flattens towards uniform.

    `temperature=math.inf` gives the uniform rates exactly.
    """
    sizes = _check_sizes(sizes)
    if isinstance(temperature, bool) or not (isinstance(temperature, Real) and temperature > 0):  # rejects NaN too
        raise ValueError(f"`temperature` must be a number > 0 (1 is proportional, inf uniform), got {temperature!r}.")
    total = sum(sizes.values())
    powered = {name: (size / total) ** (1 / temperature) for name, size in sizes.items()}
    norm = sum(powered.values())
    return {name: value / norm for name, value in powered.items()}


class _RoundRobinDraws:
    """Task numbers 0, 1, ..., T-1, 0, 1, ... at positions 0, 1, 2, ...: the same interface as `_CountedDraws`."""

    def __init__(self, num_tasks: int):
        self.num_tasks = num_tasks

    def tasks(self, start: int, stop: int) -> np.ndarray:
        return np.arange(start, stop) % self.num_tasks

    def counts_before(self, position: int) -> np.ndarray:
        # Task i sits at positions i, i + T, i + 2T, ...: ceil((position - i) / T) of them lie before `position`.
        return np.maximum(0, (position - np.arange(self.num_tasks) + self.num_tasks - 1) // self.num_tasks)


class _CountedDraws:
    """An endless sequence of i.i.d. task numbers drawn with `rates`, readable at any position, whose counts before any
    position cost O(log position) random draws instead of a pass over everything before it.

    The sequence is cut into chunks of 2**24 positions. A chunk's task counts are a multinomial draw; a binary tree
    splits them between its halves with multivariate hypergeometric draws (how many of each task fall in the first
    half of a random arrangement), down to leaves of 256 positions whose order is a seeded permutation. That is
    exactly the law of i.i.d. draws (given the counts, every arrangement is equally likely), and each draw is seeded
    by its place in the tree, so any position is computed the same way whatever was read before.
    """

    CHUNK_LEVELS = 24  # a chunk holds 2**24 positions
    LEAF_LEVELS = 8  # a leaf holds 2**8 positions, arranged at once
    CACHE_SIZE = 4096  # tree nodes kept: enough to read a stream sequentially without recomputing

    def __init__(self, rates: np.ndarray, seed: int, stream: int):
        self.rates = rates
        self.seed = seed
        self.stream = stream
        self.depth = self.CHUNK_LEVELS - self.LEAF_LEVELS  # levels of splits below a chunk
        self._chunk_prefix: list[np.ndarray] = [np.zeros(len(rates), dtype=np.int64)]  # counts before chunk c
        self._nodes: dict[tuple[int, int, int], np.ndarray] = {}
        self._leaves: dict[tuple[int, int], np.ndarray] = {}

    def _rng(self, *key: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.stream, *key])

    def _node_counts(self, chunk: int, level: int, node: int) -> np.ndarray:
        """Task counts of node `node` at `level` of chunk `chunk` (level 0 is the whole chunk)."""
        key = (chunk, level, node)
        if key not in self._nodes:
            if level == 0:
                counts = self._rng(chunk).multinomial(2**self.CHUNK_LEVELS, self.rates)
            else:
                parent = self._node_counts(chunk, level - 1, node // 2)
                half = 2 ** (self.CHUNK_LEVELS - level)
                first = self._rng(chunk, level, node // 2).multivariate_hypergeometric(parent, half)
                counts = first if node % 2 == 0 else parent - first
            if len(self._nodes) >= self.CACHE_SIZE:
                self._nodes.clear()
            self._nodes[key] = counts
        return self._nodes[key]

    def _leaf(self, chunk: int, node: int) -> np.ndarray:
        """Task numbers at the positions of leaf `node` of chunk `chunk`, in order."""
        key = (chunk, node)
        if key not in self._leaves:
            counts = self._node_counts(chunk, self.depth, node)
            tasks = np.repeat(np.arange(len(self.rates)), counts)
            if len(self._leaves) >= self.CACHE_SIZE:
                self._leaves.clear()
            # Level key `self.depth + 1` is never used by a split, so the arrangement has its own stream.
            self._leaves[key] = self._rng(chunk, self.depth + 1, node).permutation(tasks)
        return self._leaves[key]

    def tasks(self, start: int, stop: int) -> np.ndarray:
        """Task numbers at positions `start <= p < stop`."""
        leaf_size = 2**self.LEAF_LEVELS
        parts = []
        for leaf_index in range(start // leaf_size, (stop - 1) // leaf_size + 1):
            chunk, node = divmod(leaf_index, 2**self.depth)
            leaf = self._leaf(chunk, node)
            first = leaf_index * leaf_size
            parts.append(leaf[max(start - first, 0) : stop - first])
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def counts_before(self, position: int) -> np.ndarray:
        """How many times each task occurs at positions `0 <= p < position`."""
        chunk, offset = divmod(position, 2**self.CHUNK_LEVELS)
        while len(self._chunk_prefix) <= chunk:
            done = len(self._chunk_prefix) - 1
            self._chunk_prefix.append(self._chunk_prefix[-1] + self._node_counts(done, 0, 0))
        counts = self._chunk_prefix[chunk].copy()
        # Walk down to the leaf holding `offset`, adding the first half's counts whenever the walk turns right.
        node = 0
        for level in range(1, self.depth + 1):
            bit = (offset >> (self.CHUNK_LEVELS - level)) & 1
            if bit:
                counts += self._node_counts(chunk, level, 2 * node)
            node = 2 * node + bit
        within = offset % 2**self.LEAF_LEVELS
        counts += np.bincount(self._leaf(chunk, node)[:within], minlength=len(self.rates))
        return counts


class _TaskPermutations:
    """One task's examples as an endless concatenation of seeded permutations, one per epoch of that task."""

    def __init__(self, name: str, size: int, seed: int):
        self.size = size
        # Keyed by the task's name, not its place in the mixture, so adding a task leaves the others' orders alone.
        self._key = [seed, _TASK_PERMUTATIONS, zlib.crc32(name.encode("utf-8"))]
        self._epochs: dict[int, np.ndarray] = {}

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._epochs:
            if len(self._epochs) > 4:
                self._epochs.pop(min(self._epochs))
            self._epochs[epoch] = np.random.default_rng([*self._key, epoch]).permutation(self.size)
        return self._epochs[epoch]

    def indices(self, positions: np.ndarray) -> list[int]:
        epochs, offsets = np.divmod(positions, self.size)
        return [int(self._permutation(int(epoch))[offset]) for epoch, offset in zip(epochs, offsets)]


class TaskMixer:
    """Which task each batch (or each example of a batch) comes from, and which of that task's examples, for
    multi-task training over several datasets; deterministic from the seed and the batch number alone.

    Two ways to mix:
    - whole-task batches ([`task_batch`]): a batch is drawn from one task with the mixing rates, then filled with
      that task's next examples (the loss is one task's; use when tasks need different collators or heads);
    - mixed batches ([`mixed_batch`]): each example's task is drawn with the rates (every task's loss in each step:
      what gradient-based loss weighting such as GradNorm or PCGrad needs).

    Either way, the k-th example drawn from task t is position k of t's stream of seeded permutations, so each task
    is read epoch by epoch, and batch `b` is the same whether or not batches before it were drawn (reading any batch
    costs O(log b) seeded draws; recent tree nodes are cached, so reading in order is cheaper still).

    Args:
        sizes: `{task name: number of examples}`; a dataset (anything with `len`) stands for its length.
        strategy: "proportional" (examples-proportional, capped by `cap`), "round_robin" (tasks in turn: batches
            for `task_batch`, examples within a batch for `mixed_batch`) or "temperature" (`(n_i / N) ** (1 / T)`).
        cap: for "proportional" only, the number of examples above which a task counts as `cap` (T5's K).
        temperature: for "temperature" only, T > 0 (1 is proportional, `math.inf` uniform); checked always.
        seed: seeds every draw (round-robin task order does not depend on it; example orders do).
        process_index, num_processes: as in `IndexStream`, batch `b` of process `r` is global batch
            `b * num_processes + r`, so processes never read the same batch.

    Positions in each task's stream are counted in batches of `batch_size`: keep it the same for a whole run.

    Example:
    ```python
    >>> datasets = {"en": train_en, "fr": train_fr, "de": train_de}
    >>> mixer = TaskMixer(datasets, strategy="temperature", temperature=2.0)
    >>> task, indices = mixer.task_batch(step, batch_size=32)  # whole-task batch
    >>> batch = collate(datasets[task].select(indices))
    >>> pairs = mixer.mixed_batch(step, batch_size=32)  # [(task, index), ...]: mixed batch
    ```
    """

    def __init__(
        self,
        sizes: Mapping[str, int | Sized],
        strategy: str = "proportional",
        cap: int | None = None,
        temperature: float = 2.0,
        seed: int = 0,
        process_index: int = 0,
        num_processes: int = 1,
    ):
        self.sizes = _check_sizes(sizes)
        if strategy not in MIXING_STRATEGIES:
            raise ValueError(f"Unknown mixing strategy {strategy!r}: choose one of {', '.join(MIXING_STRATEGIES)}.")
        if cap is not None and strategy != "proportional":
            raise ValueError(f"`cap` applies to the 'proportional' strategy only, not {strategy!r}.")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"`seed` must be a non-negative integer, got {seed!r}.")
        if not 0 <= process_index < num_processes:
            raise ValueError(
                f"`process_index` must lie in [0, num_processes), got {process_index} of {num_processes}."
            )
        temperature_rates({"check": 1}, temperature)  # the same error for a bad temperature whatever the strategy
        self.strategy = strategy
        self.cap = cap
        self.temperature = temperature
        self.seed = int(seed)
        self.process_index = process_index
        self.num_processes = num_processes
        self.task_names = list(self.sizes)

        if strategy == "proportional":
            self.rates = proportional_rates(self.sizes, cap)
        elif strategy == "temperature":
            self.rates = temperature_rates(self.sizes, temperature)
        else:
            self.rates = round_robin_rates(self.sizes)
        if strategy == "round_robin":
            self._batch_tasks = self._example_tasks = _RoundRobinDraws(len(self.sizes))
        else:
            probabilities = np.array([self.rates[name] for name in self.task_names], dtype=np.float64)
            self._batch_tasks = _CountedDraws(probabilities, self.seed, _BATCH_TASKS)
            self._example_tasks = _CountedDraws(probabilities, self.seed, _EXAMPLE_TASKS)
        self._streams = {name: _TaskPermutations(name, size, self.seed) for name, size in self.sizes.items()}

    def _global_batch(self, batch_number: int) -> int:
        if batch_number < 0:
            raise ValueError(f"`batch_number` must be >= 0, got {batch_number}.")
        return batch_number * self.num_processes + self.process_index

    @staticmethod
    def _check_batch_size(batch_size: int) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")

    def task_for_batch(self, batch_number: int) -> str:
        """The task a whole-task batch `batch_number` comes from."""
        position = self._global_batch(batch_number)
        return self.task_names[int(self._batch_tasks.tasks(position, position + 1)[0])]

    def task_batch(self, batch_number: int, batch_size: int) -> tuple[str, list[int]]:
        """Whole-task batch `batch_number`: its task and `batch_size` example indices into that task's dataset."""
        self._check_batch_size(batch_size)
        position = self._global_batch(batch_number)
        task = int(self._batch_tasks.tasks(position, position + 1)[0])
        batches_before = int(self._batch_tasks.counts_before(position)[task])
        name = self.task_names[task]
        start = batches_before * batch_size
        return name, self._streams[name].indices(np.arange(start, start + batch_size))

    def mixed_batch(self, batch_number: int, batch_size: int) -> list[tuple[str, int]]:
        """Mixed batch `batch_number`: `batch_size` pairs `(task, example index into that task's dataset)`."""
        self._check_batch_size(batch_size)
        start = self._global_batch(batch_number) * batch_size
        tasks = self._example_tasks.tasks(start, start + batch_size)
        seen = self._example_tasks.counts_before(start)  # examples of each task drawn before this batch
        pairs: list[tuple[str, int]] = [("", 0)] * batch_size
        for task in np.unique(tasks):
            where = np.flatnonzero(tasks == task)
            name = self.task_names[int(task)]
            for j, index in zip(where, self._streams[name].indices(seen[task] + np.arange(len(where)))):
                pairs[j] = (name, index)
        return pairs

    def task_batches(self, batch_size: int, start: int = 0):
        """Endless whole-task batches `(task, indices)` from batch number `start` on (resume: start at the step)."""
        batch_number = start
        while True:
            yield self.task_batch(batch_number, batch_size)
            batch_number += 1

    def __repr__(self) -> str:
        rates = ", ".join(f"{name}: {rate:.4g}" for name, rate in self.rates.items())
        return f"TaskMixer(strategy={self.strategy!r}, rates={{{rates}}}, seed={self.seed})"


__all__ = [
    "MIXING_STRATEGIES",
    "TaskMixer",
    "proportional_rates",
    "round_robin_rates",
    "temperature_rates",
]
