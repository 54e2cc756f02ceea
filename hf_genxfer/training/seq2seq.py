"""Seq2Seq step functions for the shared loop: tokenised pairs or denoising, teacher-forced loss, evaluation by
generation (exact match, chrF, BLEU), early stopping, and saving with the tokenizer."""

from __future__ import annotations

import copy
import os

import torch
from accelerate import Accelerator
from datasets import Dataset, DatasetDict, concatenate_datasets
from transformers import AutoConfig, AutoTokenizer, get_scheduler

from ..data.denoising import span_corruption, text_infilling
from ..data.language_codes import apply_language_codes, target_language_start
from ..data.text import (
    load_text_corpus,
    load_text_pairs,
    num2words_pairs,
    num2words_splits,
    seq2seq_collator,
    tokenize_pairs,
)
from ..data.tokenization import check_tokenizer_coverage, train_tokenizer
from ..errors import DataError, RecipeError
from ..models.seq2seq import Seq2SeqConfig, Seq2SeqModel, add_task_tokens, default_backbone_config
from ..models.seq2seq.configuration_seq2seq import DEFAULT_BACKBONE, tokenizer_backbone_fields
from ..recipes import Recipe, TextDataRecipe, task_data
from ..transfer import merged_copy, transfer_parameters
from ..transfer.naming import layer_stack
from ..transfer.vocabulary import extend_vocabulary
from .batches import IndexStream, TaskBatches, build_weighting
from .loop import Run, RunState
from .strategy import (
    adapter_base,
    apply_adapters,
    apply_freezing,
    build_regularizer,
    check_new_task_names,
    parameter_groups,
    save_adapter,
    write_transfer_report,
)

SEQ2SEQ_ADAM_BETAS = (0.9, 0.999)
NUM_SENTINELS = 32  # span-corruption sentinels added to a tokenizer trained from scratch


# --------------------------------------------------------------------------------------------------------------------
# Data


def load_text_splits(data: TextDataRecipe) -> DatasetDict:
    """`train`/`validation`/`test` pairs with `source` and `target` columns, never sharing an example."""
    if data.dataset == "num2words":
        return num2words_splits(
            data.language, data.train_size, data.validation_size, data.test_size, data.low, data.high, data.seed
        )
    if data.objective == "pairs":
        corpus = load_text_pairs(data.dataset, data.source_column, data.target_column, split=None)
    else:  # denoising reads unpaired text: the target column alone
        corpus = load_text_corpus(data.dataset, data.target_column, split=None)
    if "train" not in corpus:
        raise DataError(f"The corpus {data.dataset!r} has no train split (it has {', '.join(corpus)}).")
    splits = {"train": corpus["train"]}
    for name, size in (("test", data.test_size), ("validation", data.validation_size)):
        if name in corpus:
            splits[name] = corpus[name]
        else:  # carve the missing split out of train, seeded
            if size >= len(splits["train"]):
                raise DataError(
                    f"The corpus {data.dataset!r} has {len(splits['train'])} training pairs, too few to hold out "
                    f"data.{name}_size={size}: lower it or add a {name} split."
                )
            parts = splits["train"].train_test_split(test_size=size, seed=data.seed)
            splits["train"], splits[name] = parts["train"], parts["test"]
    if data.train_size < len(splits["train"]):
        splits["train"] = splits["train"].shuffle(seed=data.seed).select(range(data.train_size))
    return DatasetDict(splits)


def tokenizer_corpus(data: TextDataRecipe, splits: DatasetDict) -> list[str]:
    """Texts whose characters the tokenizer must cover: every split, plus num2words in `tokenizer_languages`."""
    texts = [t for part in splits.values() for column in ("source", "target") for t in part[column]]
    for language in data.tokenizer_languages or []:
        texts.extend(num2words_pairs(language, size=2000, low=0, high=max(data.high, 2001), seed=0)["target"])
    return texts


