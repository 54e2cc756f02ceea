"""The Seq2Seq family's part of the one training loop: tokenised pairs or denoising, the teacher-forced step,
evaluation by generation (exact match, chrF, BLEU) with early stopping, saving with the tokenizer, and how a Seq2Seq
source (ours, or any transformers encoder-decoder) is built, checked and described in its card."""

from __future__ import annotations

import copy
import os

import torch
from accelerate import Accelerator
from datasets import Dataset, DatasetDict, concatenate_datasets
from transformers import AutoConfig, AutoTokenizer, get_scheduler

from ..data.language_codes import apply_language_codes, target_language_start
from ..data.text import (
    evaluation_pairs,
    load_text_splits,
    seq2seq_collator,
    tokenize_for_objective,
    tokenizer_corpus,
)
from ..data.tokenization import check_tokenizer_coverage, train_tokenizer
from ..errors import ModelFolderError, RecipeError
from ..evaluation.text_scores import generate_all, score_texts
from ..models.seq2seq import Seq2SeqConfig, Seq2SeqModel, add_task_tokens, default_backbone_config
from ..models.seq2seq.configuration_seq2seq import DEFAULT_BACKBONE, tokenizer_backbone_fields
from ..recipes import Recipe, task_data
from ..transfer import transfer_parameters
from ..transfer.naming import layer_stack
from ..transfer.vocabulary import extend_vocabulary
from .batches import IndexStream, LengthGroupedStream
from .run import Run, RunState, optimizer_options, place_model
from .strategy import adapter_base, parameter_groups

SEQ2SEQ_ADAM_BETAS = (0.9, 0.999)
NUM_SENTINELS = 32  # span-corruption sentinels added to a tokenizer trained from scratch


# --------------------------------------------------------------------------------------------------------------------
# Sources and models


def example_lengths(dataset: Dataset) -> list[int]:
    """A sort key per tokenized example for `training.group_by_length`: the target's length, then the source's."""
    return [len(labels) * 65536 + len(ids) for labels, ids in zip(dataset["labels"], dataset["input_ids"])]


def check_seq2seq_source(model_type: str | None, name_or_path: str) -> None:
    """A Seq2Seq model starts from a Seq2Seq run folder or Hub id, or any transformers encoder-decoder."""
    if model_type == Seq2SeqConfig.model_type:
        return
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES

    from ..families import family_of_folder

    other = family_of_folder(model_type)
    if other is not None:
        raise ModelFolderError(
            f"init_from {name_or_path!r} is a {other.name} model ({model_type}) and this recipe's family is "
            f"seq2seq: start from a Seq2Seq run or a transformers encoder-decoder, or set family: {other.name}."
        )
    if model_type not in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES:
        raise ModelFolderError(
            f"init_from {name_or_path!r} is a {model_type} model, not an encoder-decoder: a Seq2Seq recipe "
            "starts from a Seq2Seq run or an AutoModelForSeq2SeqLM architecture (T5, BART, Marian, ...)."
        )


def build_seq2seq(recipe: Recipe, source=None, splits: DatasetDict | None = None):
    """
    The model and tokenizer a recipe starts from: `init_from: scratch` trains a character tokenizer on the corpus and
    builds `recipe.model` (a small BART by default); from a `source` (the resolved `init_from`: a Seq2Seq run, or a
    plain transformers encoder-decoder wrapped with `Seq2SeqModel.from_backbone`), a target with the source's config
    updated by `recipe.model` receives its weights. Returns (model, tokenizer, transfer report or None).
    """
    num_sentinels = NUM_SENTINELS if recipe.data.objective == "span_corruption" else 0
    if recipe.init_from == "scratch":
        splits = splits if splits is not None else load_text_splits(recipe.data)
        tokenizer = train_tokenizer(tokenizer_corpus(recipe.data, splits), kind="char", num_sentinels=num_sentinels)
        model_fields = dict(recipe.model)
        backbone = dict(model_fields.pop("backbone", None) or {})
        if backbone.get("model_type", DEFAULT_BACKBONE["model_type"]) == DEFAULT_BACKBONE["model_type"]:
            backbone_config = default_backbone_config(tokenizer, **backbone)
        else:  # another architecture (T5, Marian, ...): its own defaults, sized to the tokenizer
            special = tokenizer_backbone_fields(tokenizer)
            backbone_config = AutoConfig.for_model(**{**special, **backbone})
        return Seq2SeqModel(Seq2SeqConfig(backbone=backbone_config, **model_fields)), tokenizer, None
    if source is None:
        from ..families import get_family
        from ..source import load_source

        source = load_source(recipe.init_from, get_family("seq2seq"))
    tokenizer = source.tokenizer
    if recipe.transfer.retrain_tokenizer:
        splits = splits if splits is not None else load_text_splits(recipe.data)
        tokenizer = train_tokenizer(tokenizer_corpus(recipe.data, splits), kind="char", num_sentinels=num_sentinels)
        model, report = transfer_into_target(source.model, recipe, source.tokenizer, tokenizer)
    else:
        model, report = transfer_into_target(source.model, recipe)
    model.config.base_model = recipe.init_from
    return model, tokenizer, report


