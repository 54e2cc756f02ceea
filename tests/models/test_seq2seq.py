"""Seq2SeqModel around tiny BART and T5 backbones: Auto round trip, tied weights, generation and the KV cache."""

import pytest
import torch
from tiny_recipes import TINY_BACKBONES, TINY_VOCAB_SIZE  # tests/ is on sys.path
from tolerances import AFTER_RELOAD
from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, BartConfig, T5Config

from hf_genxfer.models.seq2seq import Seq2SeqConfig, Seq2SeqModel, default_backbone_config

VOCAB_SIZE, BATCH, SOURCE_LENGTH, TARGET_LENGTH = TINY_VOCAB_SIZE, 2, 7, 5


def tiny_model(kind: str, **config_kwargs) -> Seq2SeqModel:
    torch.manual_seed(0)
    return Seq2SeqModel(Seq2SeqConfig(backbone=dict(TINY_BACKBONES[kind]), **config_kwargs)).eval()


def tiny_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    # Ids from 3 up: never pad/bos/eos for either backbone, so generation cannot stop early.
    input_ids = torch.randint(3, VOCAB_SIZE, (BATCH, SOURCE_LENGTH), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, -2:] = 0  # one padded row
    labels = torch.randint(3, VOCAB_SIZE, (BATCH, TARGET_LENGTH), generator=generator)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


@pytest.fixture(params=["bart", "t5"])
def kind(request) -> str:
    return request.param


def test_forward_returns_backbone_output(kind):
    model = tiny_model(kind)
    batch = tiny_batch()
    output = model(**batch)
    bare = model.backbone(**batch)
    assert output.logits.shape == (BATCH, TARGET_LENGTH, VOCAB_SIZE)
    assert torch.isfinite(output.loss)
    torch.testing.assert_close(output.logits, bare.logits, rtol=0, atol=0)
    assert model.get_encoder() is model.backbone.get_encoder()
    assert model.get_decoder() is model.backbone.get_decoder()
    assert model.get_input_embeddings() is model.backbone.get_input_embeddings()


def test_save_and_auto_load_round_trip(kind, tmp_path):
    model = tiny_model(kind, task_names=["en", "fr"])
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert (tmp_path / "generation_config.json").exists()

    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is Seq2SeqModel
    assert loaded.config.backbone.model_type == kind
    assert loaded.config.task_names == ["en", "fr"]
    assert loaded.generation_config.decoder_start_token_id == model.generation_config.decoder_start_token_id
    batch = tiny_batch()
    torch.testing.assert_close(loaded(**batch).logits, model(**batch).logits, **AFTER_RELOAD)
    assert type(AutoModel.from_pretrained(tmp_path)) is Seq2SeqModel


def test_tied_embeddings_survive_round_trip(kind, tmp_path):
    model = tiny_model(kind)
    model.save_pretrained(tmp_path)
    loaded = Seq2SeqModel.from_pretrained(tmp_path)
    for candidate in (model, loaded):
        shared = candidate.get_input_embeddings().weight
        assert candidate.get_output_embeddings().weight is shared
        assert candidate.get_encoder().embed_tokens.weight is shared
        assert candidate.get_decoder().embed_tokens.weight is shared
        assert "backbone.lm_head.weight" in candidate.all_tied_weights_keys
    # Training one tied copy moves them all.
    with torch.no_grad():
        loaded.get_input_embeddings().weight[5].fill_(1.0)
    assert torch.equal(loaded.get_output_embeddings().weight[5], torch.ones(16))


def test_untied_output_embeddings_round_trip(tmp_path):
    # BART can keep a separate output projection (T5 in transformers 5 always ties).
    torch.manual_seed(0)
    model = Seq2SeqModel(Seq2SeqConfig(backbone=dict(TINY_BACKBONES["bart"], tie_word_embeddings=False))).eval()
    assert model.get_output_embeddings().weight is not model.get_input_embeddings().weight
    model.save_pretrained(tmp_path)
    loaded = Seq2SeqModel.from_pretrained(tmp_path).eval()
    assert loaded.get_output_embeddings().weight is not loaded.get_input_embeddings().weight
    torch.testing.assert_close(loaded.get_output_embeddings().weight, model.get_output_embeddings().weight)
    batch = tiny_batch()
    torch.testing.assert_close(loaded(**batch).logits, model(**batch).logits, **AFTER_RELOAD)


def test_auto_registration():
    config = AutoConfig.for_model("genxfer_seq2seq", backbone=dict(TINY_BACKBONES["t5"]))
    assert isinstance(config, Seq2SeqConfig)
    assert isinstance(AutoModelForSeq2SeqLM.from_config(config), Seq2SeqModel)
    assert isinstance(AutoModel.from_config(config), Seq2SeqModel)


GENERATION_STRATEGIES = {
    "greedy": {},
    "beam": {"num_beams": 3},
    "sample": {"do_sample": True, "top_k": 20},
}


@pytest.mark.parametrize("strategy", GENERATION_STRATEGIES)
def test_generate_cached_matches_uncached(kind, strategy):
    model = tiny_model(kind)
    batch = tiny_batch()
    kwargs = dict(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        max_new_tokens=6,
        min_new_tokens=6,
        **GENERATION_STRATEGIES[strategy],
    )
    torch.manual_seed(1)
    cached = model.generate(**kwargs, use_cache=True)
    torch.manual_seed(1)
    uncached = model.generate(**kwargs, use_cache=False)
    assert cached.shape == (BATCH, 7)  # decoder start token + 6 new tokens
    assert torch.equal(cached[:, 0], torch.full((BATCH,), model.generation_config.decoder_start_token_id))
    assert torch.equal(cached, uncached)
    torch.manual_seed(1)
    assert torch.equal(model.backbone.generate(**kwargs), cached)


