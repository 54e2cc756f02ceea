"""Task mixing: rates equal their formulas, draws follow the rates, and every batch is a function of the seed and the
batch number alone (deterministic, resumable, each task read epoch by epoch)."""

import math

import numpy as np
import pytest
from datasets import Dataset

from hf_genxfer.multitask import TaskMixer, proportional_rates, round_robin_rates, temperature_rates
from hf_genxfer.multitask.mixing import _CountedDraws

SIZES = {"small": 10, "medium": 300, "large": 5000}


def binomial_tolerance(rate: float, draws: int, sigmas: float = 4.5) -> float:
    return sigmas * math.sqrt(rate * (1 - rate) / draws)


def test_rates_equal_their_formulas():
    assert proportional_rates(SIZES) == {"small": 10 / 5310, "medium": 300 / 5310, "large": 5000 / 5310}
    assert proportional_rates(SIZES, cap=100) == {"small": 10 / 210, "medium": 100 / 210, "large": 100 / 210}
    assert proportional_rates(SIZES, cap=10_000) == proportional_rates(SIZES)

    powered = {name: (size / 5310) ** (1 / 2.0) for name, size in SIZES.items()}
    assert temperature_rates(SIZES, 2.0) == {name: value / sum(powered.values()) for name, value in powered.items()}
    assert temperature_rates(SIZES, 1.0) == pytest.approx(proportional_rates(SIZES), rel=1e-12)
    assert temperature_rates(SIZES, math.inf) == {name: 1 / 3 for name in SIZES}
    assert round_robin_rates(SIZES) == {name: 1 / 3 for name in SIZES}
    # Larger temperatures flatten the mixture: the smallest task's share grows.
    shares = [temperature_rates(SIZES, t)["small"] for t in (1, 2, 5, 100)]
    assert shares == sorted(shares)

    assert TaskMixer(SIZES, "proportional", cap=100).rates == proportional_rates(SIZES, cap=100)
    assert TaskMixer(SIZES, "temperature", temperature=3.0).rates == temperature_rates(SIZES, 3.0)
    assert TaskMixer(SIZES, "round_robin").rates == round_robin_rates(SIZES)


def test_datasets_stand_for_their_sizes():
    datasets = {"a": Dataset.from_dict({"x": list(range(7))}), "b": Dataset.from_dict({"x": list(range(3))})}
    mixer = TaskMixer(datasets)
    assert mixer.sizes == {"a": 7, "b": 3}
    assert mixer.rates == {"a": 0.7, "b": 0.3}


@pytest.mark.parametrize(
    "kwargs", [{"strategy": "proportional", "cap": 200}, {"strategy": "temperature", "temperature": 2.0}]
)
def test_empirical_frequencies_match_the_rates(kwargs):
    mixer = TaskMixer(SIZES, seed=3, **kwargs)
    batches = 20_000
    tasks = [mixer.task_for_batch(b) for b in range(batches)]
    for name, rate in mixer.rates.items():
        assert abs(tasks.count(name) / batches - rate) < binomial_tolerance(rate, batches), name

    examples = [task for b in range(500) for task, _ in mixer.mixed_batch(b, 32)]
    for name, rate in mixer.rates.items():
        assert abs(examples.count(name) / len(examples) - rate) < binomial_tolerance(rate, len(examples)), name


def test_round_robin_cycles_through_the_tasks():
    mixer = TaskMixer(SIZES, "round_robin")
    names = list(SIZES)
    assert [mixer.task_for_batch(b) for b in range(7)] == [names[b % 3] for b in range(7)]
    for b in range(5):
        assert [task for task, _ in mixer.mixed_batch(b, 4)] == [names[(4 * b + j) % 3] for j in range(4)]
    # Whole-task batches: the k-th batch of a task holds positions k*B ... k*B + B-1 of that task's stream.
    first, second = mixer.task_batch(0, 4), mixer.task_batch(3, 4)
    assert first[0] == second[0] == "small"
    assert sorted(first[1] + second[1] + mixer.task_batch(6, 4)[1][:2]) == list(range(10))


@pytest.mark.parametrize("strategy", ["proportional", "temperature", "round_robin"])
def test_draws_are_deterministic_per_seed(strategy):
    def draws(seed):
        mixer = TaskMixer(SIZES, strategy, seed=seed)
        return [mixer.task_batch(b, 4) for b in range(50)], [mixer.mixed_batch(b, 8) for b in range(50)]

    assert draws(0) == draws(0)
    assert draws(0) != draws(1)