def load_seq2seq_source(name_or_path: str) -> Seq2SeqModel:
    """A Seq2Seq folder or Hub id of ours, or any transformers encoder-decoder (wrapped, keeping its weights)."""
    if AutoConfig.from_pretrained(name_or_path).model_type == Seq2SeqConfig.model_type:
        return Seq2SeqModel.from_pretrained(name_or_path, use_safetensors=True)
    return Seq2SeqModel.from_backbone(name_or_path, use_safetensors=True)


def transfer_into_target(source: Seq2SeqModel, recipe: Recipe, source_tokenizer=None, target_tokenizer=None):
    """
    A target built from the source's config updated by `recipe.model` (backbone overrides such as more decoder
    layers; task names), with the source weights transferred into it. With a new `target_tokenizer`, the vocabulary
    follows it and the embedding rows of tokens both tokenizers hold are copied. Returns (target, report).
    """
    fields = dict(recipe.model)
    backbone_overrides = dict(fields.pop("backbone", None) or {})
    if target_tokenizer is not None:
        backbone_overrides.update(tokenizer_backbone_fields(target_tokenizer))
    backbone_config = type(source.config.backbone).from_dict(
        {**source.config.backbone.to_dict(), **backbone_overrides}
    )
    config = Seq2SeqConfig(
        backbone=backbone_config,
        task_names=fields.pop("task_names", source.config.task_names),
        sharing=fields.pop("sharing", source.config.sharing),
        **fields,
    )
    target = Seq2SeqModel(config)
    report = transfer_parameters(
        source,
        target,
        include=recipe.transfer.include,
        exclude=recipe.transfer.exclude,
        source_tokenizer=source_tokenizer,
        target_tokenizer=target_tokenizer,
    )
    if target_tokenizer is None:
        target.generation_config = copy.deepcopy(source.generation_config)
    return target, report


# --------------------------------------------------------------------------------------------------------------------
# The run


