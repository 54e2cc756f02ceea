"""Seq2Seq speed: training non-padding target tokens/s of our loop against transformers' Seq2SeqTrainer and a plain
PyTorch loop on the same model and data; generation tokens/s of our wrapper against the bare backbone's `generate`,
and of multi-task routing (`task=`) against a single-task model of the same size."""

from __future__ import annotations

import copy
import os

import torch

from .gan import ours_steps, start_ours
from .timing import count_flops, interleave, timed

SEQ2SEQ_LEARNING_RATE = 1e-3


def seq2seq_recipe(case, output_dir: str, options: dict | None = None) -> dict:
    return {
        "family": "seq2seq",
        "init_from": "scratch",
        "output_dir": output_dir,
        "seed": 0,
        "model": {"backbone": dict(case.backbone)},
        "data": {
            "dataset": "num2words",
            "language": "en",
            "train_size": case.train_size,
            "validation_size": 50,
            "test_size": 200,
            "tokenizer_languages": ["en", "fr"],
        },
        "training": {
            "max_steps": 10**9,
            "batch_size": case.batch_size,
            "learning_rate": SEQ2SEQ_LEARNING_RATE,
            "lr_scheduler": "linear",
            "warmup_steps": 50,
            "max_grad_norm": 1.0,
            "checkpoint_every": 10**9,
            "log_every": 50,
            "report_to": "none",
            "overwrite_output_dir": True,
            **(options or {}),
        },
    }


class TokenCounts:
    """Non-padding target tokens and padded (computed) positions of the batches a method trained on."""

    def __init__(self, dataset):
        self.target = torch.tensor([len(x) for x in dataset["labels"]])
        self.source = torch.tensor([len(x) for x in dataset["input_ids"]])
        self.tokens = self.positions = self.real_positions = 0

    def add(self, indices) -> int:
        index = torch.as_tensor(indices)
        target, source = self.target[index], self.source[index]
        tokens = int(target.sum())
        self.tokens += tokens
        self.real_positions += tokens + int(source.sum())
        self.positions += len(index) * (int(target.max()) + int(source.max()))
        return tokens

    def padding_share(self) -> float:
        return 1 - self.real_positions / max(1, self.positions)


class PlainSeq2SeqLoop:
    """What a user would write in plain PyTorch: random batches through the same collator, AdamW with the same
    linear warm-up schedule, gradient clipping at 1.0."""

    def __init__(self, model, dataset, collator, batch_size: int, device, seed: int = 0):
        from transformers import get_scheduler

        self.model = model.to(device).train()
        self.dataset, self.collator, self.batch_size, self.device = dataset, collator, batch_size, device
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=SEQ2SEQ_LEARNING_RATE, weight_decay=0.0)
        self.scheduler = get_scheduler("linear", self.optimizer, num_warmup_steps=50, num_training_steps=10**9)
        self.noise = torch.Generator().manual_seed(seed)
        self.counts = TokenCounts(dataset)

    def step(self) -> int:
        indices = torch.randint(0, len(self.dataset), (self.batch_size,), generator=self.noise).tolist()
        rows = self.dataset[indices]
        batch = self.collator([dict(zip(rows, values)) for values in zip(*rows.values())])
        batch = {key: value.to(self.device) for key, value in batch.items()}
        loss = self.model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return self.counts.add(indices)