def test_incremental_decoding_with_cache_matches_full_pass(kind):
    model = tiny_model(kind)
    batch = tiny_batch()
    decoder_input_ids = batch["labels"]
    full = model(batch["input_ids"], batch["attention_mask"], decoder_input_ids=decoder_input_ids).logits
    prefix = model(
        batch["input_ids"], batch["attention_mask"], decoder_input_ids=decoder_input_ids[:, :-1], use_cache=True
    )
    assert prefix.cache is not None
    step = model(
        attention_mask=batch["attention_mask"],
        encoder_outputs=(prefix.encoder_last_hidden_state,),
        decoder_input_ids=decoder_input_ids[:, -1:],
        cache=prefix.cache,
        use_cache=True,
    ).logits
    torch.testing.assert_close(step[:, -1], full[:, -1], rtol=1e-5, atol=1e-5)


def test_past_key_values_is_accepted_as_cache():
    model = tiny_model("bart")
    batch = tiny_batch()
    prefix = model(batch["input_ids"], decoder_input_ids=batch["labels"][:, :-1], use_cache=True)
    kwargs = dict(encoder_outputs=(prefix.encoder_last_hidden_state,), decoder_input_ids=batch["labels"][:, -1:])
    with pytest.warns(FutureWarning):
        old_name = model(**kwargs, past_key_values=prefix.cache).logits
    prefix = model(batch["input_ids"], decoder_input_ids=batch["labels"][:, :-1], use_cache=True)
    torch.testing.assert_close(model(**kwargs, cache=prefix.cache).logits, old_name)


def test_training_steps_reduce_loss(kind):
    model = tiny_model(kind).train()
    batch = tiny_batch()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(12):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.7 * losses[0]


def test_from_backbone_keeps_pretrained_weights(kind, tmp_path):
    torch.manual_seed(0)
    backbone_config = {"bart": BartConfig, "t5": T5Config}[kind](
        **{k: v for k, v in TINY_BACKBONES[kind].items() if k != "model_type"}
    )
    bare = AutoModelForSeq2SeqLM.from_config(backbone_config).eval()
    bare.save_pretrained(tmp_path)
    batch = tiny_batch()
    expected = bare(**batch).logits

    from_folder = Seq2SeqModel.from_backbone(str(tmp_path), task_names=["source"]).eval()
    assert from_folder.config.task_names == ["source"]
    torch.testing.assert_close(from_folder(**batch).logits, expected, **AFTER_RELOAD)
    assert from_folder.generation_config.decoder_start_token_id == bare.generation_config.decoder_start_token_id

    from_instance = Seq2SeqModel.from_backbone(bare).eval()
    assert from_instance.backbone is bare
    torch.testing.assert_close(from_instance(**batch).logits, expected, rtol=0, atol=0)


def test_default_backbone_is_small_bart():
    config = Seq2SeqConfig()
    assert config.backbone.model_type == "bart"
    assert (config.backbone.d_model, config.backbone.encoder_layers, config.backbone.decoder_layers) == (128, 2, 2)
    assert config.task_names == ["default"] and config.sharing == "single"


def test_default_backbone_config_follows_tokenizer():
    from hf_genxfer.data.tokenization import train_tokenizer

    tokenizer = train_tokenizer(["four thousand and twenty-one"])
    backbone = default_backbone_config(tokenizer)
    assert backbone.vocab_size == len(tokenizer)
    assert (backbone.pad_token_id, backbone.eos_token_id) == (tokenizer.pad_token_id, tokenizer.eos_token_id)
    model = Seq2SeqModel(Seq2SeqConfig(backbone=backbone))
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id
    assert model.generation_config.decoder_start_token_id == tokenizer.bos_token_id


def test_resize_token_embeddings_updates_backbone_config():
    model = tiny_model("bart")
    model.resize_token_embeddings(VOCAB_SIZE + 5)
    assert model.config.backbone.vocab_size == VOCAB_SIZE + 5
    assert model(**tiny_batch()).logits.shape[-1] == VOCAB_SIZE + 5


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sharing": "everything"}, "`sharing` must be one of"),
        ({"task_names": []}, "`task_names` must be a non-empty list"),
        ({"task_names": ["en", "en"]}, "`task_names` must be unique"),
        ({"backbone": {"model_type": "gpt2"}}, "`backbone` must be an encoder-decoder"),
        ({"backbone": {"vocab_size": 10}}, "dict with a `model_type` key"),
        ({"backbone": {"model_type": "not-a-model"}}, "is not a transformers config type"),
        ({"backbone": {"model_type": "t5", "vocab_size": 99}}, "must set `decoder_start_token_id`"),
    ],
)
def test_bad_config_values_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Seq2SeqConfig(**kwargs)


@pytest.mark.parametrize(
    "field, value", [("task_specific_layers", 1.5), ("lora_rank", "8"), ("task_names", "en"), ("sharing", None)]
)
def test_config_fields_of_the_wrong_type_are_rejected_by_name(field, value):
    from huggingface_hub.errors import StrictDataclassFieldValidationError

    with pytest.raises(StrictDataclassFieldValidationError, match=f"field '{field}'"):
        Seq2SeqConfig(**{field: value})