class Seq2SeqRun(Run):
    def __init__(self, recipe: Recipe, accelerator: Accelerator, source=None):
        super().__init__(recipe, accelerator, source)
        training, data = recipe.training, recipe.data
        # Multi-task: one set of splits per task (data.tasks); the tokenizer covers every task's text.
        self.task_names = list(data.tasks) if data.tasks else None
        task_recipes = {task: task_data(data, task) for task in self.task_names or []}
        with accelerator.main_process_first():
            if self.task_names is None:
                self.task_splits = {None: load_text_splits(data)}
            else:
                self.task_splits = {task: load_text_splits(task_recipes[task]) for task in self.task_names}
            self.splits = DatasetDict(
                {
                    name: concatenate_datasets([splits[name] for splits in self.task_splits.values()])
                    for name in ("train", "validation", "test")
                }
            )
            self.model, self.tokenizer, report = build_seq2seq(recipe, source, self.splits)
            self.report = report
            # Multilingual tokenizers: the codes of both sides, and the target code where generation starts.
            apply_language_codes(self.tokenizer, data.source_language_code, data.target_language_code)
            start = target_language_start(self.tokenizer, data.target_language_code)
            if start:
                self.model.generation_config.update(**start)
            self.added_tokens = []
            if recipe.init_from != "scratch" and not recipe.transfer.retrain_tokenizer:
                train_part = self.splits["train"]
                texts = list(train_part["source"]) + list(train_part["target"])
                if recipe.transfer.extend_vocabulary:
                    self.added_tokens = extend_vocabulary(self.model, self.tokenizer, texts)
                check_tokenizer_coverage(
                    self.tokenizer,
                    texts,
                    source=f"init_from {recipe.init_from!r}",
                    fix="set transfer.extend_vocabulary=true (the missing characters become new tokens with new, "
                    "trained embedding rows) or transfer.retrain_tokenizer=true (a character tokenizer for this "
                    "corpus, whose shared tokens keep their trained embeddings)",
                )
            if (
                self.task_names is not None
                and self.model.config.sharing == "hard"
                and not self.model.config.task_token_ids
            ):
                add_task_tokens(self.tokenizer, self.model, self.task_names)
            # Added tasks start as copies of existing ones (with hard sharing: once their task tokens exist).
            for new_task, existing in (recipe.multitask.init_new_tasks_from or {}).items():
                self.model.start_task_from(new_task, existing)
            parts = []
            for k, (task, splits) in enumerate(self.task_splits.items()):
                part = tokenize_for_objective(
                    DatasetDict(train=splits["train"]), self.tokenizer, task_recipes.get(task, data)
                )
                parts.append(
                    part["train"] if task is None else part["train"].add_column("task", [k] * len(part["train"]))
                )
            self.train_dataset = concatenate_datasets(parts)
        self.collator = seq2seq_collator(self.tokenizer, model=self.model)
        if self.task_names is not None and training.group_by_length:
            raise RecipeError(
                "training.group_by_length applies to single-task runs (a multi-task batch follows the task mixing): "
                "remove it or train one task."
            )
        if self.task_names is None and training.group_by_length:
            # Batches of similar lengths: the padding share of the computed tokens drops (genxfer bench speed).
            self.stream = LengthGroupedStream(
                example_lengths(self.train_dataset),
                training.batch_size,
                recipe.seed,
                accelerator.process_index,
                accelerator.num_processes,
            )
        elif self.task_names is None:
            self.stream = IndexStream(
                len(self.train_dataset),
                training.batch_size,
                recipe.seed,
                accelerator.process_index,
                accelerator.num_processes,
            )
        else:
            if recipe.transfer.lora is not None:
                raise RecipeError(
                    "transfer.lora does not combine with a multi-task Seq2Seq model: use sharing=shared_structure "
                    "with task_specific=lora."
                )
            self.setup_multitask(
                {task: len(splits["train"]) for task, splits in self.task_splits.items()}, self.task_names
            )

        # Transfer strategy: freeze, add adapters (training the rows of added tokens too), then anchor the
        # regulariser at the source weights (EWC's Fisher on the source's own pairs).
        transfer = recipe.transfer
        self.setup_strategy(
            self.model,
            "backbone",
            report,
            fisher_loss=lambda model, batch: model(**batch).loss,
            fisher_batches=self._fisher_batches(transfer.fisher_batches) if recipe.init_from != "scratch" else None,
            trainable_tokens=[entry["id"] for entry in self.added_tokens],
            added_tokens=self.added_tokens,
        )
        trained = self.peft_model if self.peft_model is not None else self.model

        betas = tuple(training.adam_betas) if training.adam_betas is not None else SEQ2SEQ_ADAM_BETAS
        groups = parameter_groups(self.model, training.learning_rate, transfer, training.weight_decay)
        if self.weighting is not None and any(True for _ in self.weighting.parameters()):
            groups.append({"params": list(self.weighting.parameters()), "lr": training.learning_rate})
        optimizer = torch.optim.AdamW(
            groups,
            lr=training.learning_rate,
            betas=betas,
            weight_decay=training.weight_decay,
            **optimizer_options(training),
        )
        place_model([trained], training)  # training.compile: the forward is compiled; generation stays eager
        scheduler = get_scheduler(
            training.lr_scheduler,
            optimizer,
            num_warmup_steps=training.warmup_steps,
            num_training_steps=training.lr_schedule_steps or training.max_steps,
        )
        self.prepared_model, self.optimizer, self.scheduler = accelerator.prepare(trained, optimizer, scheduler)
        self.model_module = accelerator.unwrap_model(self.prepared_model)
        if self.regularizer is not None:
            self.regularizer.to(accelerator.device)
        if self.weighting is not None:
            self.weighting.to(accelerator.device)
            shared = [
                p for n, p in self.model.named_parameters() if p.requires_grad and not n.startswith("task_parts.")
            ]
            # GradNorm balances gradient norms at the encoder's last layer; PCGrad projects on every shared weight.
            if recipe.multitask.loss_weighting == "gradnorm":
                _, layers = layer_stack(self.model.get_encoder())
                shared = [p for p in layers[-1].parameters() if p.requires_grad]
            self.shared_parameters = shared

    def checkpointed_objects(self) -> dict:
        return {"weighting": self.weighting} if self.weighting is not None else {}

    def periodic_due(self, step: int) -> bool:
        training = self.recipe.training
        return bool(training.eval_every) and step % training.eval_every == 0 and step != training.max_steps

    def _fisher_batches(self, count: int) -> list[dict]:
        """Batches of the source model's own training pairs (from its saved recipe), else of the target pairs."""
        if self.recipe.transfer.regularizer != "ewc":
            return []
        dataset = self.train_dataset
        if self.source is not None and self.source.recipe is not None:
            source_data = self.source.recipe.data
            source_splits = DatasetDict(train=load_text_splits(source_data)["train"])
            dataset = tokenize_for_objective(source_splits, self.tokenizer, source_data)["train"]
        stream = IndexStream(len(dataset), self.recipe.training.batch_size, self.recipe.seed + 17)
        return [self._collate(dataset, stream.indices(i)) for i in range(count)]

    def _collate(self, dataset: Dataset, indices: list[int]) -> dict[str, torch.Tensor]:
        rows = dataset[indices]
        tasks = rows.pop("task", None)
        examples = [dict(zip(rows, values)) for values in zip(*rows.values())]
        batch = {k: v.to(self.accelerator.device) for k, v in self.collator(examples).items()}
        if tasks is not None:
            batch["task"] = torch.as_tensor(list(tasks), device=self.accelerator.device)
        return batch

    def trained_modules(self) -> list[torch.nn.Module]:
        return [self.prepared_model]

    def batch_indices(self, batch_number: int) -> list[int]:
        """The training examples of this process's `batch_number`-th micro-batch."""
        if self.task_names is None:
            return self.stream.indices(batch_number)
        return [self.task_offsets[task] + i for task, i in self.task_batches.pairs(batch_number)]

    def training_step(self, batch_number: int) -> dict[str, torch.Tensor]:
        batch = self._collate(self.train_dataset, self.batch_indices(batch_number))
        with self.accelerator.autocast():
            output = self.prepared_model(**batch)
        loss = output.loss
        losses = {"loss": loss.detach(), "lr": torch.tensor(self.scheduler.get_last_lr()[0])}
        task_losses = None
        if self.weighting is not None:  # multi-task: each training task's loss, for the loss weighting
            task_losses = {
                name: value for name, value in output.task_losses.items() if name in self.weighting.task_names
            }
        self.backward(loss, task_losses, losses, prefix="loss")
        if self.accelerator.sync_gradients:
            losses["grad_norm"] = self.clip_and_measure(self.prepared_model)
        self.step_optimizer(self.optimizer, self.scheduler)
        self.after_weighted_step(losses)
        self.zero_grad(self.optimizer)
        return losses

    def score_split(self, name: str, limit: int | None = None) -> tuple[dict, list[dict]]:
        """
        Generation metrics on a split, each process generating its share (gathered, every example once). A multi-task
        run scores each task on its own split (`per_task`) and reports their means under the usual names.
        """
        if self.task_names is None:
            return self._score_task_split(None, name, limit)
        per_task, examples = {}, []
        for task in self.task_names:
            per_task[task], task_examples = self._score_task_split(task, name, limit)
            examples += [{"task": task, **example} for example in task_examples]
        scores = {
            metric: sum(s[metric] for s in per_task.values()) / len(per_task)
            for metric in ("exact_match", "chrf", "bleu")
        }
        scores["num_examples"] = sum(s["num_examples"] for s in per_task.values())
        scores["per_task"] = per_task
        return scores, examples

    def _score_task_split(self, task: str | None, name: str, limit: int | None) -> tuple[dict, list[dict]]:
        evaluation = self.recipe.evaluation
        part = self.task_splits[task][name]
        if limit is not None:
            part = part.select(range(min(limit, len(part))))
        data = self.recipe.data if task is None else task_data(self.recipe.data, task)
        sources, references = evaluation_pairs(part, self.tokenizer, data)
        task_kwargs = {} if task is None else {"task": task}
        with self.accelerator.split_between_processes(list(range(len(sources)))) as shard:
            predictions = generate_all(
                self.model_module,
                self.tokenizer,
                [sources[i] for i in shard],
                evaluation.batch_size,
                num_beams=evaluation.num_beams,
                max_new_tokens=evaluation.max_new_tokens,
                **task_kwargs,
            )
            pairs = list(zip(shard, predictions))
        from accelerate.utils import gather_object

        gathered = dict(gather_object(pairs)) if self.accelerator.num_processes > 1 else dict(pairs)
        predictions = [gathered[i] for i in range(len(sources))]
        scores = score_texts(predictions, references)
        examples = [
            {"source": s, "reference": r, "prediction": p}
            for s, r, p in list(zip(sources, references, predictions))[: evaluation.num_examples]
        ]
        return scores, examples

    def periodic(self, step: int, state: RunState) -> bool:
        training = self.recipe.training
        if not training.eval_every or step % training.eval_every or step == training.max_steps:
            return False
        scores, _ = self.score_split("validation")
        scores = {k: v for k, v in scores.items() if isinstance(v, (int, float))}
        self.accelerator.log({f"validation/{k}": v for k, v in scores.items()}, step=step)
        state.history.append({"step": step, **{f"validation_{k}": v for k, v in scores.items()}})
        metric = training.early_stopping_metric
        if metric not in scores:
            raise RecipeError(
                f"training.early_stopping_metric={metric!r} is not a validation metric; use one of {', '.join(scores)}."
            )
        if state.best_metric is None or scores[metric] > state.best_metric:
            state.best_metric, state.evaluations_without_improvement = scores[metric], 0
        else:
            state.evaluations_without_improvement += 1
        patience = training.early_stopping_patience
        return patience is not None and state.evaluations_without_improvement >= patience

    def evaluate(self) -> dict:
        scores, examples = self.score_split("test")
        scores["examples"] = examples
        scores["num_train_examples"] = len(self.train_dataset)
        if "per_task" in scores:  # adding a task: the old tasks' scores change
            scores.update(self.forgetting(scores["per_task"], {"chrf": True, "exact_match": True}))
        return scores

    def save(self, output_dir: str) -> None:
        # A plain transformers source loads as the bare backbone: its adapter is saved in the backbone's naming. An
        # adapter on added tokens' rows needs the run's base, not the source's.
        wrapped = self.source is not None and self.source.model_type == Seq2SeqConfig.model_type
        base = None if self.added_tokens else adapter_base(self.recipe, self.report)
        self.save_model_folder(output_dir, self.model, base, strip_prefix="" if wrapped else "backbone.")
        self.tokenizer.save_pretrained(output_dir)