class TrainerRunner:
    """transformers' Seq2SeqTrainer on the same model, data and collator; each repetition is one `train()` call whose
    steps after the first `warmup` are timed (a callback) and whose batches' tokens are counted (the collator)."""

    def __init__(self, model, dataset, collator, batch_size: int, output_dir: str, warmup: int):
        from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments, TrainerCallback

        self.warmup, self.batch_tokens, self.step_times = warmup, [], []
        runner = self

        def counting_collator(features):
            batch = collator(features)
            runner.batch_tokens.append(int((batch["labels"] != -100).sum()))
            return batch

        class Clock(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                import time

                runner.step_times.append(time.perf_counter())

        self.arguments = Seq2SeqTrainingArguments(
            output_dir=output_dir,
            per_device_train_batch_size=batch_size,
            learning_rate=SEQ2SEQ_LEARNING_RATE,
            lr_scheduler_type="linear",
            warmup_steps=50,
            max_grad_norm=1.0,
            max_steps=1,
            save_strategy="no",
            logging_steps=50,
            report_to=[],
            disable_tqdm=True,
            dataloader_num_workers=0,
            use_cpu=not torch.cuda.is_available(),
            seed=0,
        )
        self.trainer = Seq2SeqTrainer(
            model=model,
            args=self.arguments,
            train_dataset=dataset,
            data_collator=counting_collator,
            callbacks=[Clock()],
        )
        from transformers.trainer_callback import PrinterCallback

        self.trainer.remove_callback(PrinterCallback)  # its per-call metrics line, not part of the timed steps

    def repetition(self, steps: int) -> tuple[float, int]:
        self.batch_tokens, self.step_times = [], []
        self.trainer.args.max_steps = self.warmup + steps
        self.trainer.train()
        seconds = self.step_times[-1] - self.step_times[self.warmup - 1]
        # The dataloader may collate one batch ahead: the timed steps' batches are counted from the same offset.
        tokens = sum(self.batch_tokens[self.warmup : self.warmup + steps])
        return seconds, tokens


def _trained_count(session, runner, counts: TokenCounts, steps: int) -> tuple[float, int]:
    """Times `steps` of our loop and counts the tokens of the batches it trained on."""
    run, state = session.run, session.state
    before = counts.tokens
    first = state.step
    seconds = timed(lambda: ours_steps(session, runner, steps), session.accelerator.device)
    for number in range(first, first + steps):
        counts.add(run.batch_indices(number))
    return seconds, counts.tokens - before


def measure_seq2seq_case(name: str, case, config, work: str, compile_too: bool = False) -> dict:
    """Training tokens/s of our loop (defaults, and with the case's options), Seq2SeqTrainer and a plain loop."""
    variants = {"ours": {}}
    if case.options:
        variants["ours_options"] = dict(case.options)
    if compile_too:
        variants["ours_compiled"] = {**case.options, "compile": True}
    runners = {v: start_ours(seq2seq_recipe(case, os.path.join(work, f"{name}-{v}"), o)) for v, o in variants.items()}
    session = runners["ours"][0]
    run, device = session.run, session.accelerator.device
    initial = copy.deepcopy(run.model)
    counts = {v: TokenCounts(run.train_dataset) for v in variants}
    plain = PlainSeq2SeqLoop(copy.deepcopy(initial), run.train_dataset, run.collator, case.batch_size, device)
    trainer = TrainerRunner(
        copy.deepcopy(initial),
        run.train_dataset,
        run.collator,
        case.batch_size,
        os.path.join(work, f"{name}-trainer"),
        warmup=2,
    )
    methods = {v: (lambda s=s, r=r, c=counts[v]: _trained_count(s, r, c, case.steps)) for v, (s, r) in runners.items()}

    def plain_repetition():
        tokens = []
        seconds = timed(lambda: tokens.extend(plain.step() for _ in range(case.steps)), device)
        return seconds, sum(tokens)

    methods["trainer"] = lambda: trainer.repetition(case.steps)
    methods["plain"] = plain_repetition
    for function in methods.values():
        function()  # warm-up
    rates = interleave(methods, config.repetitions)
    result = {
        "backbone": dict(case.backbone),
        "parameters": sum(p.numel() for p in initial.parameters()),
        "batch_size": case.batch_size,
        "steps_per_repetition": case.steps,
        "options": dict(case.options),
        "target_tokens_per_second": {v: round(r["median"], 1) for v, r in rates.items()},
        "target_tokens_per_second_all": {v: [round(x, 1) for x in r["all"]] for v, r in rates.items()},
        "padding_share": {v: round(c.padding_share(), 3) for v, c in counts.items()},
    }
    result["padding_share"]["plain"] = round(plain.counts.padding_share(), 3)
    for reference in ("trainer", "plain"):
        result[f"ratio_vs_{reference}"] = {
            v: round(rates[v]["median"] / rates[reference]["median"], 3) for v in variants
        }
    step_tokens = []
    flops = count_flops(lambda: step_tokens.append(plain.step()))
    result["training_flops_per_target_token"] = round(flops / max(1, step_tokens[0]))
    if case.generation:
        result["generation"] = measure_generation(run, case, config)
    return result


def measure_generation(run, case, config) -> dict:
    """Generated tokens/s, greedy and 4-beam, batch 1 and 32: our wrapper (and, greedy, `generate(compile=True)`, its
    first call compiling in the warm-up) against the bare backbone's `generate`; multi-task routing (a shared-encoder
    model, `task=`) against the single-task wrapper of the same size."""
    from ...models.seq2seq import Seq2SeqModel

    model = run.model.eval()
    device = next(model.parameters()).device
    sources = list(run.splits["test"]["source"][: case.generation_inputs])
    encoded = run.tokenizer(sources, return_tensors="pt", padding=True).to(device)
    multi = Seq2SeqModel.from_backbone(
        copy.deepcopy(model.backbone), task_names=["en", "fr"], sharing="shared_encoder"
    ).eval()
    multi.generation_config = copy.deepcopy(model.generation_config)
    length = case.new_tokens
    results = {}
    for beams in (1, 4):
        for batch in (1, 32):
            batch = min(batch, len(sources))
            settings = dict(num_beams=beams, max_new_tokens=length, min_new_tokens=length, do_sample=False)

            def call(generate, task_kwargs=None, batch=batch, settings=settings):
                @torch.no_grad()
                def repetition():
                    for start in range(0, len(sources), batch):
                        generate(
                            input_ids=encoded["input_ids"][start : start + batch],
                            attention_mask=encoded["attention_mask"][start : start + batch],
                            **settings,
                            **(task_kwargs or {}),
                        )

                return lambda: (timed(repetition, device), len(sources) * length)

            methods = {
                "ours": call(model.generate),
                "bare": call(model.backbone.generate),
                "multitask": call(multi.generate, {"task": "en"}),
            }
            if beams == 1 and case.compile_generation:  # generate(compile=True); transformers compiles no beams
                methods["compiled"] = call(model.generate, {"compile": True})
            for function in methods.values():
                function()
            rates = interleave(methods, config.repetitions)
            key = f"{'greedy' if beams == 1 else 'beam4'}_batch{batch}"
            results[key] = {
                "tokens_per_second": {k: round(v["median"], 1) for k, v in rates.items()},
                "ratio_ours_vs_bare": round(rates["ours"]["median"] / rates["bare"]["median"], 3),
                "multitask_overhead": round(1 - rates["multitask"]["median"] / rates["ours"]["median"], 3),
            }
            if "compiled" in rates:
                results[key]["ratio_compiled_vs_bare"] = round(
                    rates["compiled"]["median"] / rates["bare"]["median"], 3
                )
    model.train()
    return results