@pytest.mark.parametrize("strategy", ["proportional", "temperature", "round_robin"])
def test_a_resumed_run_draws_the_same_batches(strategy):
    sequential = TaskMixer(SIZES, strategy, seed=5)
    whole = [sequential.task_batch(b, 4) for b in range(400)]
    mixed = [sequential.mixed_batch(b, 8) for b in range(400)]
    for b in (0, 1, 63, 255, 256, 257, 399):
        resumed = TaskMixer(SIZES, strategy, seed=5)  # nothing drawn before batch b
        assert resumed.task_batch(b, 4) == whole[b]
        assert TaskMixer(SIZES, strategy, seed=5).mixed_batch(b, 8) == mixed[b]
        assert resumed.task_for_batch(b) == whole[b][0]
    # The generator form starts where it is told to.
    generator = TaskMixer(SIZES, strategy, seed=5).task_batches(4, start=100)
    assert [next(generator) for _ in range(3)] == whole[100:103]


def test_processes_read_disjoint_slices_of_one_global_sequence():
    single = TaskMixer(SIZES, seed=2)
    for r in range(3):
        process = TaskMixer(SIZES, seed=2, process_index=r, num_processes=3)
        for b in range(20):
            assert process.mixed_batch(b, 8) == single.mixed_batch(3 * b + r, 8)
            assert process.task_batch(b, 4) == single.task_batch(3 * b + r, 4)


def epochs_of(indices: list[int], size: int) -> list[list[int]]:
    return [indices[start : start + size] for start in range(0, len(indices) - size + 1, size)]


@pytest.mark.parametrize("strategy", ["proportional", "temperature", "round_robin"])
def test_every_example_of_a_task_is_visited_once_per_epoch(strategy):
    sizes = {"small": 7, "medium": 30, "large": 120}
    mixer = TaskMixer(sizes, strategy, seed=11)
    mixed = {name: [] for name in sizes}
    for b in range(120):
        for task, index in mixer.mixed_batch(b, 16):
            mixed[task].append(index)
    whole = {name: [] for name in sizes}
    for b in range(400):
        task, indices = mixer.task_batch(b, 5)
        whole[task].extend(indices)
    for drawn in (mixed, whole):
        for name, size in sizes.items():
            epochs = epochs_of(drawn[name], size)
            assert len(epochs) >= 2, f"{name}: fewer than two complete epochs drawn"
            for epoch in epochs:
                assert sorted(epoch) == list(range(size))
            assert epochs[0] != epochs[1]  # each epoch is a fresh permutation


def test_counts_before_a_position_agree_with_the_draws():
    draws = _CountedDraws(np.array([0.2, 0.3, 0.5]), seed=0, stream=1)
    tasks = draws.tasks(0, 3000)  # crosses several 256-position leaves
    for position in (0, 1, 255, 256, 257, 1000, 2999):
        assert draws.counts_before(position).tolist() == np.bincount(tasks[:position], minlength=3).tolist()
    # Across the boundary of a 2**24 chunk and far away: counts grow by the task drawn at each position.
    for position in (2**24 - 2, 2**24 - 1, 2**24, 2**24 + 1, 10**9):
        before, after = draws.counts_before(position), draws.counts_before(position + 1)
        assert before.sum() == position
        assert (after - before).tolist() == np.eye(3, dtype=int)[draws.tasks(position, position + 1)[0]].tolist()
    assert draws.tasks(2**24 - 2, 2**24 + 2).tolist() == [
        draws.tasks(p, p + 1)[0] for p in range(2**24 - 2, 2**24 + 2)
    ]


@pytest.mark.parametrize(
    "sizes, kwargs, message",
    [
        (SIZES, {"strategy": "uniform"}, "Unknown mixing strategy 'uniform'"),
        (SIZES, {"strategy": "temperature", "temperature": 0}, "`temperature` must be a number > 0"),
        (SIZES, {"strategy": "temperature", "temperature": -1.0}, "`temperature` must be a number > 0"),
        (SIZES, {"strategy": "temperature", "temperature": float("nan")}, "`temperature` must be a number > 0"),
        ({"a": 3, "b": 0}, {}, "Task 'b' has no examples"),
        ({"a": 3, "b": Dataset.from_dict({"x": []})}, {}, "Task 'b' has no examples"),
        ({}, {}, "at least one task"),
        (SIZES, {"cap": 0}, "`cap` must be a positive integer"),
        (SIZES, {"strategy": "round_robin", "cap": 10}, "`cap` applies to the 'proportional' strategy only"),
        (SIZES, {"seed": -1}, "`seed` must be a non-negative integer"),
        (SIZES, {"process_index": 2, "num_processes": 2}, "`process_index` must lie in"),
    ],
)
def test_arguments_are_validated(sizes, kwargs, message):
    with pytest.raises(ValueError, match=message):
        TaskMixer(sizes, **kwargs)


def test_batch_arguments_are_validated():
    mixer = TaskMixer(SIZES)
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer"):
        mixer.mixed_batch(0, 0)
    with pytest.raises(ValueError, match="`batch_number` must be >= 0"):
        mixer.task_batch(-1, 4)