def generate_texts(
    folder: str, sources: list[str], num_beams: int = 1, max_new_tokens: int = 128, task: str | None = None
) -> list[str]:
    """Loads a saved folder with the Auto classes and generates for `sources` (in `task` for a multi-task model)."""
    from transformers import AutoModelForSeq2SeqLM

    from ..source import load_pretrained

    model = load_pretrained(AutoModelForSeq2SeqLM.from_pretrained, folder, what="The folder", use_safetensors=True)
    tokenizer = load_pretrained(AutoTokenizer.from_pretrained, folder, what="The folder")
    task_kwargs = {} if task is None else {"task": task}
    return generate_all(
        model,
        tokenizer,
        list(sources),
        batch_size=64,
        num_beams=num_beams,
        max_new_tokens=max_new_tokens,
        **task_kwargs,
    )


def evaluate_saved_seq2seq(folder: str, num_samples: int | None = None) -> dict:
    """
    Exact match, chrF and BLEU of a saved run folder on the test split of the recipe it was trained with (per task,
    with their means, for a multi-task model); `num_samples` scores only the first test pairs.
    """
    from transformers import AutoModelForSeq2SeqLM

    from ..recipes import load_recipe

    recipe = load_recipe(os.path.join(folder, "genxfer_recipe.yaml"))
    from ..source import load_pretrained

    model = load_pretrained(AutoModelForSeq2SeqLM.from_pretrained, folder, what="The folder", use_safetensors=True)
    tokenizer = load_pretrained(AutoTokenizer.from_pretrained, folder, what="The folder")
    evaluation = recipe.evaluation

    def score(data, task_kwargs):
        test = load_text_splits(data)["test"]
        if num_samples is not None:
            test = test.select(range(min(num_samples, len(test))))
        sources, references = evaluation_pairs(test, tokenizer, data)
        predictions = generate_all(
            model,
            tokenizer,
            sources,
            evaluation.batch_size,
            num_beams=evaluation.num_beams,
            max_new_tokens=evaluation.max_new_tokens,
            **task_kwargs,
        )
        return score_texts(predictions, references)

    if not recipe.data.tasks:
        return score(recipe.data, {})
    per_task = {task: score(task_data(recipe.data, task), {"task": task}) for task in recipe.data.tasks}
    scores = {
        metric: sum(s[metric] for s in per_task.values()) / len(per_task) for metric in ("exact_match", "chrf", "bleu")
    }
    return {**scores, "per_task": per_task}


