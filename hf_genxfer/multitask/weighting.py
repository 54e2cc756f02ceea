"""Loss weighting for multi-task training: how per-task losses become one update (equal, fixed, uncertainty, GradNorm,
PCGrad), behind one call the training loop makes in place of `backward`.

Every weighting is a `LossWeighting` module with the same three calls:

```python
total = weighting.backward(losses, shared_parameters, backward_fn=accelerator.backward)  # {task: scalar loss}
optimizer.step()  # its optimizer holds the model's parameters and `weighting.parameters()` (uncertainty only)
weighting.step()  # GradNorm updates its task weights here; a no-op for the others
```

The loss-based ones (equal, fixed, uncertainty) just call `backward_fn(weighting.combine(losses))`. The gradient-based
ones need gradients at `shared_parameters` (the parameters every task uses, e.g. a shared encoder) and so do the
backward pass themselves: GradNorm takes per-task gradient norms at the last shared layer, PCGrad projects per-task
gradients of all shared parameters. Per-task gradients come from `torch.autograd.grad`, which DDP does not all-reduce:
under several processes pass `reduce_fn=lambda t: accelerator.reduce(t, "mean")` so that every process sees the same
per-task gradients (PCGrad) or weight updates (GradNorm, uncertainty). fp16 loss scaling is not supported by the
gradient-based ones (bf16 and fp32 are).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from numbers import Real

import torch
from torch import nn

BackwardFn = Callable[[torch.Tensor], None]
ReduceFn = Callable[[torch.Tensor], torch.Tensor]


def _default_backward(loss: torch.Tensor) -> None:
    torch.autograd.backward(loss)


class LossWeighting(nn.Module):
    """Base class: turns `{task: scalar loss}` into gradients. Subclasses define `combine` or override `backward`.

    A batch may hold only some tasks (whole-task batches): loss-based weightings combine the tasks given.
    """

    def __init__(self, task_names: Iterable[str]):
        super().__init__()
        names = list(task_names)
        if not names:
            raise ValueError("Loss weighting needs at least one task name, got none.")
        if len(set(names)) != len(names) or not all(isinstance(name, str) and name for name in names):
            raise ValueError(f"Task names must be distinct non-empty strings, got {names!r}.")
        self.task_names: tuple[str, ...] = tuple(names)

    def _check_losses(self, losses: Mapping[str, torch.Tensor], every_task: bool = False) -> list[str]:
        """The tasks present in `losses`, in `task_names` order, after checking names and shapes."""
        if not losses:
            raise ValueError("`losses` is empty: give at least one task's loss.")
        unknown = [name for name in losses if name not in self.task_names]
        if unknown:
            raise ValueError(f"Unknown task(s) {', '.join(map(repr, unknown))}: expected some of {self.task_names}.")
        for name, loss in losses.items():
            if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
                raise ValueError(f"The loss of task {name!r} must be a scalar tensor, got {loss!r}.")
        present = [name for name in self.task_names if name in losses]
        if every_task and len(present) != len(self.task_names):
            missing = [name for name in self.task_names if name not in losses]
            raise ValueError(
                f"{type(self).__name__} needs every task's loss in each step, missing {', '.join(map(repr, missing))}:"
                " draw mixed batches (TaskMixer.mixed_batch) or compute each task's loss."
            )
        return present

    def combine(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The weighted total of `losses` as a scalar tensor."""
        raise NotImplementedError

    def forward(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.combine(losses)

    def backward(
        self,
        losses: Mapping[str, torch.Tensor],
        shared_parameters: Iterable[nn.Parameter] | None = None,
        backward_fn: BackwardFn | None = None,
        reduce_fn: ReduceFn | None = None,
    ) -> torch.Tensor:
        """Backward pass of the weighted total (gradients accumulate into `.grad`); returns the total.

        Args:
            losses: `{task: scalar loss}` from this micro-batch.
            shared_parameters: the parameters all tasks share (needed by GradNorm and PCGrad; ignored here).
            backward_fn: how to run backward on a loss, e.g. `accelerator.backward`; `torch.autograd.backward` by default.
            reduce_fn: averages a tensor over processes under DDP, e.g. `lambda t: accelerator.reduce(t, "mean")`;
                here applied to this module's own gradients (the uncertainty weights'), which DDP does not see.
        """
        total = self.combine(losses)
        (backward_fn or _default_backward)(total)
        if reduce_fn is not None:
            for parameter in self.parameters():
                if parameter.grad is not None:
                    parameter.grad = reduce_fn(parameter.grad)
        return total

    def step(self) -> None:
        """Called after the optimizer step: GradNorm updates its weights; nothing to do for the others."""

    def weights(self) -> dict[str, float]:
        """The current weight of each task's loss, for logging."""
        raise NotImplementedError


class EqualWeighting(LossWeighting):
    """The plain sum of the task losses (every weight 1)."""

    def combine(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        present = self._check_losses(losses)
        return torch.stack([losses[name] for name in present]).sum()

    def weights(self) -> dict[str, float]:
        return dict.fromkeys(self.task_names, 1.0)


class FixedWeighting(LossWeighting):
    """`sum_i w_i * L_i` with fixed weights `{task: w_i}` (non-negative, finite).

    Args:
        weights: the weight of each task; its keys are the task names.
        task_names: when given, `weights` must name exactly these tasks (the factory passes them).
    """

    def __init__(self, weights: Mapping[str, float], task_names: Iterable[str] | None = None):
        super().__init__(weights.keys())
        if task_names is not None and set(task_names) != set(weights):
            raise ValueError(f"`weights` must name exactly the tasks {sorted(task_names)}, got {sorted(weights)}.")
        for name, weight in weights.items():
            if isinstance(weight, bool) or not (isinstance(weight, Real) and 0 <= weight < float("inf")):
                raise ValueError(f"The weight of task {name!r} must be a finite number >= 0, got {weight!r}.")
        self._weights = {name: float(weight) for name, weight in weights.items()}

    def combine(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        present = self._check_losses(losses)
        return torch.stack([self._weights[name] * losses[name] for name in present]).sum()

    def weights(self) -> dict[str, float]:
        return dict(self._weights)


class UncertaintyWeighting(LossWeighting):
    """Homoscedastic uncertainty weighting (Kendall et al., 2018) with learned log-variances `s_i = log sigma_i^2`:
    `total = sum_i 0.5 * exp(-s_i) * L_i + 0.5 * s_i` (the paper's Gaussian form, `L / (2 sigma^2) + log sigma`).

    The optimum for a loss level `L_i` is `s_i = log L_i`, i.e. weight `0.5 / L_i`: large or noisy losses get small
    weights. The `log_variances` are an `nn.Parameter` (initialised at 0, weight 0.5): add `weighting.parameters()`
    to the optimizer, preferably without weight decay, which would pull them back to 0.
    """

    def __init__(self, task_names: Iterable[str]):
        super().__init__(task_names)
        self.log_variances = nn.Parameter(torch.zeros(len(self.task_names)))

    def combine(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        present = self._check_losses(losses)
        terms = []
        for name in present:
            log_variance = self.log_variances[self.task_names.index(name)]
            terms.append(0.5 * torch.exp(-log_variance) * losses[name] + 0.5 * log_variance)
        return torch.stack(terms).sum()

    def weights(self) -> dict[str, float]:
        values = (0.5 * torch.exp(-self.log_variances.detach())).tolist()
        return dict(zip(self.task_names, values))


def _flat_gradients(loss: torch.Tensor, parameters: Sequence[nn.Parameter], retain_graph: bool = True) -> torch.Tensor:
    """d loss / d parameters flattened into one vector (zeros where the loss does not depend on a parameter)."""
    gradients = torch.autograd.grad(loss, parameters, retain_graph=retain_graph, allow_unused=True)
    return torch.cat(
        [(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(gradients, parameters)]
    )


def _shared(shared_parameters: Iterable[nn.Parameter] | None, method: str) -> list[nn.Parameter]:
    parameters = [p for p in shared_parameters or () if p.requires_grad]
    if not parameters:
        raise ValueError(f"{method} needs `shared_parameters`: the trainable parameters that every task uses.")
    return parameters


class GradNorm(LossWeighting):
    """GradNorm (Chen et al., 2018): task weights `w_i` learned so that the gradient norms of the weighted losses at a
    shared layer, `G_i = ||d (w_i L_i) / d W||`, move towards `mean(G) * r_i ** alpha`, where `r_i` is task i's loss
    ratio `L_i / L_i(0)` over the mean ratio (its relative inverse training rate): tasks that train slower get larger
    gradients. After each update the weights are renormalised to sum to the number of tasks.

    `backward` backpropagates `sum_i w_i L_i` into the model (weights held constant) and the GradNorm loss
    `sum_i |G_i - target_i|` (targets held constant) into the weights' gradient; `step` then moves the weights with
    Adam and renormalises them. The weights, their Adam moments and the initial losses `L_i(0)` (taken at the first
    call) are buffers, so `state_dict` is all a resumed run needs (register the module with
    `accelerator.register_for_checkpointing`).

    Args:
        task_names: the tasks; every task's loss must be given at each step.
        alpha: the restoring force (0: equal gradient norms; the paper uses 0.12 to 3, 1.5 by default).
        learning_rate: Adam's step size for the weights (each step moves a weight by about this much).
        min_weight: weights are clamped to at least this before renormalising, so none turns negative.

    `shared_parameters` for `backward` is the last shared layer (e.g. `model.encoder.layers[-1].parameters()`): the
    paper's choice, which keeps the extra per-task backward passes short.
    """

    def __init__(
        self,
        task_names: Iterable[str],
        alpha: float = 1.5,
        learning_rate: float = 0.025,
        min_weight: float = 1e-3,
    ):
        super().__init__(task_names)
        if not alpha >= 0:
            raise ValueError(f"`alpha` must be a number >= 0, got {alpha!r}.")
        if not learning_rate > 0:
            raise ValueError(f"`learning_rate` must be a number > 0, got {learning_rate!r}.")
        if not 0 < min_weight < 1:
            raise ValueError(f"`min_weight` must lie in (0, 1), got {min_weight!r}.")
        self.alpha = float(alpha)
        self.learning_rate = float(learning_rate)
        self.min_weight = float(min_weight)
        self.betas, self.eps = (0.9, 0.999), 1e-8
        num_tasks = len(self.task_names)
        self.register_buffer("task_weights", torch.ones(num_tasks))
        self.register_buffer("initial_losses", torch.full((num_tasks,), float("nan")))
        self.register_buffer("exp_avg", torch.zeros(num_tasks))
        self.register_buffer("exp_avg_sq", torch.zeros(num_tasks))
        self.register_buffer("num_steps", torch.zeros((), dtype=torch.long))
        # The weights' gradient accumulates over micro-batches until `step`, like a parameter's `.grad`.
        self.register_buffer("weights_grad", torch.zeros(num_tasks), persistent=False)

    def combine(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        present = self._check_losses(losses)
        weights = self.task_weights.detach()
        return torch.stack([weights[self.task_names.index(name)] * losses[name] for name in present]).sum()

    def backward(
        self,
        losses: Mapping[str, torch.Tensor],
        shared_parameters: Iterable[nn.Parameter] | None = None,
        backward_fn: BackwardFn | None = None,
        reduce_fn: ReduceFn | None = None,
    ) -> torch.Tensor:
        """Model gradients of `sum_i w_i L_i` and the weights' GradNorm gradient; returns the weighted total.

        `reduce_fn` (DDP) averages the weights' gradient over processes, so every process makes the same update.
        """
        self._check_losses(losses, every_task=True)
        shared = _shared(shared_parameters, "GradNorm")
        stacked = torch.stack([losses[name] for name in self.task_names])  # (T,)

        # 1. gradient norms of each task's loss at the shared layer (weights are multiplied in afterwards)
        norms = torch.stack([_flat_gradients(losses[name], shared).norm() for name in self.task_names]).detach()
        weights = self.task_weights.detach().clone().requires_grad_(True)
        gradient_norms = weights * norms  # G_i, differentiable w.r.t. the weights only

        # 2. targets: mean norm times the relative inverse training rate to the power alpha, held constant
        detached = stacked.detach().float()
        if torch.isnan(self.initial_losses).any():
            self.initial_losses.copy_(detached)
        loss_ratios = detached / self.initial_losses.clamp_min(1e-12)
        inverse_rates = loss_ratios / loss_ratios.mean()
        targets = (gradient_norms.mean() * inverse_rates**self.alpha).detach()

        # 3. the GradNorm loss's gradient w.r.t. the weights, kept until `step`
        gradnorm_loss = (gradient_norms - targets).abs().sum()
        (weights_grad,) = torch.autograd.grad(gradnorm_loss, weights)
        if reduce_fn is not None:
            weights_grad = reduce_fn(weights_grad)
        self.weights_grad += weights_grad

        # 4. the model's backward pass with the current weights held constant
        total = (self.task_weights.detach() * stacked).sum()
        (backward_fn or _default_backward)(total)
        return total

    @torch.no_grad()
    def step(self) -> None:
        """One Adam step on the weights with the accumulated GradNorm gradient, then renormalise them to sum to T."""
        beta1, beta2 = self.betas
        self.num_steps += 1
        t = int(self.num_steps)
        self.exp_avg.mul_(beta1).add_(self.weights_grad, alpha=1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(self.weights_grad, self.weights_grad, value=1 - beta2)
        denominator = (self.exp_avg_sq / (1 - beta2**t)).sqrt_().add_(self.eps)
        self.task_weights.addcdiv_(self.exp_avg, denominator, value=-self.learning_rate / (1 - beta1**t))
        self.task_weights.clamp_(min=self.min_weight)
        self.task_weights.mul_(len(self.task_names) / self.task_weights.sum())
        self.weights_grad.zero_()

    def weights(self) -> dict[str, float]:
        return dict(zip(self.task_names, self.task_weights.tolist()))


def _random_orders(num_tasks: int, generator: torch.Generator | None) -> list[list[int]]:
    """For each task, the other tasks in a random order."""
    orders = []
    for i in range(num_tasks):
        others = [j for j in range(num_tasks) if j != i]
        orders.append([others[k] for k in torch.randperm(len(others), generator=generator).tolist()])
    return orders


def project_conflicting_gradients(
    gradients: Sequence[torch.Tensor],
    orders: Sequence[Sequence[int]] | None = None,
    generator: torch.Generator | None = None,
) -> list[torch.Tensor]:
    """PCGrad's projection (Yu et al., 2020): for each task gradient `g_i` and each other task `j` in turn, if
    `g_i . g_j < 0`, `g_i <- g_i - (g_i . g_j / ||g_j||^2) g_j` (with the already projected `g_i`, the original `g_j`).

    Args:
        gradients: one flat gradient per task, all of the same shape.
        orders: for each task i, the order of the other tasks; random (from `generator`) when None.

    Returns:
        the projected gradients, in the input order (PCGrad's update is their sum).
    """
    num_tasks = len(gradients)
    if orders is None:
        orders = _random_orders(num_tasks, generator)
    projected = []
    for i, gradient in enumerate(gradients):
        if sorted(orders[i]) != [j for j in range(num_tasks) if j != i]:
            raise ValueError(f"orders[{i}] must list every task but {i} once, got {list(orders[i])}.")
        result = gradient.clone()
        for j in orders[i]:
            dot = torch.dot(result, gradients[j])
            if dot < 0:
                result = result - dot / gradients[j].pow(2).sum() * gradients[j]
        projected.append(result)
    return projected


class PCGrad(LossWeighting):
    """PCGrad (Yu et al., 2020): "gradient surgery" on the shared parameters. Each task's gradient is projected off the
    normal plane of every other task's gradient it conflicts with (negative dot product), in a random order, and the
    sum of the projected gradients is written into the shared parameters' `.grad`. Task-specific parameters (heads,
    decoders) get their own task's gradient as usual. Losses are not weighted (`combine` is their sum).

    The random orders are drawn from `seed` and the number of calls so far (a buffer, so a resumed run draws the same
    orders); `task_orders(call)` returns them.

    Cost: one extra backward pass per task through the shared parameters (`torch.autograd.grad`), and T flat copies
    of the shared gradient.
    """

    def __init__(self, task_names: Iterable[str], seed: int = 0):
        super().__init__(task_names)
        self.seed = int(seed)
        self.register_buffer("num_calls", torch.zeros((), dtype=torch.long))

    def combine(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        present = self._check_losses(losses)
        return torch.stack([losses[name] for name in present]).sum()

    def task_orders(self, call: int, num_tasks: int | None = None) -> list[list[int]]:
        """For call number `call`, the order in which each task's gradient is projected on the others'."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + call)
        return _random_orders(len(self.task_names) if num_tasks is None else num_tasks, generator)

    def backward(
        self,
        losses: Mapping[str, torch.Tensor],
        shared_parameters: Iterable[nn.Parameter] | None = None,
        backward_fn: BackwardFn | None = None,
        reduce_fn: ReduceFn | None = None,
    ) -> torch.Tensor:
        """Projected gradients into the shared parameters' `.grad` (added to what is there), each task's own gradient
        into its own parameters; returns the sum of the losses.

        `reduce_fn` (DDP) averages each task's shared gradient over processes before the projection, so the projection
        sees global gradients and every process writes the same `.grad` (DDP's own averaging of the shared
        parameters is overwritten; the task-specific ones keep it).
        """
        present = self._check_losses(losses)
        shared = _shared(shared_parameters, "PCGrad")

        # 1. each task's gradient on the shared parameters, flat: (P,) per task
        gradients = [_flat_gradients(losses[name], shared) for name in present]
        if reduce_fn is not None:
            gradients = [reduce_fn(gradient) for gradient in gradients]

        # 2. project conflicting gradients and sum them
        orders = self.task_orders(int(self.num_calls), len(present))
        self.num_calls += 1
        update = torch.stack(project_conflicting_gradients(gradients, orders)).sum(0)

        # 3. ordinary backward for the task-specific parameters, then overwrite the shared ones' new gradient
        before = [None if p.grad is None else p.grad.detach().clone() for p in shared]
        total = self.combine(losses)
        (backward_fn or _default_backward)(total)
        offset = 0
        for parameter, previous in zip(shared, before):
            piece = update[offset : offset + parameter.numel()].view_as(parameter).to(parameter.dtype)
            offset += parameter.numel()
            parameter.grad = piece.clone() if previous is None else previous + piece
        return total

    def weights(self) -> dict[str, float]:
        return dict.fromkeys(self.task_names, 1.0)


LOSS_WEIGHTINGS = {
    "equal": EqualWeighting,
    "fixed": FixedWeighting,
    "uncertainty": UncertaintyWeighting,
    "gradnorm": GradNorm,
    "pcgrad": PCGrad,
}


def build_loss_weighting(name: str, task_names: Iterable[str], **kwargs) -> LossWeighting:
    """The weighting called `name` ("equal", "fixed", "uncertainty", "gradnorm", "pcgrad") for `task_names`.

    `kwargs` go to its class: `weights={task: w}` for "fixed", `alpha`/`learning_rate` for "gradnorm", `seed` for
    "pcgrad".
    """
    if name not in LOSS_WEIGHTINGS:
        raise ValueError(f"Unknown loss weighting {name!r}: choose one of {', '.join(LOSS_WEIGHTINGS)}.")
    task_names = list(task_names)
    if name == "fixed":
        if "weights" not in kwargs:
            raise ValueError("The 'fixed' loss weighting needs `weights={task: weight}` for every task.")
        return FixedWeighting(task_names=task_names, **kwargs)
    return LOSS_WEIGHTINGS[name](task_names, **kwargs)


__all__ = [
    "LOSS_WEIGHTINGS",
    "EqualWeighting",
    "FixedWeighting",
    "GradNorm",
    "LossWeighting",
    "PCGrad",
    "UncertaintyWeighting",
    "build_loss_weighting",
    "project_conflicting_gradients",
]