def build_seq2seq(recipe: Recipe, splits: DatasetDict | None = None):
    """
    The model and tokenizer a recipe starts from: `init_from: scratch` trains a character tokenizer on the corpus and
    builds `recipe.model` (a small BART by default); a Seq2Seq folder or Hub id loads it; a plain transformers
    encoder-decoder (T5, BART, Marian...) is wrapped with `Seq2SeqModel.from_backbone`, keeping its weights.
    Returns (model, tokenizer, transfer report or None).
    """
    if recipe.init_from == "scratch":
        splits = splits if splits is not None else load_text_splits(recipe.data)
        num_sentinels = NUM_SENTINELS if recipe.data.objective == "span_corruption" else 0
        tokenizer = train_tokenizer(tokenizer_corpus(recipe.data, splits), kind="char", num_sentinels=num_sentinels)
        model_fields = dict(recipe.model)
        backbone = dict(model_fields.pop("backbone", None) or {})
        if backbone.get("model_type", DEFAULT_BACKBONE["model_type"]) == DEFAULT_BACKBONE["model_type"]:
            backbone_config = default_backbone_config(tokenizer, **backbone)
        else:  # another architecture (T5, Marian, ...): its own defaults, sized to the tokenizer
            special = tokenizer_backbone_fields(tokenizer)
            backbone_config = AutoConfig.for_model(**{**special, **backbone})
        return Seq2SeqModel(Seq2SeqConfig(backbone=backbone_config, **model_fields)), tokenizer, None
    from ..hub import check_source_family, load_source

    check_source_family(recipe.init_from, "seq2seq")
    source_tokenizer = tokenizer = load_source(AutoTokenizer.from_pretrained, recipe.init_from)
    source = load_source(load_seq2seq_source, recipe.init_from)
    if recipe.transfer.retrain_tokenizer:
        splits = splits if splits is not None else load_text_splits(recipe.data)
        num_sentinels = NUM_SENTINELS if recipe.data.objective == "span_corruption" else 0
        tokenizer = train_tokenizer(tokenizer_corpus(recipe.data, splits), kind="char", num_sentinels=num_sentinels)
        model, report = transfer_into_target(source, recipe, source_tokenizer, tokenizer)
    else:
        model, report = transfer_into_target(source, recipe)
    model.config.base_model = recipe.init_from
    return model, tokenizer, report


def load_seq2seq_source(name_or_path: str) -> Seq2SeqModel:
    """A Seq2Seq folder or Hub id of ours, or any transformers encoder-decoder (wrapped, keeping its weights)."""
    if AutoConfig.from_pretrained(name_or_path).model_type == Seq2SeqConfig.model_type:
        return Seq2SeqModel.from_pretrained(name_or_path, use_safetensors=True)
    return Seq2SeqModel.from_backbone(name_or_path, use_safetensors=True)


def seq2seq_forgetting(init_from: str, per_task: dict) -> dict:
    """
    Adding a task to a trained multi-task model: how much each task the source already had lost, as
    `forgetting_chrf` and `forgetting_exact_match` (source score minus this run's; positive: the task got worse).
    """
    from ..hub import source_per_task_metrics

    before = source_per_task_metrics(init_from)
    if not before:
        return {}
    return {
        f"forgetting_{metric}": {
            task: before[task][metric] - per_task[task][metric]
            for task in per_task
            if task in before and metric in before[task]
        }
        for metric in ("chrf", "exact_match")
    }


def copy_seq2seq_task_parts(model: Seq2SeqModel, init_new_tasks_from: dict[str, str]) -> None:
    """Adding a task: its parts (decoder, top layers, LM head or adapters) start as copies of an existing task's."""
    for new_task, existing in init_new_tasks_from.items():
        names = model.config.task_names or []
        check_new_task_names(names, existing, new_task)
        if model.config.sharing == "hard":
            # One backbone for all: the new task's token embedding starts as the existing task's.
            token_ids = model.config.task_token_ids
            embeddings = model.get_input_embeddings().weight
            with torch.no_grad():
                embeddings[token_ids[names.index(new_task)]] = embeddings[token_ids[names.index(existing)]]
        else:
            model.init_task_from(new_task, existing)


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


def tokenize_for_objective(splits: DatasetDict, tokenizer, data: TextDataRecipe) -> DatasetDict:
    """Pairs -> (input_ids, labels); a denoising objective noises the target-side text instead."""
    if data.objective == "pairs":
        return tokenize_pairs(splits, tokenizer, data.max_source_length, data.max_target_length)
    texts = DatasetDict(
        {name: part.select_columns(["target"]).rename_column("target", "text") for name, part in splits.items()}
    )
    noise = text_infilling if data.objective == "text_infilling" else span_corruption
    return noise(texts, tokenizer, text_column="text", max_length=data.max_target_length, seed=data.seed)