def seq2seq_card_fields(recipe: Recipe, metrics: dict, config: dict, folder: str) -> dict:
    """What a Seq2Seq model card says beyond the common fields: its data, results task and template values."""
    data = recipe.data
    examples = metrics.get("examples", [])
    generation = {}
    generation_path = os.path.join(folder, "generation_config.json")
    if os.path.isfile(generation_path):
        import json

        with open(generation_path, encoding="utf-8") as handle:
            generation = json.load(handle)
    start = next(
        (
            f"`{name}={generation[name]}`"
            for name in ("forced_bos_token_id", "decoder_start_token_id")
            if generation.get(name) is not None
        ),
        "",
    )
    return {
        "dataset": data.dataset,
        "description": (
            f"num2words pairs in `{data.language}` (numbers in [{data.low}, {data.high}), {data.train_size} pairs)"
            if data.dataset == "num2words"
            else f"the `{data.dataset}` pairs"
        ),
        "adapted_part": "backbone of a Seq2Seq model",
        "adapter_description": f"`{data.dataset}` pairs" + (f" in `{data.language}`" if data.language else ""),
        # transformers 5 removed the text2text-generation, translation and summarization pipelines, and its
        # text-generation pipeline is for decoder-only models: no pipeline tag would load this model correctly, so
        # the card sets none (the Hub then shows no widget), and names the results' task "text-generation".
        "task_type": "text-generation",
        "pipeline_tag": None,
        "split": "test",
        "metric_names": ("exact_match", "chrf", "bleu"),
        "values": {
            "source_language_code": data.source_language_code,
            "target_language_code": data.target_language_code,
            "generation_start": start,
            "backbone_type": config.get("backbone", {}).get("model_type", "?"),
            "examples": examples,
            "example_input": examples[0]["source"] if examples else "4021",
            "learning_rate": recipe.training.learning_rate,
            "lr_scheduler": recipe.training.lr_scheduler,
            "num_train_examples": metrics.get("num_train_examples", "?"),
            **{k: metrics.get(k, float("nan")) for k in ("exact_match", "chrf", "bleu")},
            "num_examples": metrics.get("num_examples", "?"),
        },
    }
