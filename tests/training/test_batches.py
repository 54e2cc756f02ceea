"""The batch streams behind bit-exact resume: a batch is a function of its number alone (no iterator state)."""

import pytest
import torch

from hf_genxfer.recipes import MultitaskRecipe
from hf_genxfer.training.batches import IndexStream, LengthGroupedStream, TaskBatches


def test_each_epoch_is_a_seeded_permutation():
    stream = IndexStream(num_examples=10, batch_size=4, seed=3)
    drawn = [i for b in range(5) for i in stream.indices(b)]  # 20 indices: two epochs
    assert sorted(drawn[:10]) == list(range(10)) and sorted(drawn[10:]) == list(range(10))
    assert drawn[:10] != drawn[10:]  # a new permutation per epoch
    assert drawn == [i for b in range(5) for i in IndexStream(10, 4, seed=3).indices(b)]  # same seed, same stream
    assert drawn != [i for b in range(5) for i in IndexStream(10, 4, seed=4).indices(b)]


def test_a_batch_does_not_depend_on_what_was_read_before():
    fresh = IndexStream(100, 8, seed=0)
    used = IndexStream(100, 8, seed=0)
    for b in range(40):
        used.indices(b)
    assert fresh.indices(37) == used.indices(37)  # what a resumed run reads at batch 37


def test_processes_read_disjoint_shares():
    streams = [IndexStream(64, 4, seed=0, process_index=r, num_processes=2) for r in range(2)]
    for b in range(8):  # one epoch: 64 examples = 8 batches per process x 2 processes x 4
        first, second = streams[0].indices(b), streams[1].indices(b)
        assert not set(first) & set(second)
    together = [i for b in range(8) for s in streams for i in s.indices(b)]
    assert together == IndexStream(64, 8, seed=0).indices(0) + [
        i for b in range(1, 8) for i in IndexStream(64, 8, seed=0).indices(b)
    ]


def test_an_empty_training_set_is_one_sentence():
    with pytest.raises(ValueError, match="The training set is empty"):
        IndexStream(0, 4, seed=0)


@pytest.mark.parametrize("weighting", ["equal", "gradnorm"])
def test_task_batches_follow_the_mixing_and_resume_by_number(weighting):
    multitask = MultitaskRecipe(mixing="proportional", loss_weighting=weighting)
    sizes = {"a": 300, "b": 100}
    plan = TaskBatches(sizes, batch_size=8, multitask=multitask, seed=0)
    pairs = [pair for b in range(200) for pair in plan.pairs(b)]
    share = sum(task == "a" for task, _ in pairs) / len(pairs)
    assert share == pytest.approx(0.75, abs=0.05)  # proportional: 300 of 400 examples
    assert all(0 <= index < sizes[task] for task, index in pairs)
    again = TaskBatches(sizes, batch_size=8, multitask=multitask, seed=0)
    assert again.pairs(123) == plan.pairs(123)
    if weighting == "gradnorm":  # gradient-based weightings see every task in every batch
        assert all({task for task, _ in plan.pairs(b)} == {"a", "b"} for b in range(50))
        assert torch.tensor([len(plan.pairs(b)) for b in range(10)]).unique().tolist() == [8]


def _reference_indices(stream: IndexStream, batch_number: int) -> list[int]:
    """The stream's indices one position at a time (the definition that resumed runs rely on)."""
    start = (batch_number * stream.num_processes + stream.process_index) * stream.batch_size
    positions = range(start, start + stream.batch_size)
    return [int(stream._permutation(p // stream.num_examples)[p % stream.num_examples]) for p in positions]


@pytest.mark.parametrize("processes", [1, 3])
def test_sliced_indices_match_the_position_by_position_definition(processes):
    for rank in range(processes):
        stream = IndexStream(num_examples=23, batch_size=5, seed=7, process_index=rank, num_processes=processes)
        for b in range(30):  # batches that straddle epochs included
            assert stream.indices(b) == _reference_indices(stream, b)


def test_length_grouped_batches_cut_padding_and_cover_every_example():
    lengths = torch.randint(1, 60, (400,), generator=torch.Generator().manual_seed(0)).tolist()
    grouped = LengthGroupedStream(lengths, batch_size=8, seed=0, group=10)
    plain = IndexStream(400, 8, seed=0)

    def padding(stream):
        padded = real = 0
        for b in range(50):  # one pass: 50 batches of 8 over 400 examples
            batch = [lengths[i] for i in stream.indices(b)]
            padded, real = padded + len(batch) * max(batch), real + sum(batch)
        return 1 - real / padded

    assert padding(grouped) < 0.5 * padding(plain)
    seen = [i for b in range(50) for i in grouped.indices(b)]
    assert sorted(seen) == list(range(400))  # every example once per pass
    again = LengthGroupedStream(lengths, batch_size=8, seed=0, group=10)
    assert again.indices(37) == grouped.indices(37)  # a batch follows from its number alone (resume)
    assert [grouped.indices(b) for b in range(10)] != [
        LengthGroupedStream(lengths, 8, seed=1, group=10).indices(b) for b in range(10)
    ]


def test_length_grouped_processes_read_disjoint_shares():
    lengths = list(range(1, 97))
    streams = [LengthGroupedStream(lengths, 4, seed=0, process_index=r, num_processes=2, group=6) for r in range(2)]
    seen = [i for b in range(12) for s in streams for i in s.indices(b)]
    assert sorted(seen) == list(range(96))
