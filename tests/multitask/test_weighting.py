"""Loss weighting: fixed and equal weights combine exactly, uncertainty and GradNorm weights are learned in the
expected direction, PCGrad equals its projection formula, and the factory names them all."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from hf_genxfer.multitask import (
    EqualWeighting,
    FixedWeighting,
    GradNorm,
    PCGrad,
    UncertaintyWeighting,
    build_loss_weighting,
    project_conflicting_gradients,
)


def test_equal_and_fixed_weightings_combine_exactly():
    losses = {"a": torch.tensor(1.5), "b": torch.tensor(2.25), "c": torch.tensor(4.0)}
    assert EqualWeighting(["a", "b", "c"]).combine(losses).item() == 1.5 + 2.25 + 4.0
    fixed = FixedWeighting({"a": 0.5, "b": 2, "c": 0})
    assert fixed.combine(losses).item() == 0.75 + 4.5
    assert fixed.weights() == {"a": 0.5, "b": 2.0, "c": 0.0}
    # A whole-task batch gives only some tasks' losses.
    assert fixed.combine({"b": torch.tensor(3.0)}).item() == 6.0

    parameter = nn.Parameter(torch.tensor(2.0))
    total = fixed.backward({"a": parameter**2, "b": 3 * parameter})  # d/dp (0.5 p^2 + 6 p) = p + 6
    assert total.item() == 0.5 * 4 + 12 and parameter.grad.item() == 8.0


def test_losses_are_checked():
    weighting = EqualWeighting(["a", "b"])
    with pytest.raises(ValueError, match="Unknown task\\(s\\) 'z'"):
        weighting.combine({"a": torch.tensor(1.0), "z": torch.tensor(1.0)})
    with pytest.raises(ValueError, match="must be a scalar tensor"):
        weighting.combine({"a": torch.ones(2)})
    with pytest.raises(ValueError, match="`losses` is empty"):
        weighting.combine({})


def test_uncertainty_weighting_follows_its_formula():
    weighting = UncertaintyWeighting(["a", "b"])
    with torch.no_grad():
        weighting.log_variances.copy_(torch.tensor([1.0, -2.0]))
    losses = {"a": torch.tensor(3.0), "b": torch.tensor(0.5)}
    expected = 0.5 * math.exp(-1.0) * 3.0 + 0.5 * 1.0 + 0.5 * math.exp(2.0) * 0.5 + 0.5 * -2.0
    assert weighting.combine(losses).item() == pytest.approx(expected, rel=1e-6)
    assert weighting.weights() == pytest.approx({"a": 0.5 * math.exp(-1.0), "b": 0.5 * math.exp(2.0)}, rel=1e-6)


def test_uncertainty_weights_are_learned():
    generator = torch.Generator().manual_seed(0)
    weighting = UncertaintyWeighting(["noisy", "quiet"])
    optimizer = torch.optim.Adam(weighting.parameters(), lr=0.1)
    for _ in range(400):
        optimizer.zero_grad()
        noisy = 100 * (1 + 0.3 * torch.randn((), generator=generator)).abs()
        weighting.backward({"noisy": noisy, "quiet": torch.tensor(0.01)})
        optimizer.step()
    weights = weighting.weights()
    assert weights["noisy"] < 0.5 < weights["quiet"]  # both started at 0.5
    # The optimum is s = log(loss level).
    assert weighting.log_variances.detach().tolist() == pytest.approx([math.log(100), math.log(0.01)], abs=0.3)


class TwoTaskModel(nn.Module):
    """A shared layer and two heads; the "large" task's targets are 100x the "small" task's."""

    def __init__(self):
        super().__init__()
        self.shared = nn.Linear(4, 4)
        self.heads = nn.ModuleDict({"small": nn.Linear(4, 1), "large": nn.Linear(4, 1)})
        generator = torch.Generator().manual_seed(0)
        self.inputs = torch.randn(64, 4, generator=generator)
        self.targets = {
            "small": 0.1 * torch.randn(64, 1, generator=generator),
            "large": 10 * torch.randn(64, 1, generator=generator),
        }

    def losses(self) -> dict[str, torch.Tensor]:
        hidden = torch.relu(self.shared(self.inputs))  # (64, 4)
        return {name: nn.functional.mse_loss(head(hidden), self.targets[name]) for name, head in self.heads.items()}

    def weighted_gradient_norms(self, weights: dict[str, float]) -> dict[str, float]:
        losses = self.losses()
        norms = {}
        for name, loss in losses.items():
            gradients = torch.autograd.grad(loss, list(self.shared.parameters()), retain_graph=True)
            norms[name] = weights[name] * torch.cat([g.reshape(-1) for g in gradients]).norm().item()
        return norms


def test_gradnorm_equalises_gradient_norms():
    torch.manual_seed(0)
    model = TwoTaskModel()
    gradnorm = GradNorm(["small", "large"], alpha=1.5, learning_rate=0.025)
    start = model.weighted_gradient_norms(gradnorm.weights())
    assert start["large"] > 5 * start["small"]
    for _ in range(200):  # the model is not stepped: losses stay put, so the target is the mean norm for both
        gradnorm.backward(model.losses(), model.shared.parameters())
        model.zero_grad()
        gradnorm.step()
        assert sum(gradnorm.weights().values()) == pytest.approx(2.0, rel=1e-6)
    weights = gradnorm.weights()
    assert weights["small"] > 1 > weights["large"]
    end = model.weighted_gradient_norms(weights)
    assert end["small"] == pytest.approx(end["large"], rel=0.05)


def test_gradnorm_trains_the_model_with_its_weights():
    torch.manual_seed(0)
    model = TwoTaskModel()
    gradnorm = GradNorm(["small", "large"])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with torch.no_grad():
        gradnorm.task_weights.copy_(torch.tensor([1.5, 0.5]))
    # The model's gradient is that of sum_i w_i L_i with the weights held constant.
    losses = model.losses()
    expected = torch.autograd.grad(1.5 * losses["small"] + 0.5 * losses["large"], model.shared.weight)[0]
    total = gradnorm.backward(model.losses(), model.shared.parameters())
    torch.testing.assert_close(model.shared.weight.grad, expected)
    assert total.item() == pytest.approx((1.5 * losses["small"] + 0.5 * losses["large"]).item(), rel=1e-6)
    assert not gradnorm.task_weights.requires_grad

    for _ in range(100):
        optimizer.step()
        gradnorm.step()
        optimizer.zero_grad()
        gradnorm.backward(model.losses(), model.shared.parameters())
    weights = gradnorm.weights()
    assert sum(weights.values()) == pytest.approx(2.0, rel=1e-6)
    assert weights["small"] > weights["large"]

    # Resuming from state_dict continues exactly.
    resumed = GradNorm(["small", "large"])
    resumed.load_state_dict(gradnorm.state_dict())
    resumed.weights_grad.copy_(gradnorm.weights_grad)
    gradnorm.step()
    resumed.step()
    assert resumed.weights() == gradnorm.weights()


def test_gradnorm_needs_every_task_and_the_shared_parameters():
    gradnorm = GradNorm(["a", "b"])
    parameter = nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match="GradNorm needs every task's loss in each step, missing 'b'"):
        gradnorm.backward({"a": parameter.sum()}, [parameter])
    with pytest.raises(ValueError, match="GradNorm needs `shared_parameters`"):
        gradnorm.backward({"a": parameter.sum(), "b": parameter.sum()}, [])


def reference_projection(gradients: list[np.ndarray], orders: list[list[int]]) -> list[np.ndarray]:
    """The PCGrad formula written out in float64."""
    projected = []
    for i, gradient in enumerate(gradients):
        result = gradient.copy()
        for j in orders[i]:
            dot = float(result @ gradients[j])
            if dot < 0:
                result = result - dot / float(gradients[j] @ gradients[j]) * gradients[j]
        projected.append(result)
    return projected


def test_pcgrad_projection_by_hand():
    # Two conflicting tasks: each is projected on the other's normal plane.
    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    p1, p2 = project_conflicting_gradients([g1, g2])
    assert p1.tolist() == [0.5, 0.5] and p2.tolist() == [0.0, 1.0]
    assert torch.dot(p1, g2).item() == 0.0
    # Non-conflicting gradients are left alone.
    h1, h2 = torch.tensor([1.0, 0.5]), torch.tensor([0.5, 1.0])
    assert [g.tolist() for g in project_conflicting_gradients([h1, h2])] == [[1.0, 0.5], [0.5, 1.0]]
    # Three tasks: the order matters. g1 -> g2 -> g3: (2,0) -> (1,1) -> (1,0); g1 -> g3 -> g2: (2,0) -> (2,0) -> (1,1).
    gradients = [torch.tensor([2.0, 0.0]), torch.tensor([-1.0, 1.0]), torch.tensor([0.0, -1.0])]
    first = project_conflicting_gradients(gradients, orders=[[1, 2], [0, 2], [0, 1]])
    assert [g.tolist() for g in first] == [[1.0, 0.0], [0.0, 0.0], [-0.5, -0.5]]
    second = project_conflicting_gradients(gradients, orders=[[2, 1], [0, 2], [0, 1]])
    assert second[0].tolist() == [1.0, 1.0]


@pytest.mark.parametrize("num_tasks", [2, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pcgrad_matches_the_formula_on_random_gradients(num_tasks, seed):
    generator = torch.Generator().manual_seed(seed)
    gradients = [torch.randn(7, generator=generator, dtype=torch.float64) for _ in range(num_tasks)]
    orders = PCGrad(["t"]).task_orders(seed, num_tasks)
    expected = reference_projection([g.numpy() for g in gradients], orders)
    for got, want in zip(project_conflicting_gradients(gradients, orders), expected):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)


def linear_tasks(gradients: list[torch.Tensor]):
    """Losses with known gradients on a shared vector (`g_i`) and their own heads (`2 * head_i`)."""
    shared = nn.Parameter(torch.randn(gradients[0].numel()))
    heads = [nn.Parameter(torch.randn(3)) for _ in gradients]
    losses = {f"task{i}": (g * shared).sum() + heads[i].pow(2).sum() for i, g in enumerate(gradients)}
    return shared, heads, losses


@pytest.mark.parametrize("num_tasks", [2, 3])
def test_pcgrad_writes_projected_gradients_into_shared_parameters(num_tasks):
    generator = torch.Generator().manual_seed(num_tasks)
    gradients = [torch.randn(6, generator=generator) for _ in range(num_tasks)]
    shared, heads, losses = linear_tasks(gradients)
    pcgrad = PCGrad([f"task{i}" for i in range(num_tasks)], seed=4)
    orders = pcgrad.task_orders(0)
    total = pcgrad.backward(losses, [shared])
    expected = torch.stack(project_conflicting_gradients(gradients, orders)).sum(0)
    torch.testing.assert_close(shared.grad, expected)
    for head in heads:  # each head gets its own task's gradient only
        torch.testing.assert_close(head.grad, 2 * head.detach())
    assert total.item() == pytest.approx(sum(loss.item() for loss in losses.values()))

    # Gradients accumulate like `backward`'s, and a resumed PCGrad draws the same orders.
    resumed = PCGrad(pcgrad.task_names, seed=4)
    resumed.load_state_dict(pcgrad.state_dict())
    assert resumed.task_orders(int(resumed.num_calls)) == pcgrad.task_orders(1)
    second = {f"task{i}": (g * shared).sum() for i, g in enumerate(gradients)}
    pcgrad.backward(second, [shared])
    expected_second = torch.stack(project_conflicting_gradients(gradients, pcgrad.task_orders(1))).sum(0)
    torch.testing.assert_close(shared.grad, expected + expected_second)


def test_pcgrad_leaves_agreeing_gradients_alone():
    gradients = [torch.tensor([1.0, 2.0, 0.5]), torch.tensor([0.5, 1.0, 3.0]), torch.tensor([2.0, 0.1, 0.1])]
    shared, _, losses = linear_tasks(gradients)
    PCGrad(["task0", "task1", "task2"]).backward(losses, [shared])
    torch.testing.assert_close(shared.grad, sum(gradients))


def test_reduce_fn_sees_each_tasks_gradient():
    gradients = [torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])]
    shared, _, losses = linear_tasks(gradients)
    seen = []
    PCGrad(["task0", "task1"]).backward(losses, [shared], reduce_fn=lambda t: seen.append(t.clone()) or t)
    assert [t.tolist() for t in seen] == [[1.0, 0.0], [-1.0, 1.0]]


@pytest.mark.parametrize(
    "name, kwargs, cls",
    [
        ("equal", {}, EqualWeighting),
        ("fixed", {"weights": {"a": 1.0, "b": 0.5}}, FixedWeighting),
        ("uncertainty", {}, UncertaintyWeighting),
        ("gradnorm", {"alpha": 0.5}, GradNorm),
        ("pcgrad", {"seed": 1}, PCGrad),
    ],
)
def test_factory_builds_each_weighting(name, kwargs, cls):
    weighting = build_loss_weighting(name, ["a", "b"], **kwargs)
    assert type(weighting) is cls and weighting.task_names == ("a", "b")
    assert set(weighting.weights()) == {"a", "b"}


@pytest.mark.parametrize(
    "name, task_names, kwargs, message",
    [
        ("dwa", ["a", "b"], {}, "Unknown loss weighting 'dwa': choose one of equal, fixed, uncertainty"),
        ("fixed", ["a", "b"], {}, "needs `weights=\\{task: weight\\}`"),
        ("fixed", ["a", "b"], {"weights": {"a": 1.0}}, "must name exactly the tasks"),
        ("fixed", ["a"], {"weights": {"a": -1.0}}, "must be a finite number >= 0"),
        ("equal", [], {}, "at least one task name"),
        ("equal", ["a", "a"], {}, "distinct non-empty strings"),
        ("gradnorm", ["a"], {"alpha": -1}, "`alpha` must be a number >= 0"),
    ],
)
def test_factory_errors(name, task_names, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_loss_weighting(name, task_names, **kwargs)
