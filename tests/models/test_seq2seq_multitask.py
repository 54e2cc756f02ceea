"""Multi-task Seq2SeqModel: hard sharing, a decoder per task, per-task top layers / LM heads / LoRA; save and load."""

import pytest
import torch
from safetensors import safe_open
from tiny_recipes import TINY_BACKBONES, TINY_VOCAB_SIZE  # tests/ is on sys.path
from tolerances import AFTER_RELOAD
from transformers import AutoModelForSeq2SeqLM

from hf_genxfer.models.seq2seq import Seq2SeqConfig, Seq2SeqModel, add_task_tokens

VOCAB_SIZE, SOURCE_LENGTH, TARGET_LENGTH = TINY_VOCAB_SIZE, 7, 5
TASKS = ["en", "fr"]


# The last two vocabulary ids serve as task tokens for the hard-sharing cases.
MODES = {
    "hard": {"sharing": "hard", "task_token_ids": [VOCAB_SIZE - 2, VOCAB_SIZE - 1]},
    "shared_encoder": {"sharing": "shared_encoder"},
    "top_decoder_layers": {"sharing": "shared_structure", "task_specific": "top_decoder_layers"},
    "lm_head": {"sharing": "shared_structure", "task_specific": "lm_head"},
    "lora": {"sharing": "shared_structure", "task_specific": "lora", "lora_rank": 2},
}
ROUTED = [mode for mode in MODES if mode != "hard"]


@pytest.fixture(params=["bart", "t5"])
def kind(request) -> str:
    return request.param


def tiny_multitask(kind: str, mode: str, task_names=TASKS) -> Seq2SeqModel:
    torch.manual_seed(0)
    config = Seq2SeqConfig(backbone=dict(TINY_BACKBONES[kind]), task_names=list(task_names), **MODES[mode])
    model = Seq2SeqModel(config).eval()
    if mode != "hard":
        # Every task starts from the same weights; make them differ so that routing mistakes show.
        with torch.no_grad():
            for index, task in enumerate(task_names):
                for parameter in model.task_parts[task].parameters():
                    parameter.add_(0.05 * (index + 1) * torch.randn_like(parameter))
    return model


