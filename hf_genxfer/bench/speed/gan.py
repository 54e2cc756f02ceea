"""GAN speed: our training loop against a plain PyTorch loop a user would write with the same generator,
discriminator, losses, R1 schedule and Adam (no accelerate, no EMA); and GANPipeline against the bare generator."""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from .timing import count_flops, interleave, timed

GAN_LEARNING_RATE = 2e-4


def gan_recipe(case, output_dir: str, options: dict | None = None) -> dict:
    """The raw recipe our loop trains for a case: the model and data of the case, no sampling or checkpoints."""
    return {
        "family": "gan",
        "init_from": "scratch",
        "output_dir": output_dir,
        "seed": 0,
        "model": dict(case.model),
        "data": {"held_out_fraction": 0.2, **case.data},
        "training": {
            "max_steps": 10**9,
            "batch_size": case.batch_size,
            "learning_rate": GAN_LEARNING_RATE,
            "r1_gamma": 0.1,
            "r1_every": 4,
            "ema_decay": 0.999,
            "checkpoint_every": 10**9,
            "sample_every": 0,
            "log_every": 50,
            "report_to": "none",
            "overwrite_output_dir": True,
            **(options or {}),
        },
    }


def start_ours(raw: dict):
    """Our loop on a recipe: its session (everything `train` builds before step one) and its step runner."""
    from accelerate.state import AcceleratorState, GradientState

    from ...recipes import validate_recipe
    from ...training.loop import StepRunner, start_session

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    session = start_session(validate_recipe(raw))
    return session, StepRunner(session)


def ours_steps(session, runner, count: int) -> None:
    """`count` steps as the loop runs them between checkpoints: steps, and at each log step the divergence check
    and the logged values read from the device."""
    from ...training.divergence import raise_if_diverged

    training = session.recipe.training
    for _ in range(count):
        step = runner.step()
        if step % training.log_every == 0:
            raise_if_diverged(runner.guard, session.accelerator, training, [])
            runner.read_logs()


class PlainGANLoop:
    """What a user would write in plain PyTorch around the same GANModel: both steps, the same losses and R1."""

    def __init__(self, model, images, labels, batch_size: int, device, seed: int = 0):
        from ...training.gan import GAN_ADAM_BETAS

        self.generator = model.generator.to(device)
        self.discriminator = model.discriminator.to(device)
        self.config = model.config
        self.images = images.to(device)
        self.labels = None if labels is None else labels.to(device)
        self.classes = None if labels is None else torch.unique(self.labels)
        self.batch_size, self.device = batch_size, device
        self.noise = torch.Generator(device="cpu").manual_seed(seed)
        self.g_optimizer = torch.optim.Adam(self.generator.parameters(), GAN_LEARNING_RATE, betas=GAN_ADAM_BETAS)
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), GAN_LEARNING_RATE, betas=GAN_ADAM_BETAS)
        self.r1_gamma, self.r1_every, self.number = 0.1, 4, 0

    def _fake_labels(self):
        if self.classes is None:
            return None
        picks = torch.randint(0, len(self.classes), (self.batch_size,), generator=self.noise)
        return self.classes[picks.to(self.device)]

    def step(self) -> None:
        from ...training.gan import discriminator_loss, generator_loss, r1_penalty

        batch, kind = self.batch_size, self.config.adversarial_loss
        index = torch.randint(0, len(self.images), (batch,), generator=self.noise).to(self.device)
        real, real_labels = self.images[index], None if self.labels is None else self.labels[index]
        latents = torch.randn(batch, self.config.latent_size, generator=self.noise).to(self.device)
        fake_labels = self._fake_labels()
        with torch.no_grad():
            fake = self.generator(latents, class_labels=fake_labels).images
        apply_r1 = self.number % self.r1_every == 0
        real = real.detach().requires_grad_(apply_r1)
        labels = None if real_labels is None else torch.cat([real_labels, fake_labels])
        scored = self.discriminator(torch.cat([real, fake]), class_labels=labels)
        real_logits, fake_logits = scored.logits[:batch], scored.logits[batch:]
        d_loss = discriminator_loss(real_logits, fake_logits, kind)
        if scored.class_logits is not None:
            d_loss = d_loss + F.cross_entropy(scored.class_logits[:batch], real_labels)
        if apply_r1:
            d_loss = d_loss + self.r1_gamma / 2 * r1_penalty(real_logits, real) * self.r1_every
        self.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_optimizer.step()

        latents = torch.randn(batch, self.config.latent_size, generator=self.noise).to(self.device)
        fake_labels = self._fake_labels()
        self.discriminator.requires_grad_(False)
        scored = self.discriminator(self.generator(latents, class_labels=fake_labels).images, class_labels=fake_labels)
        g_loss = generator_loss(scored.logits, kind)
        if scored.class_logits is not None:
            g_loss = g_loss + F.cross_entropy(scored.class_logits, fake_labels)
        self.g_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        self.g_optimizer.step()
        self.discriminator.requires_grad_(True)
        self.number += 1


