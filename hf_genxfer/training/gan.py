"""The GAN family's part of the one training loop: losses, R1, the EMA generator, the two-phase step, sample grids,
FID/KID evaluation, and how a GAN source is built, checked and described in its card."""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from transformers import get_scheduler

from ..data.images import load_image_splits
from ..errors import ModelFolderError
from ..evaluation.image_scores import score_generator
from ..models.gan import GANConfig, GANDiscriminator, GANModel, GANPipeline
from ..recipes import Recipe, task_data
from ..transfer import DiffAugment, TransferReport, transfer_parameters
from ..transfer.correspondence import CrossDomainCorrespondence
from ..utils import image_grid
from .batches import IndexStream
from .ema import GeneratorEMA
from .run import Run, RunState, optimizer_options, place_model
from .strategy import adapter_base, parameter_groups

GAN_ADAM_BETAS = (0.0, 0.99)


# --------------------------------------------------------------------------------------------------------------------
# Losses


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()  # non-saturating


def generator_loss(fake_logits: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "hinge":
        return -fake_logits.mean()
    return F.softplus(-fake_logits).mean()  # non-saturating


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """Mean squared gradient norm of D at the real images (Mescheder et al., 2018)."""
    (gradients,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return gradients.pow(2).flatten(1).sum(1).mean()


# --------------------------------------------------------------------------------------------------------------------
# Sources and models


def check_gan_source(model_type: str | None, name_or_path: str) -> None:
    """A GAN starts from a GAN run folder or Hub id only."""
    if model_type != GANConfig.model_type:
        raise ModelFolderError(
            f"init_from {name_or_path!r} is a {model_type} model and this recipe's family is gan: start a GAN "
            f"from a GAN run folder or Hub id (model_type {GANConfig.model_type}), or set family: seq2seq."
        )


def load_gan_source(name_or_path: str) -> GANModel:
    return GANModel.from_pretrained(name_or_path, use_safetensors=True)


def build_gan(recipe: Recipe, source=None) -> tuple[GANModel, TransferReport | None]:
    """
    The model a recipe starts from. `init_from: scratch` builds `recipe.model`; from a `source` (the resolved
    `init_from`), a target with the source's config updated by `recipe.model` (e.g. another `num_classes`) is built
    and the source weights are transferred into it (`transfer.include` / `transfer.exclude` select which), with a
    report; tasks added by `multitask.init_new_tasks_from` start as copies of existing ones.
    """
    if recipe.init_from == "scratch":
        return GANModel(GANConfig(**recipe.model)), None
    if source is None:
        from ..families import get_family
        from ..source import load_source

        source = load_source(recipe.init_from, get_family("gan"))
    config = GANConfig.from_dict({**source.model.config.to_dict(), **recipe.model})
    config.base_model = recipe.init_from
    target = GANModel(config)
    report = transfer_parameters(
        source.model, target, include=recipe.transfer.include, exclude=recipe.transfer.exclude
    )
    for new_task, existing in (recipe.multitask.init_new_tasks_from or {}).items():
        target.start_task_from(new_task, existing)
    return target, report


def reinitialise_discriminator(model: GANModel, seed: int, report: TransferReport | None = None) -> None:
    """
    `transfer.fresh_discriminator`: the discriminator goes back to a seeded initialisation (the transfer report says
    so per tensor). On few-shot new classes the source discriminator, trained against the source generator on other
    classes, slows adaptation down; a fresh one co-evolves with the transferred generator as in training from scratch.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = GANDiscriminator(model.config)
    missing, unexpected = model.discriminator.load_state_dict(fresh.state_dict(), strict=False)
    if unexpected or any(not name.endswith(("_u", "_v")) for name in missing):
        raise RuntimeError(f"Could not re-initialise the discriminator: missing {missing}, unexpected {unexpected}.")
    if report is not None:
        for entry in report.entries:
            if entry.name.startswith("discriminator.") and entry.status in ("copied", "remapped"):
                entry.status, entry.reason, entry.transferred = "initialised", "transfer.fresh_discriminator", 0


class NoiseState:
    """The seeded CPU generator behind latents and fake labels, kept in checkpoints (one per process) so that resuming
    is exact."""

    def __init__(self, seed: int):
        self.generator = torch.Generator().manual_seed(seed)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


class GANRun(Run):
    def __init__(self, recipe: Recipe, accelerator: Accelerator, source=None):
        super().__init__(recipe, accelerator, source)
        training = recipe.training
        self.model, report = build_gan(recipe, source)
        self.report = report
        self.config = self.model.config
        self.task_names = self.config.task_names
        with accelerator.main_process_first():
            if self.task_names is None:
                splits = {None: load_image_splits(recipe.data, self.config)}
            else:
                splits = {
                    task: load_image_splits(task_data(recipe.data, task), self.config) for task in self.task_names
                }
        # One tensor of training images for all tasks; a task's images start at its offset. It is placed on the
        # device once (when under 1 GiB), so that a batch is an index into it, with no copy from the host per step.
        self.held_out = {task: split["held_out"] for task, split in splits.items()}
        self.train_images = torch.cat([split["train"][0] for split in splits.values()])
        labels = [split["train"][1] for split in splits.values()]
        self.train_labels = None if labels[0] is None else torch.cat(labels)
        if self.train_images.element_size() * self.train_images.nelement() < 2**30:
            self.train_images = self.train_images.to(accelerator.device)
            if training.channels_last:
                self.train_images = self.train_images.contiguous(memory_format=torch.channels_last)
            if self.train_labels is not None:
                self.train_labels = self.train_labels.to(accelerator.device)
        sizes = {task: len(split["train"][0]) for task, split in splits.items()}
        if self.task_names is None:
            self.held_out_images, self.held_out_labels = self.held_out[None]
            self.stream = IndexStream(
                len(self.train_images),
                training.batch_size,
                recipe.seed,
                accelerator.process_index,
                accelerator.num_processes,
            )
        else:
            self.setup_multitask(sizes, self.task_names)
        self.noise = NoiseState(recipe.seed * 7919 + accelerator.process_index)
        if self.train_labels is not None:
            self.classes = torch.unique(self.train_labels)

        # Transfer strategy: freeze, add adapters, anchor the regulariser at the source generator (EWC's Fisher
        # against the source discriminator), then restart the discriminator when asked.
        transfer = recipe.transfer
        cdc = None
        if transfer.cdc_weight and recipe.init_from != "scratch":
            cdc = CrossDomainCorrespondence(self.model.generator, transfer.cdc_weight, transfer.cdc_batch_size)
        self.setup_strategy(
            self.model,
            "generator",
            report,
            fisher_loss=self._fisher_loss,
            fisher_batches=self._fisher_batches(transfer.fisher_batches) if recipe.init_from != "scratch" else None,
            regularized=self.model.generator,
            after_regularizer=(
                (lambda: reinitialise_discriminator(self.model, recipe.seed, report))
                if transfer.fresh_discriminator
                else None
            ),
        )
        self.augment = DiffAugment(transfer.diffaugment) if transfer.diffaugment else None
        self.cdc = cdc  # holds a copy of the source generator, taken before freezing and adapters

        betas = tuple(training.adam_betas) if training.adam_betas is not None else GAN_ADAM_BETAS
        d_lr = training.discriminator_learning_rate or training.learning_rate
        generator_groups = parameter_groups(self.model.generator, training.learning_rate, transfer)
        if training.latent_learning_rate is not None and self.config.learned_latent_affine:
            # The latent's shift and scale move in latent units (about 1), far more than a weight should per step.
            affine = (self.model.generator.latent_shift, self.model.generator.latent_log_scale)
            for group in generator_groups:
                group["params"] = [p for p in group["params"] if all(p is not a for a in affine)]
            generator_groups.append(
                {"params": [p for p in affine if p.requires_grad], "lr": training.latent_learning_rate}
            )
            generator_groups = [group for group in generator_groups if group["params"]]
        if self.weighting is not None and any(True for _ in self.weighting.parameters()):
            generator_groups.append({"params": list(self.weighting.parameters()), "lr": training.learning_rate})
        kernels = optimizer_options(training)
        generator_optimizer = torch.optim.Adam(generator_groups, lr=training.learning_rate, betas=betas, **kernels)
        discriminator_optimizer = torch.optim.Adam(
            parameter_groups(self.model.discriminator, d_lr, transfer), lr=d_lr, betas=betas, **kernels
        )
        # Each network on its own (each is called directly); with training.compile, the R1 steps run the
        # discriminator eagerly (no double backward through compile).
        place_model([self.model.generator, self.model.discriminator], training)
        schedulers = [
            get_scheduler(
                training.lr_scheduler,
                opt,
                num_warmup_steps=training.warmup_steps,
                num_training_steps=training.lr_schedule_steps or training.max_steps,
            )
            for opt in (generator_optimizer, discriminator_optimizer)
        ]
        # Generator and discriminator are prepared separately, each with its own optimizer and scheduler, in two
        # `prepare` calls: separate DDP wrappers, and FSDP2 (which takes one model per call) shards each on its own.
        self.generator, self.generator_optimizer, self.generator_scheduler = accelerator.prepare(
            self.model.generator, generator_optimizer, schedulers[0]
        )
        self.discriminator, self.discriminator_optimizer, self.discriminator_scheduler = accelerator.prepare(
            self.model.discriminator, discriminator_optimizer, schedulers[1]
        )
        self.generator_module = accelerator.unwrap_model(self.generator)
        if self.weighting is not None:
            self.weighting.to(accelerator.device)
            shared = [
                p
                for n, p in self.generator_module.named_parameters()
                if p.requires_grad and not n.startswith("task_heads.")
            ]
            # GradNorm balances gradient norms at the last shared layer; PCGrad projects on every shared weight.
            last = (
                self.generator_module.blocks[-1]
                if len(self.generator_module.blocks)
                else self.generator_module.mapping
            )
            self.shared_parameters = (
                [p for p in last.parameters() if p.requires_grad]
                if self.recipe.multitask.loss_weighting == "gradnorm"
                else shared
            )
        if self.regularizer is not None:
            self.regularizer.to(accelerator.device)
        if self.cdc is not None:
            self.cdc.to(accelerator.device)
        self.discriminator_module = accelerator.unwrap_model(self.discriminator)
        self.ema = None
        if training.ema_decay is not None:
            self.ema = GeneratorEMA(self.generator_module.parameters(), decay=training.ema_decay)
            self.generator_parameters = list(self.generator_module.parameters())  # listed once for the EMA update
            self.ema.to(accelerator.device)
        self.sample_latents = torch.randn(64, self.config.latent_size, generator=torch.Generator().manual_seed(1234))
        self.sample_labels = None
        if self.config.num_classes is not None:
            self.sample_labels = self.classes[torch.arange(64) % len(self.classes)]
        self.sample_tasks = None
        if self.task_names is not None:  # one row of the grid per task, in turn
            self.sample_tasks = [self.task_names[(i // 8) % len(self.task_names)] for i in range(64)]
            if self.config.num_classes is not None:
                task_classes = {task: torch.unique(split["train"][1]) for task, split in splits.items()}
                self.sample_labels = torch.stack(
                    [task_classes[task][i % len(task_classes[task])] for i, task in enumerate(self.sample_tasks)]
                )

    def _fisher_batches(self, count: int) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """Seeded latents (and labels) on which EWC measures how much each generator weight matters to the source."""
        noise = torch.Generator().manual_seed(self.recipe.seed + 17)
        batch = self.recipe.training.batch_size
        batches = []
        for _ in range(count):
            latents = torch.randn(batch, self.config.latent_size, generator=noise)
            labels = None
            if self.config.num_classes is not None:
                labels = self.classes[torch.randint(0, len(self.classes), (batch,), generator=noise)]
            tasks = None
            if self.task_names is not None:
                tasks = torch.randint(0, len(self.task_names), (batch,), generator=noise)
            batches.append((latents, labels, tasks))
        return batches

    def _fisher_loss(self, generator: torch.nn.Module, batch) -> torch.Tensor:
        """The generator's adversarial loss against the source discriminator (EWC for GANs, Li et al. 2020)."""
        latents, labels, tasks = batch
        fake = generator(latents, class_labels=labels, task=tasks).images
        logits = self.model.discriminator(fake, class_labels=labels, task=tasks).logits
        return generator_loss(logits, self.config.adversarial_loss)

    def checkpointed_objects(self) -> dict:
        objects = {"ema": self.ema} if self.ema is not None else {}
        if self.weighting is not None:
            objects["weighting"] = self.weighting
        return objects

    def per_process_objects(self) -> dict:
        return {"noise": self.noise}

    def _batch(self, batch_number: int) -> tuple[list[int], torch.Tensor | None]:
        """Example indices of a batch and, for a multi-task run, each example's task index."""
        if self.task_names is None:
            return self.stream.indices(batch_number), None
        # Grouped by task (stable, so the draw order within a task stays): the discriminator's minibatch-std groups
        # are runs of consecutive samples, and should measure one task's diversity, not the gap between tasks.
        pairs = sorted(self.task_batches.pairs(batch_number), key=lambda pair: self.task_names.index(pair[0]))
        indices = [self.task_offsets[task] + index for task, index in pairs]
        self.batch_tasks = {task for task, _ in pairs}  # known on the host: no device sync to ask which are present
        task_ids = torch.tensor([self.task_names.index(task) for task, _ in pairs], device=self.accelerator.device)
        return indices, task_ids

    def trained_modules(self) -> list[torch.nn.Module]:
        return [self.generator, self.discriminator]

    def _eager_if(self, condition: bool):
        """With training.compile, runs compiled modules eagerly in the block when `condition` (R1's double backward)."""
        import contextlib

        if condition and self.recipe.training.compile:
            return torch.compiler.set_stance("force_eager")
        return contextlib.nullcontext()

    def _fake_labels(self, count: int) -> torch.Tensor | None:
        if self.config.num_classes is None:
            return None
        picks = torch.randint(0, len(self.classes), (count,), generator=self.noise.generator)
        return self.classes[picks].to(self.accelerator.device)

    def training_step(self, batch_number: int) -> dict[str, torch.Tensor]:
        training = self.recipe.training
        kind = self.config.adversarial_loss
        device = self.accelerator.device
        indices, task_ids = self._batch(batch_number)
        index = torch.as_tensor(indices, device=self.train_images.device)
        real = self.train_images[index].to(device)
        real_labels = self.train_labels[index].to(device) if self.config.num_classes is not None else None
        batch = real.shape[0]
        both_tasks = None if task_ids is None else torch.cat([task_ids, task_ids])

        # (1) discriminator step: real and fake in one forward pass, so the DDP wrapper runs once per backward.
        latents = torch.randn(batch, self.config.latent_size, generator=self.noise.generator).to(device)
        # A multi-task batch keeps each example's task and class for its fake twin (tasks may own different classes).
        fake_labels = self._fake_labels(batch) if task_ids is None else real_labels
        with torch.no_grad():
            fake = self.generator_module(latents, class_labels=fake_labels, task=task_ids).images
        apply_r1 = training.r1_gamma > 0 and batch_number % training.r1_every == 0
        real = real.detach().requires_grad_(apply_r1)
        images = torch.cat([real, fake])
        if self.augment is not None:  # DiffAugment: the same policy on real and fake, differentiable
            images = self.augment(images)
        labels = None if real_labels is None else torch.cat([real_labels, fake_labels])
        with self.accelerator.autocast(), self._eager_if(apply_r1):
            scored = self.discriminator(images, class_labels=labels, task=both_tasks)
        logits = scored.logits.float()
        real_logits, fake_logits = logits[:batch], logits[batch:]
        d_loss = discriminator_loss(real_logits, fake_logits, kind)
        losses = {
            "loss_d": d_loss.detach(),
            "d_real": real_logits.detach().mean(),
            "d_fake": fake_logits.detach().mean(),
        }
        if scored.class_logits is not None:  # AC-GAN: the classifier head learns the real images' classes
            class_loss = F.cross_entropy(scored.class_logits[:batch].float(), real_labels)
            d_loss = d_loss + training.auxiliary_class_weight * class_loss
            losses["class_d"] = class_loss.detach()
        if apply_r1:
            penalty = r1_penalty(real_logits, real)
            d_loss = d_loss + training.r1_gamma / 2 * penalty * training.r1_every  # lazy regularisation
            losses["r1"] = penalty.detach()
        self.accelerator.backward(d_loss)
        if self.accelerator.sync_gradients:
            losses["grad_norm_d"] = self.clip_and_measure(self.discriminator)
        self.step_optimizer(self.discriminator_optimizer, self.discriminator_scheduler)
        self.zero_grad(self.discriminator_optimizer)

        # (2) generator step: D is called unwrapped with frozen weights, so no D gradients exist or sync.
        latents = torch.randn(batch, self.config.latent_size, generator=self.noise.generator).to(device)
        fake_labels = self._fake_labels(batch) if task_ids is None else real_labels
        pairs = batch // 2 if training.mode_seeking_weight and task_ids is None else 0
        if pairs and fake_labels is not None:  # mode seeking compares two latents of the same class
            fake_labels = torch.cat([fake_labels[:pairs], fake_labels[:pairs], fake_labels[2 * pairs :]])
        self.discriminator_module.requires_grad_(False)
        with self.accelerator.autocast():
            fake = generated = self.generator(latents, class_labels=fake_labels, task=task_ids).images
            if self.augment is not None:
                fake = self.augment(fake)
            scored = self.discriminator_module(fake, class_labels=fake_labels, task=task_ids)
        fake_logits = scored.logits.float()
        g_loss = generator_loss(fake_logits, kind)
        losses["loss_g"] = g_loss.detach()
        if pairs:  # MSGAN: the images of a pair should differ in proportion to their latents
            images_gap = (generated[:pairs] - generated[pairs : 2 * pairs]).abs().mean(dim=(1, 2, 3))
            latents_gap = (latents[:pairs] - latents[pairs : 2 * pairs]).abs().mean(dim=1)
            seeking = 1 / ((images_gap / latents_gap).mean().float() + 1e-5)
            g_loss = g_loss + training.mode_seeking_weight * seeking
            losses["mode_seeking"] = seeking.detach()
        if scored.class_logits is not None:  # AC-GAN: the images must show the classes asked for
            class_loss = F.cross_entropy(scored.class_logits.float(), fake_labels)
            g_loss = g_loss + training.auxiliary_class_weight * class_loss
            losses["class_g"] = class_loss.detach()
        if self.cdc is not None:  # keep the source's similarities between samples, over every class
            with self.accelerator.autocast():
                # Unwrapped, as for the regulariser: one DDP forward per backward; its gradient joins the same
                # accumulation, which DDP then averages.
                correspondence = self.cdc(self.generator_module, *self.cdc.sample(self.noise.generator, device))
            g_loss = g_loss + correspondence
            losses["cdc"] = correspondence.detach()
        task_losses = None
        if task_ids is not None:  # multi-task: one generator loss per task, for the loss weighting
            task_losses = {
                name: generator_loss(fake_logits[task_ids == k], kind)
                for k, name in enumerate(self.task_names)
                if name in self.batch_tasks
            }
        self.backward(g_loss, task_losses, losses, prefix="loss_g")
        self.discriminator_module.requires_grad_(True)
        if self.accelerator.sync_gradients:
            losses["grad_norm_g"] = self.clip_and_measure(self.generator)
        self.step_optimizer(self.generator_optimizer, self.generator_scheduler)
        self.after_weighted_step(losses)
        self.zero_grad(self.generator_optimizer)
        return losses

    def after_optimizer_step(self, step: int) -> None:
        if self.ema is not None:
            self.ema.step(self.generator_parameters)

    # ----------------------------------------------------------------------------------------------------------------
    # Sampling, evaluation and saving use the EMA weights when there are any.

    def _with_ema(self, function):
        if self.ema is None:
            return function()
        parameters = list(self.generator_module.parameters())
        self.ema.store(parameters)
        self.ema.copy_to(parameters)
        try:
            return function()
        finally:
            self.ema.restore(parameters)

    @torch.no_grad()
    def _draw_samples(self) -> torch.Tensor:
        """The 64 fixed-latent samples of the grids (same latents every time, so grids show progress)."""
        self.generator_module.eval()
        labels = None if self.sample_labels is None else self.sample_labels.to(self.accelerator.device)
        images = self.generator_module(
            self.sample_latents.to(self.accelerator.device), class_labels=labels, task=self.sample_tasks
        ).images
        self.generator_module.train()
        return images

    def sample_grid(self, step: int) -> None:
        if not self.accelerator.is_main_process:
            return

        grid = image_grid(self._with_ema(self._draw_samples), nrow=8)
        folder = os.path.join(self.recipe.output_dir, "samples")
        os.makedirs(folder, exist_ok=True)
        grid.save(os.path.join(folder, f"step-{step:07d}.png"))
        if self.recipe.training.report_to == "tensorboard":
            import numpy as np

            tracker = self.accelerator.get_tracker("tensorboard", unwrap=True)
            array = np.asarray(grid.convert("RGB"))
            tracker.add_image("samples", array, global_step=step, dataformats="HWC")

    def on_train_start(self, step: int) -> None:
        if step == 0:
            self.sample_grid(0)

    def periodic_due(self, step: int) -> bool:
        training = self.recipe.training
        sampling = bool(training.sample_every) and step % training.sample_every == 0
        return sampling or (bool(training.eval_every) and step % training.eval_every == 0)

    def periodic(self, step: int, state: RunState) -> bool:
        training = self.recipe.training
        if training.sample_every and step % training.sample_every == 0:
            self.sample_grid(step)
        if training.eval_every and step % training.eval_every == 0 and step != training.max_steps:
            # A quality-vs-steps curve: FID/KID of the EMA generator on the held-out images during training.
            scores = self.evaluate()
            logged = {f"eval_{k}": scores[k] for k in ("fid", "kid")}
            self.accelerator.log(logged, step=step)
            state.history.append({"step": step, **logged})
        return False

    def evaluate(self) -> dict:
        evaluation = self.recipe.evaluation

        def score(task):
            images, labels = self.held_out[task]
            return score_generator(
                self.generator_module,
                images,
                labels,
                evaluation.num_samples,
                evaluation.feature_network,
                seed=self.recipe.seed,
                task=task,
            )

        if self.task_names is None:
            scores = self._with_ema(lambda: score(None))
        else:  # per-task scores, and their mean under the usual names
            per_task = self._with_ema(lambda: {task: score(task) for task in self.task_names})
            scores = {
                "fid": sum(s["fid"] for s in per_task.values()) / len(per_task),
                "kid": sum(s["kid"] for s in per_task.values()) / len(per_task),
                "per_task": per_task,
            }
            scores.update(self.forgetting(per_task, {"fid": False}))  # adding a task: the old tasks' FID change
        scores["num_train_images"] = len(self.train_images)
        return scores

    def save(self, output_dir: str) -> None:
        def write():
            # The generator adapter applies to the source when the generator was copied from it unchanged.
            base = adapter_base(self.recipe, self.report, "generator.")
            model = self.save_model_folder(output_dir, self.model, base)
            GANPipeline(generator_model=model.generator).save_pretrained(output_dir)
            image_grid(self._draw_samples(), nrow=8).save(os.path.join(output_dir, "samples.png"))

        self._with_ema(write)


def evaluate_saved_gan(folder: str, num_samples: int | None = None) -> dict:
    """FID/KID of a saved run folder against the held-out images of the recipe it was trained with."""
    from ..recipes import load_recipe
    from ..source import load_pretrained

    recipe = load_recipe(os.path.join(folder, "genxfer_recipe.yaml"))
    model = load_pretrained(GANModel.from_pretrained, folder, what="The folder", use_safetensors=True)
    held_out_images, held_out_labels = load_image_splits(recipe.data, model.config)["held_out"]
    return score_generator(
        model.generator,
        held_out_images,
        held_out_labels,
        num_samples or recipe.evaluation.num_samples,
        recipe.evaluation.feature_network,
        seed=recipe.seed,
    )


def gan_card_fields(recipe: Recipe, metrics: dict, config: dict, folder: str) -> dict:
    """What a GAN's model card says beyond the common fields: its data, results task and template values."""
    data = recipe.data
    description = f"the `{data.dataset}` images" + (f" (classes {data.classes})" if data.classes else "")
    if data.shots_per_class:
        description += f", {data.shots_per_class} images per class"
    return {
        "dataset": data.dataset,
        "description": description,
        "adapted_part": "generator of a GAN",
        "adapter_description": f"the `{data.dataset}` images" + (f" (classes {data.classes})" if data.classes else ""),
        "task_type": "unconditional-image-generation",
        "pipeline_tag": "unconditional-image-generation",  # a diffusers pipeline samples it (GANPipeline)
        "split": "held_out",
        "metric_names": ("fid", "kid"),
        "values": {
            "image_size": config.get("image_size"),
            "image_channels": config.get("image_channels", 1),
            "num_classes": config.get("num_classes"),
            "adversarial_loss": config.get("adversarial_loss", "non_saturating"),
            "r1_gamma": recipe.training.r1_gamma,
            "ema_decay": recipe.training.ema_decay,
            "feature_network": recipe.evaluation.feature_network,
            "per_task": metrics.get("per_task", {}),
            **{k: metrics.get(k, float("nan")) for k in ("fid", "kid", "kid_std")},
            "num_real": metrics.get("num_real", "?"),
            "num_generated": metrics.get("num_generated", "?"),
            "num_train_images": metrics.get("num_train_images", "?"),
        },
    }