def tiny_batch(batch: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    # Ids from 3 up (never pad/bos/eos) and below the task tokens.
    input_ids = torch.randint(3, VOCAB_SIZE - 2, (batch, SOURCE_LENGTH), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, -2:] = 0
    labels = torch.randint(3, VOCAB_SIZE - 2, (batch, TARGET_LENGTH), generator=generator)
    labels[0, -3:] = -100  # rows with different numbers of label tokens: the loss must weight tokens, not rows
    labels[-1, -1:] = -100
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def select(batch: dict[str, torch.Tensor], rows: list[int]) -> dict[str, torch.Tensor]:
    return {key: value[rows] for key, value in batch.items()}


@pytest.mark.parametrize("mode", MODES)
def test_forward_loss_and_generate_with_task(kind, mode):
    model = tiny_multitask(kind, mode)
    batch = tiny_batch()
    outputs = {task: model(**batch, task=task) for task in TASKS}
    for task, output in outputs.items():
        assert output.logits.shape == (4, TARGET_LENGTH, VOCAB_SIZE)
        assert torch.isfinite(output.loss)
        assert output.task_losses.keys() == {task}
        torch.testing.assert_close(output.task_losses[task], output.loss)
    assert not torch.allclose(outputs["en"].logits, outputs["fr"].logits)
    generated = model.generate(batch["input_ids"], attention_mask=batch["attention_mask"], task="fr", max_new_tokens=4)
    assert generated.shape[0] == 4 and generated.shape[1] <= 5


@pytest.mark.parametrize("mode", ROUTED)
def test_routing_sends_gradients_to_the_task_parts_only(kind, mode):
    model = tiny_multitask(kind, mode).train()
    model(**tiny_batch(), task="en").loss.backward()
    assert all(parameter.grad is None for parameter in model.task_parts["fr"].parameters())
    assert any(parameter.grad.abs().sum() > 0 for parameter in model.task_parts["en"].parameters())
    assert any(parameter.grad.abs().sum() > 0 for parameter in model.backbone.parameters())
    # Nothing of the tasks stays in the backbone: its per-task slots hold parameter-free placeholders.
    backbone_ids = {id(parameter) for parameter in model.backbone.parameters()}
    assert not backbone_ids & {id(parameter) for parameter in model.task_parts.parameters()}


@pytest.mark.parametrize("mode", MODES)
def test_mixed_batch_equals_per_task_runs(kind, mode):
    model = tiny_multitask(kind, mode)
    batch = tiny_batch()
    tasks = ["en", "fr", "fr", "en"]
    mixed = model(**batch, task=tasks, use_cache=False)
    as_indices = model(**batch, task=torch.tensor([0, 1, 1, 0]), use_cache=False)
    torch.testing.assert_close(as_indices.logits, mixed.logits)
    weighted, tokens = 0.0, 0
    for task in TASKS:
        rows = [row for row, name in enumerate(tasks) if name == task]
        alone = model(**select(batch, rows), task=task, use_cache=False)
        torch.testing.assert_close(mixed.logits[rows], alone.logits, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(mixed.task_losses[task], alone.loss, rtol=1e-5, atol=1e-5)
        count = int((batch["labels"][rows] != -100).sum())
        weighted, tokens = weighted + alone.loss * count, tokens + count
    torch.testing.assert_close(mixed.loss, weighted / tokens, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ROUTED)
def test_mixed_batch_trains_each_task_through_its_parts(kind, mode):
    model = tiny_multitask(kind, mode, task_names=["en", "fr", "de"]).train()
    model(**tiny_batch(), task=["en", "fr", "fr", "en"], use_cache=False).loss.backward()
    assert all(parameter.grad is None for parameter in model.task_parts["de"].parameters())
    for task in ("en", "fr"):
        assert any(parameter.grad.abs().sum() > 0 for parameter in model.task_parts[task].parameters())


GENERATION_STRATEGIES = {
    "greedy": {},
    "beam": {"num_beams": 3},
    "sample": {"do_sample": True, "top_k": 20},
}


@pytest.mark.parametrize("strategy", GENERATION_STRATEGIES)
@pytest.mark.parametrize("mode", MODES)
def test_generate_cached_matches_uncached_per_task(kind, mode, strategy):
    model = tiny_multitask(kind, mode)
    batch = tiny_batch(batch=2)
    kwargs = dict(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        max_new_tokens=5,
        min_new_tokens=5,
        **GENERATION_STRATEGIES[strategy],
    )
    for task in TASKS:
        torch.manual_seed(1)
        cached = model.generate(**kwargs, task=task, use_cache=True)
        torch.manual_seed(1)
        uncached = model.generate(**kwargs, task=task, use_cache=False)
        assert cached.shape == (2, 6)
        assert torch.equal(cached, uncached)


@pytest.mark.parametrize("mode", MODES)
def test_greedy_generate_follows_the_task_forward(kind, mode):
    # generate(task=...) must route every decoding step: compare with a plain greedy loop over forward(task=...).
    model = tiny_multitask(kind, mode)
    batch = tiny_batch(batch=2)
    for task in TASKS:
        generated = model.generate(
            batch["input_ids"],
            attention_mask=batch["attention_mask"],
            task=task,
            max_new_tokens=4,
            min_new_tokens=4,
            forced_eos_token_id=None,
        )
        decoder_input_ids = generated[:, :1]
        for _ in range(4):
            logits = model(
                batch["input_ids"], batch["attention_mask"], decoder_input_ids=decoder_input_ids, task=task
            ).logits
            decoder_input_ids = torch.cat([decoder_input_ids, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
        assert torch.equal(generated, decoder_input_ids)


def test_hard_sharing_generates_a_batch_of_mixed_tasks(kind):
    model = tiny_multitask(kind, "hard")
    batch = tiny_batch(batch=2)
    kwargs = dict(attention_mask=batch["attention_mask"], max_new_tokens=4, min_new_tokens=4, num_beams=2)
    mixed = model.generate(batch["input_ids"], task=["fr", "en"], **kwargs)
    for row, task in enumerate(["fr", "en"]):
        alone = model.generate(
            batch["input_ids"][row : row + 1],
            task=task,
            **{**kwargs, "attention_mask": batch["attention_mask"][row : row + 1]},
        )
        assert torch.equal(mixed[row : row + 1, : alone.shape[1]], alone)


@pytest.mark.parametrize("mode", ROUTED)
@pytest.mark.parametrize("beams, sequences", [(1, 1), (2, 2)])
def test_routed_generate_takes_one_task_per_example(kind, mode, beams, sequences):
    # Each task's rows go through a generate call of their own and come back in input order, padded.
    model = tiny_multitask(kind, mode)
    batch = tiny_batch()
    tasks = ["fr", "en", "en", "fr"]
    kwargs = dict(max_new_tokens=4, num_beams=beams, num_return_sequences=sequences)
    mixed = model.generate(batch["input_ids"], attention_mask=batch["attention_mask"], task=tasks, **kwargs)
    assert mixed.shape[0] == 4 * sequences
    pad = model.generation_config.pad_token_id
    for task in ("fr", "en"):
        rows = [row for row, each in enumerate(tasks) if each == task]
        alone = model.generate(**select(batch, rows) | {"labels": None}, task=task, **kwargs)
        for position, row in enumerate(rows):
            for k in range(sequences):
                got, want = mixed[row * sequences + k], alone[position * sequences + k]
                assert torch.equal(got[: want.shape[0]], want)  # the same sub-batch: bitwise
                assert bool((got[want.shape[0] :] == pad).all())
    # A list naming one task is the same as the name.
    same = model.generate(batch["input_ids"], attention_mask=batch["attention_mask"], task=["en"] * 4, **kwargs)
    assert torch.equal(
        same, model.generate(batch["input_ids"], attention_mask=batch["attention_mask"], task="en", **kwargs)
    )


@pytest.mark.parametrize("mode", MODES)
def test_save_and_auto_load_keep_every_task(kind, mode, tmp_path):
    model = tiny_multitask(kind, mode)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is Seq2SeqModel
    for field in ("task_names", "sharing", "task_token_ids", "task_specific", "task_specific_layers"):
        assert getattr(loaded.config, field) == getattr(model.config, field)
    batch = tiny_batch()
    for task in TASKS:
        torch.testing.assert_close(loaded(**batch, task=task).logits, model(**batch, task=task).logits, **AFTER_RELOAD)
    # Shared embeddings stay tied after loading.
    shared = loaded.get_input_embeddings().weight
    assert loaded.get_encoder().embed_tokens.weight is shared
    if mode != "lm_head":
        assert loaded.backbone.get_output_embeddings().weight is shared
    # Every parameter is stored once: per-task parts under task_parts.<task>., never also under backbone.
    with safe_open(tmp_path / "model.safetensors", "pt") as file:
        keys = set(file.keys())
    state_keys = set(model.state_dict())
    assert keys <= state_keys
    if mode != "hard":
        for task in TASKS:
            task_keys = {key for key in state_keys if key.startswith(f"task_parts.{task}.")}
            assert task_keys and task_keys <= keys
    names_by_parameter = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        names_by_parameter.setdefault(id(parameter), []).append(name)
    duplicates = [names for names in names_by_parameter.values() if len(names) > 1]
    tied = set(model.all_tied_weights_keys)
    assert all(len([name for name in names if name not in tied]) == 1 for names in duplicates)


@pytest.mark.parametrize("mode", ROUTED)
def test_add_task_copies_or_initialises_independent_parts(kind, mode, tmp_path):
    model = tiny_multitask(kind, mode)
    batch = tiny_batch()
    model.add_task("de", init_from="fr")
    assert model.config.task_names == ["en", "fr", "de"]
    torch.testing.assert_close(model(**batch, task="de").logits, model(**batch, task="fr").logits, rtol=0, atol=0)
    de_ids = {parameter.data_ptr() for parameter in model.task_parts["de"].parameters()}
    assert not de_ids & {parameter.data_ptr() for parameter in model.task_parts["fr"].parameters()}
    before = model(**batch, task="fr").logits
    with torch.no_grad():
        for parameter in model.task_parts["de"].parameters():
            parameter.add_(0.1)
    torch.testing.assert_close(model(**batch, task="fr").logits, before, rtol=0, atol=0)
    assert not torch.allclose(model(**batch, task="de").logits, before)

    model.add_task("es")  # fresh parts, as a new backbone would start
    assert model(**batch, task="es").loss.isfinite()
    model.save_pretrained(tmp_path)
    loaded = Seq2SeqModel.from_pretrained(tmp_path).eval()
    assert loaded.config.task_names == ["en", "fr", "de", "es"]
    torch.testing.assert_close(loaded(**batch, task="es").logits, model(**batch, task="es").logits, **AFTER_RELOAD)

    model.init_task_from("es", "en")
    torch.testing.assert_close(model(**batch, task="es").logits, model(**batch, task="en").logits, rtol=0, atol=0)
    with pytest.raises(ValueError, match="needs a new non-empty name"):
        model.add_task("en")
    with pytest.raises(ValueError, match="Unknown task 'xx'"):
        model.add_task("it", init_from="xx")


def test_add_task_tokens_for_hard_sharing(kind):
    from hf_genxfer.data.tokenization import train_tokenizer

    tokenizer = train_tokenizer(["four thousand and twenty-one", "quatre mille vingt et un"])
    backbone = dict(TINY_BACKBONES[kind], vocab_size=len(tokenizer))
    model = Seq2SeqModel(Seq2SeqConfig(backbone=backbone, task_names=TASKS, sharing="hard")).eval()
    with pytest.raises(ValueError, match="call add_task_tokens"):
        model(**tiny_batch(), task="en")
    token_ids = add_task_tokens(tokenizer, model)
    assert token_ids == tokenizer.convert_tokens_to_ids(["<task:en>", "<task:fr>"])
    assert model.config.task_token_ids == token_ids
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer) == model.config.backbone.vocab_size
    add_task_tokens(tokenizer, model, ["en", "fr", "de"])
    assert model.config.task_names == ["en", "fr", "de"] and len(model.config.task_token_ids) == 3
    encoded = tokenizer(["four thousand"], return_tensors="pt")
    output = model(encoded["input_ids"], encoded["attention_mask"], labels=encoded["input_ids"], task="de")
    assert torch.isfinite(output.loss)


def test_shared_encoder_parameter_count():
    # Default small BART, 4 tasks: one shared encoder + 4 decoders vs 4 separate models.
    tasks = ["a", "b", "c", "d"]
    single = Seq2SeqModel(Seq2SeqConfig()).num_parameters()
    shared_encoder = Seq2SeqModel(Seq2SeqConfig(task_names=tasks, sharing="shared_encoder")).num_parameters()
    top_layer = Seq2SeqModel(Seq2SeqConfig(task_names=tasks, sharing="shared_structure")).num_parameters()
    assert shared_encoder < 0.7 * 4 * single  # 0.68: the decoder (with cross-attention) is most of a BART
    assert top_layer < 0.5 * 4 * single  # 0.45


def test_bare_backbone_of_a_routed_model_asks_for_a_task():
    model = tiny_multitask("bart", "shared_encoder")
    with pytest.raises(RuntimeError, match="call the Seq2SeqModel with task="):
        model.backbone(**tiny_batch())


@pytest.mark.parametrize("mode", MODES)
def test_task_errors(mode):
    model = tiny_multitask("bart", mode)
    batch = tiny_batch()
    with pytest.raises(ValueError, match="pass task= one of en, fr"):
        model(**batch)
    with pytest.raises(ValueError, match="Unknown task 'de'"):
        model(**batch, task="de")
    with pytest.raises(ValueError, match="Pass one task or 4"):
        model(**batch, task=["en", "fr"])
    with pytest.raises(ValueError, match=r"Task indices must lie in \[0, 1\]"):
        model(**batch, task=torch.tensor([0, 1, 2, 0]))
    with pytest.raises(ValueError, match="Unknown task 'de'"):
        model.generate(batch["input_ids"], task="de", max_new_tokens=2)
    if mode != "hard":
        with pytest.raises(ValueError, match="return_dict_in_generate=True needs one task per call"):
            model.generate(
                batch["input_ids"], task=["en", "fr", "en", "fr"], max_new_tokens=2, return_dict_in_generate=True
            )
        with pytest.raises(ValueError, match="runs without a cache"):
            model(**batch, task=["en", "fr", "en", "fr"], use_cache=True)


def test_single_task_model_accepts_its_task_names():
    torch.manual_seed(0)
    model = Seq2SeqModel(Seq2SeqConfig(backbone=dict(TINY_BACKBONES["t5"]), task_names=TASKS)).eval()
    batch = tiny_batch()
    torch.testing.assert_close(model(**batch, task="fr").logits, model(**batch).logits, rtol=0, atol=0)
    with pytest.raises(ValueError, match="Unknown task 'de'"):
        model(**batch, task="de")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sharing": "hard", "task_names": ["en"]}, "needs two or more `task_names`"),
        ({"sharing": "shared_encoder"}, "needs two or more `task_names`"),
        ({"sharing": "shared_structure", "task_names": TASKS, "task_specific": "encoder"}, "`task_specific` must be"),
        ({"sharing": "shared_structure", "task_names": TASKS, "task_specific_layers": 3}, r"must lie in \[1, 2\]"),
        ({"sharing": "shared_structure", "task_names": TASKS, "task_specific_layers": 0}, r"must lie in \[1, 2\]"),
        ({"sharing": "shared_structure", "task_names": TASKS, "lora_rank": 0}, "`lora_rank` must be at least 1"),
        ({"sharing": "shared_structure", "task_names": TASKS, "lora_target_modules": []}, "must name at least one"),
        ({"sharing": "hard", "task_names": TASKS, "task_token_ids": [5]}, "one token id in"),
        ({"sharing": "hard", "task_names": TASKS, "task_token_ids": [5, 999]}, "one token id in"),
        (
            {"sharing": "shared_encoder", "task_names": TASKS, "task_token_ids": [5, 6]},
            "only used with sharing='hard'",
        ),
    ],
)
def test_bad_multitask_config_values_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Seq2SeqConfig(backbone=dict(TINY_BACKBONES["bart"]), **kwargs)


@pytest.mark.parametrize("mode", ROUTED)
def test_from_backbone_starts_every_task_from_the_pretrained_weights(kind, mode):
    torch.manual_seed(0)
    bare = AutoModelForSeq2SeqLM.from_config(Seq2SeqConfig(backbone=dict(TINY_BACKBONES[kind])).backbone).eval()
    batch = tiny_batch()
    expected = bare(**batch).logits
    model = Seq2SeqModel.from_backbone(bare, task_names=TASKS, **MODES[mode]).eval()
    for task in TASKS:
        torch.testing.assert_close(model(**batch, task=task).logits, expected, rtol=1e-5, atol=1e-5)


def test_mixed_batch_training_reduces_every_task_loss(kind):
    model = tiny_multitask(kind, "shared_encoder").train()
    batch, tasks = tiny_batch(), ["en", "fr", "fr", "en"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = None
    for _ in range(10):
        output = model(**batch, task=tasks, use_cache=False)
        output.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        first = first or {task: loss.item() for task, loss in output.task_losses.items()}
    assert all(output.task_losses[task].item() < 0.7 * first[task] for task in TASKS)


def test_shared_encoder_resizes_the_shared_vocabulary():
    model = tiny_multitask("bart", "shared_encoder")
    model.resize_token_embeddings(VOCAB_SIZE + 3)
    assert model(**tiny_batch(), task="fr").logits.shape[-1] == VOCAB_SIZE + 3
    with pytest.raises(ValueError, match="per-task LM heads"):
        tiny_multitask("bart", "lm_head").resize_token_embeddings(VOCAB_SIZE + 3)


def test_lora_shares_the_backbone_weights_under_their_single_task_names():
    torch.manual_seed(0)
    single = Seq2SeqModel(Seq2SeqConfig(backbone=dict(TINY_BACKBONES["bart"])))
    model = tiny_multitask("bart", "lora")
    # Single-task checkpoints load into the shared weights as they are; each task adds only its adapters.
    assert {key for key in model.state_dict() if key.startswith("backbone.")} == set(single.state_dict())
    adapters = sum(parameter.numel() for parameter in model.task_parts["en"].parameters())
    assert adapters < 0.2 * single.num_parameters()
    targeted = Seq2SeqModel(
        Seq2SeqConfig(
            backbone=dict(TINY_BACKBONES["bart"]), task_names=TASKS, **MODES["lora"], lora_target_modules=["q_proj"]
        )
    )
    assert len(targeted.task_parts["en"]) == 2 * 2 + 2  # encoder self-attn, decoder self- and cross-attn
    with pytest.raises(ValueError, match="No linear layer of the backbone is named"):
        Seq2SeqModel(
            Seq2SeqConfig(
                backbone=dict(TINY_BACKBONES["bart"]), task_names=TASKS, **MODES["lora"], lora_target_modules=["q"]
            )
        )


def test_hard_sharing_starts_the_decoder_from_the_task_token(kind):
    model = tiny_multitask(kind, "hard")
    batch = tiny_batch()
    token_ids = model.config.task_token_ids
    tasks = ["en", "fr", "fr", "en"]
    starts = torch.tensor([[token_ids[TASKS.index(task)]] for task in tasks])
    # Training from labels alone: the decoder reads the task token, then the labels shifted right.
    shifted = torch.cat([starts, batch["labels"][:, :-1]], dim=1)
    shifted[shifted == -100] = model.config.backbone.pad_token_id
    from_labels = model(**batch, task=tasks)
    explicit = model(**batch, decoder_input_ids=shifted, task=tasks)
    torch.testing.assert_close(from_labels.logits, explicit.logits, rtol=0, atol=0)
    torch.testing.assert_close(from_labels.loss, explicit.loss, rtol=0, atol=0)
    # Decoder inputs shifted behind decoder_start_token_id (as DataCollatorForSeq2Seq(model=...) builds them): the
    # start position takes the task token too, so training reads what generation starts from.
    collated = model(
        **batch, decoder_input_ids=model.prepare_decoder_input_ids_from_labels(batch["labels"]), task=tasks
    )
    torch.testing.assert_close(collated.logits, from_labels.logits, rtol=0, atol=0)
    generated = model.generate(
        batch["input_ids"], attention_mask=batch["attention_mask"], task=tasks, max_new_tokens=3
    )
    assert torch.equal(generated[:, :1], starts)
    # Off: the decoder starts from the backbone's decoder_start_token_id, as before, and the task is seen by the
    # encoder only.
    model.config.task_token_in_decoder = False
    generated = model.generate(
        batch["input_ids"], attention_mask=batch["attention_mask"], task=tasks, max_new_tokens=3
    )
    assert (generated[:, 0] == model.config.backbone.decoder_start_token_id).all()
    assert not torch.allclose(model(**batch, task=tasks).logits, from_labels.logits)