def build_plain(case, device):
    """The plain loop on a fresh model of the case's config (seeded), over the case's training images."""
    from ...data.images import load_image_splits
    from ...models.gan import GANConfig, GANModel
    from ...recipes import validate_recipe

    config = GANConfig(**case.model)
    recipe = validate_recipe(gan_recipe(case, "unused"))
    images, labels = load_image_splits(recipe.data, config)["train"]
    torch.manual_seed(0)
    model = GANModel(config)
    labels = labels if config.num_classes is not None else None
    return PlainGANLoop(model, images, labels, case.batch_size, device)


def measure_gan_case(name: str, case, config, work: str, compile_too: bool = False) -> dict:
    """Images/s of our loop (defaults, and with the case's options), the plain loop, and the pipeline."""
    variants = {"ours": {}}
    if case.options:
        variants["ours_options"] = dict(case.options)
    if compile_too:
        variants["ours_compiled"] = {**case.options, "compile": True}
    runners = {
        variant: start_ours(gan_recipe(case, os.path.join(work, f"{name}-{variant}"), options))
        for variant, options in variants.items()
    }
    session = runners["ours"][0]
    device = session.accelerator.device
    plain = build_plain(case, device)

    def repetition(function, steps):
        return lambda: (timed(lambda: function(steps), device), steps * case.batch_size)

    methods = {
        variant: repetition(lambda n, s=s, r=r: ours_steps(s, r, n), case.steps) for variant, (s, r) in runners.items()
    }
    methods["plain"] = repetition(lambda n: [plain.step() for _ in range(n)], case.steps)
    for function in methods.values():  # warm-up (first-call allocations, compilation)
        for _ in range(max(1, config.warmup_steps // max(1, case.steps))):
            function()
    rates = interleave(methods, config.repetitions)
    result = {
        "model": dict(case.model),
        "batch_size": case.batch_size,
        "steps_per_repetition": case.steps,
        "options": dict(case.options),
        "images_per_second": {variant: round(r["median"], 2) for variant, r in rates.items()},
        "images_per_second_all": {variant: [round(x, 2) for x in r["all"]] for variant, r in rates.items()},
        "generator_parameters": sum(p.numel() for p in plain.generator.parameters()),
        "discriminator_parameters": sum(p.numel() for p in plain.discriminator.parameters()),
    }
    result["ratio_vs_plain"] = {
        variant: round(rates[variant]["median"] / rates["plain"]["median"], 3) for variant in variants
    }
    # FLOPs of r1_every steps (one with R1), per step: the work every method does.
    flops = count_flops(lambda: [plain.step() for _ in range(plain.r1_every)]) / plain.r1_every
    result["training_flops_per_image"] = round(flops / case.batch_size)
    result["pipeline"] = measure_pipeline(session, case, config)
    return result


def measure_pipeline(session, case, config) -> dict:
    """Images/s through GANPipeline (output_type="pt") against calling the generator directly, batch 64."""
    from ...models.gan import GANPipeline

    generator = session.run.generator_module.eval()
    device = session.accelerator.device
    pipeline = GANPipeline(generator_model=generator)
    batch, calls = 64, max(2, 8 * 8 // max(1, case.model.get("image_size", 8)))
    noise = torch.Generator().manual_seed(0)
    num_classes = generator.config.num_classes

    @torch.no_grad()
    def direct():
        for _ in range(calls):
            latents = torch.randn(batch, generator.config.latent_size, generator=noise).to(device)
            labels = None if num_classes is None else torch.randint(0, num_classes, (batch,), generator=noise)
            generator(latents, class_labels=None if labels is None else labels.to(device)).images.cpu()

    def through_pipeline():
        for _ in range(calls):
            pipeline(batch_size=batch, generator=noise, output_type="pt")

    methods = {
        "pipeline": lambda: (timed(through_pipeline, device), calls * batch),
        "direct": lambda: (timed(direct, device), calls * batch),
    }
    for function in methods.values():
        function()
    rates = interleave(methods, config.repetitions)
    generator.train()
    return {
        "batch_size": batch,
        "images_per_second": {k: round(v["median"], 1) for k, v in rates.items()},
        "ratio_vs_direct": round(rates["pipeline"]["median"] / rates["direct"]["median"], 3),
    }