def decoder_position_limit(config) -> int | None:
    """How many positions the decoder has embeddings for (None for relative positions, e.g. T5)."""
    backbone = getattr(config, "backbone", config)
    decoder = backbone.get_text_config(decoder=True)
    for name in ("max_decoder_position_embeddings", "max_target_positions", "n_positions", "max_position_embeddings"):
        value = getattr(decoder, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


@torch.no_grad()
def generate_batch(
    model, tokenizer, sources: list[str], num_beams: int = 1, max_new_tokens: int = 128, **kwargs
) -> list[str]:
    """
    Generated texts for `sources` (the same call `genxfer generate` and the Auto classes make), at most
    `max_new_tokens` long and never past the decoder's learned positions (a longer output would index past them).
    """
    encoded = tokenizer(sources, return_tensors="pt", padding=True).to(model.device)
    limit = decoder_position_limit(model.config)
    if limit is not None:
        # The start token takes one position, and ProphetNet's predicting stream looks one position ahead.
        max_new_tokens = max(1, min(max_new_tokens, limit - 2))
    output = model.generate(**encoded, num_beams=num_beams, max_new_tokens=max_new_tokens, **kwargs)
    return [text.strip() for text in tokenizer.batch_decode(output, skip_special_tokens=True)]


def generate_all(model, tokenizer, sources: list[str], batch_size: int, **kwargs) -> list[str]:
    was_training = model.training
    model.eval()
    texts = []
    for start in range(0, len(sources), batch_size):
        texts.extend(generate_batch(model, tokenizer, sources[start : start + batch_size], **kwargs))
    model.train(was_training)
    return texts


def score_texts(predictions: list[str], references: list[str]) -> dict:
    """Exact match (a fraction), chrF and BLEU (0-100, sacrebleu) of `predictions` against `references`."""
    from ..evaluation import load_metric

    scores = {}
    scores.update(load_metric("exact_match").compute(predictions=predictions, references=references))
    scores.update(load_metric("chrf").compute(predictions=predictions, references=references))
    bleu = load_metric("bleu").compute(predictions=predictions, references=references)
    scores["bleu"] = bleu["bleu"]
    scores["num_examples"] = len(predictions)
    return scores


def evaluation_pairs(part: Dataset, tokenizer, data: TextDataRecipe) -> tuple[list[str], list[str]]:
    """(sources, references) to score: the pairs themselves, or for denoising the noised text and the original."""
    if data.objective == "pairs":
        return list(part["source"]), list(part["target"])
    noised = tokenize_for_objective(DatasetDict(evaluation=part), tokenizer, data)["evaluation"]
    sources = tokenizer.batch_decode(list(noised["input_ids"]), skip_special_tokens=False)
    sources = [s.replace(tokenizer.eos_token, "") for s in sources]
    references = tokenizer.batch_decode(list(noised["labels"]), skip_special_tokens=True)
    return sources, references


# --------------------------------------------------------------------------------------------------------------------
# The run


class Seq2SeqRun(Run):
    def __init__(self, recipe: Recipe, accelerator: Accelerator):
        super().__init__(recipe, accelerator)
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
            self.model, self.tokenizer, report = build_seq2seq(recipe, self.splits)
            self.report = report
            # Multilingual tokenizers: the codes of both sides, and the target code where generation starts.
            apply_language_codes(self.tokenizer, data.source_language_code, data.target_language_code)
            start = target_language_start(self.tokenizer, data.target_language_code)
            if start:
                self.model.generation_config.update(**start)
            self.source_model_type = None
            if recipe.init_from != "scratch":
                from ..hub import source_model_type

                self.source_model_type = source_model_type(recipe.init_from)
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
            if recipe.multitask.init_new_tasks_from:
                copy_seq2seq_task_parts(self.model, recipe.multitask.init_new_tasks_from)
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
        if self.task_names is None:
            self.stream = IndexStream(
                len(self.train_dataset),
                training.batch_size,
                recipe.seed,
                accelerator.process_index,
                accelerator.num_processes,
            )
            self.weighting = None
        else:
            if recipe.transfer.lora is not None:
                raise RecipeError(
                    "transfer.lora does not combine with a multi-task Seq2Seq model: use sharing=shared_structure "
                    "with task_specific=lora."
                )
            sizes = {task: len(splits["train"]) for task, splits in self.task_splits.items()}
            self.task_offsets = dict(zip(sizes, [0, *torch.tensor(list(sizes.values())).cumsum(0).tolist()[:-1]]))
            self.task_batches = TaskBatches(
                sizes,
                training.batch_size,
                recipe.multitask,
                recipe.seed,
                accelerator.process_index,
                accelerator.num_processes,
            )
            self.weighting = build_weighting(recipe.multitask, self.task_names)

        # Transfer strategy: freeze, add adapters, then anchor the regulariser at the (source) weights.
        transfer = recipe.transfer
        frozen = apply_freezing(self.model, transfer)
        self.peft_model = apply_adapters(
            self.model,
            transfer,
            default_target="backbone",
            trainable_tokens=[entry["id"] for entry in self.added_tokens],
        )
        trained = self.peft_model if self.peft_model is not None else self.model
        self.regularizer = None
        if recipe.init_from != "scratch":
            self.regularizer = build_regularizer(
                self.model,
                transfer,
                lambda model, batch: model(**batch).loss,
                self._fisher_batches(transfer.fisher_batches),
            )
            if accelerator.is_main_process:
                write_transfer_report(
                    recipe.output_dir,
                    recipe,
                    report,
                    self.model,
                    frozen,
                    print_fn=accelerator.print,
                    added_tokens=self.added_tokens,
                )

        betas = tuple(training.adam_betas) if training.adam_betas is not None else SEQ2SEQ_ADAM_BETAS
        groups = parameter_groups(self.model, training.learning_rate, transfer, training.weight_decay)
        if self.weighting is not None and any(True for _ in self.weighting.parameters()):
            groups.append({"params": list(self.weighting.parameters()), "lr": training.learning_rate})
        optimizer = torch.optim.AdamW(
            groups,
            lr=training.learning_rate,
            betas=betas,
            weight_decay=training.weight_decay,
        )
        scheduler = get_scheduler(
            training.lr_scheduler,
            optimizer,
            num_warmup_steps=training.warmup_steps,
            num_training_steps=training.max_steps,
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
        from ..hub import source_file

        source_recipe = source_file(self.recipe.init_from, "genxfer_recipe.yaml")
        if source_recipe is not None:
            from ..recipes import load_recipe

            source_data = load_recipe(source_recipe).data
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

    def training_step(self, batch_number: int) -> dict[str, torch.Tensor]:
        if self.task_names is None:
            indices = self.stream.indices(batch_number)
        else:
            indices = [self.task_offsets[task] + i for task, i in self.task_batches.pairs(batch_number)]
        batch = self._collate(self.train_dataset, indices)
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
        self.optimizer.step()
        self.scheduler.step()
        self.after_weighted_step(losses)
        self.optimizer.zero_grad(set_to_none=True)
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
        if "per_task" in scores:
            scores.update(seq2seq_forgetting(self.recipe.init_from, scores["per_task"]))
        return scores

    def save(self, output_dir: str) -> None:
        model = self.model
        if self.peft_model is not None:
            # Adapter-only files (PeftModel.from_pretrained(base, f"{output_dir}/adapter") or
            # AutoPeftModelForSeq2SeqLM) plus the merged model, so that the Auto classes load the run folder like
            # any other. A plain transformers source loads as the bare backbone: the adapter is saved in its naming.
            save_adapter(
                self.peft_model,
                output_dir,
                None if self.added_tokens else adapter_base(self.recipe, self.report),
                strip_prefix="" if self.source_model_type == Seq2SeqConfig.model_type else "backbone.",
            )
            model = merged_copy(self.peft_model)
        model.save_pretrained(output_dir)
        self.tokenizer.save_pretrained(output_dir)


def generate_texts(
    folder: str, sources: list[str], num_beams: int = 1, max_new_tokens: int = 128, task: str | None = None
) -> list[str]:
    """Loads a saved folder with the Auto classes and generates for `sources` (in `task` for a multi-task model)."""
    from transformers import AutoModelForSeq2SeqLM

    from ..hub import load_source

    model = load_source(AutoModelForSeq2SeqLM.from_pretrained, folder, what="The folder", use_safetensors=True)
    tokenizer = load_source(AutoTokenizer.from_pretrained, folder, what="The folder")
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


def evaluate_saved_seq2seq(folder: str) -> dict:
    """
    Exact match, chrF and BLEU of a saved run folder on the test split of the recipe it was trained with (per task,
    with their means, for a multi-task model).
    """
    from transformers import AutoModelForSeq2SeqLM

    from ..recipes import load_recipe

    recipe = load_recipe(os.path.join(folder, "genxfer_recipe.yaml"))
    from ..hub import load_source

    model = load_source(AutoModelForSeq2SeqLM.from_pretrained, folder, what="The folder", use_safetensors=True)
    tokenizer = load_source(AutoTokenizer.from_pretrained, folder, what="The folder")
    evaluation = recipe.evaluation

    def score(data, task_kwargs):
        sources, references = evaluation_pairs(load_text_splits(data)["test"], tokenizer, data)
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
