"""transfer_parameters: statuses and counts across class, vocabulary and depth changes; exact vocabulary rows; patterns."""

import json

import pytest
import torch
from safetensors.torch import load_file

from hf_genxfer.data.tokenization import train_tokenizer
from hf_genxfer.transfer import (
    TransferEntry,
    TransferReport,
    encoder_patterns,
    generator_patterns,
    transfer_parameters,
)


def snapshot(model):
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def test_gan_with_another_number_of_classes(gan_factory):
    source, target = gan_factory(seed=0, num_classes=3), gan_factory(seed=1, num_classes=5)
    before = snapshot(target)
    report = transfer_parameters(source, target)

    new_class_tensors = {
        "generator.class_embedding.weight",
        "discriminator.class_projection.parametrizations.weight.original",
        "discriminator.class_projection.parametrizations.weight.0._u",
        "discriminator.class_projection.parametrizations.weight.0._v",
    }
    assert {entry.name for entry in report.by_status("initialised")} == new_class_tensors
    assert report.counts() == {"copied": len(before) - 4, "remapped": 0, "initialised": 4, "skipped": 0}
    assert report["generator.class_embedding.weight"].reason == "shape (3, 32) in source vs (5, 32) in target"
    # _v has the same shape in both but belongs to a weight that was not copied: it stays with the target's.
    assert "not copied" in report["discriminator.class_projection.parametrizations.weight.0._v"].reason

    source_state, after = source.state_dict(), target.state_dict()
    for name in after:
        expected = before[name] if name in new_class_tensors else source_state[name]
        assert torch.equal(after[name], expected), name
    # Spectral-norm power-iteration buffers travel with their weights.
    assert report["discriminator.head.parametrizations.weight.0._u"].status == "copied"
    assert report["discriminator.head.parametrizations.weight.0._u"].kind == "buffer"
    assert 0.9 < report.transferred_fraction() < 1.0


def test_unconditional_source_into_conditional_target(gan_factory):
    report = transfer_parameters(gan_factory(num_classes=None), gan_factory(seed=1, num_classes=4))
    assert report["generator.class_embedding.weight"].reason == "not in source"
    assert report["generator.mapping.weight"].reason == "shape (256, 8) in source vs (256, 40) in target"
    assert report["discriminator.class_projection.parametrizations.weight.original"].status == "initialised"


def test_full_copy_gives_identical_outputs(gan_factory):
    source, target = gan_factory(seed=0, num_classes=3), gan_factory(seed=1, num_classes=3)
    report = transfer_parameters(source, target)
    assert set(report.counts().values()) == {0, len(source.state_dict())}
    assert report.transferred_fraction() == 1.0
    latents, labels = torch.randn(4, 8), torch.tensor([0, 1, 2, 0])
    source.eval(), target.eval()
    images = target(latents, class_labels=labels).images
    torch.testing.assert_close(images, source(latents, class_labels=labels).images, rtol=0, atol=0)
    torch.testing.assert_close(
        target.discriminator(images, labels).logits, source.discriminator(images, labels).logits, rtol=0, atol=0
    )


def test_state_dict_from_safetensors_and_the_source_loader(tmp_path, seq2seq_factory):
    source, target = seq2seq_factory("bart", seed=0), seq2seq_factory("bart", seed=1)
    source.save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    assert "backbone.lm_head.weight" not in state  # tied copies are not saved
    report = transfer_parameters(state, target)
    assert report.counts()["initialised"] == 0 and report.counts()["skipped"] == 0
    shared = target.backbone.model.shared.weight
    assert target.backbone.lm_head.weight is shared and target.backbone.model.encoder.embed_tokens.weight is shared
    assert torch.equal(shared, source.backbone.model.shared.weight)

    from hf_genxfer.families import get_family
    from hf_genxfer.source import load_source

    train_tokenizer(["one two three"], kind="char").save_pretrained(tmp_path)  # a Seq2Seq source brings one
    loaded = load_source(str(tmp_path), get_family("seq2seq"))  # what a recipe's init_from resolves to
    assert loaded.model_type == "genxfer_seq2seq" and loaded.recipe is None and loaded.per_task_metrics == {}
    assert torch.equal(loaded.model.backbone.lm_head.weight, source.backbone.lm_head.weight)


@pytest.mark.parametrize("tied", [True, False])
def test_vocabulary_remapping_copies_exactly_the_shared_rows(seq2seq_factory, tied):
    source_tokenizer = train_tokenizer(["one two three", "four five"], kind="char")
    target_tokenizer = train_tokenizer(["uno dos tres", "cuatro cinco!"], kind="char")
    source_vocab, target_vocab = source_tokenizer.get_vocab(), target_tokenizer.get_vocab()
    shared_tokens = sorted(set(source_vocab) & set(target_vocab))
    new_tokens = sorted(set(target_vocab) - set(source_vocab))
    assert new_tokens and len(source_vocab) != len(target_vocab)

    source = seq2seq_factory("bart", seed=0, vocab_size=len(source_vocab), tie_word_embeddings=tied)
    target = seq2seq_factory("bart", seed=1, vocab_size=len(target_vocab), tie_word_embeddings=tied)
    with torch.no_grad():
        source.backbone.final_logits_bias.normal_()  # zeros by default: make its columns tell tokens apart
    before = snapshot(target)
    report = transfer_parameters(source, target, source_tokenizer=source_tokenizer, target_tokenizer=target_tokenizer)

    embedding_names = ["backbone.model.shared.weight", "backbone.final_logits_bias"]
    if not tied:  # every embedding-like tensor is its own
        embedding_names += [
            "backbone.model.encoder.embed_tokens.weight",
            "backbone.model.decoder.embed_tokens.weight",
            "backbone.lm_head.weight",
        ]
    assert sorted(entry.name for entry in report.by_status("remapped")) == sorted(embedding_names)
    assert report.counts()["initialised"] == 0
    entry = report["backbone.model.shared.weight"]
    assert entry.transferred == len(shared_tokens) * 16
    assert f"{len(shared_tokens)} shared token rows copied by token" in entry.reason

    source_state, after = source.state_dict(), target.state_dict()
    for name in embedding_names:
        for token in shared_tokens:
            if name.endswith("final_logits_bias"):
                assert after[name][0, target_vocab[token]] == source_state[name][0, source_vocab[token]]
            else:
                assert torch.equal(after[name][target_vocab[token]], source_state[name][source_vocab[token]])
        for token in new_tokens:
            row = (0, target_vocab[token]) if name.endswith("final_logits_bias") else target_vocab[token]
            assert torch.equal(after[name][row], before[name][row]), (name, token)
    backbone = target.backbone
    assert (backbone.lm_head.weight is backbone.model.shared.weight) == tied


def test_vocabulary_change_without_tokenizers_matches_rows_by_id(seq2seq_factory):
    source, target = seq2seq_factory("t5", seed=0, vocab_size=30), seq2seq_factory("t5", seed=1, vocab_size=36)
    before = target.backbone.shared.weight.detach().clone()
    report = transfer_parameters(source, target)
    assert [entry.name for entry in report.by_status("remapped")] == ["backbone.shared.weight"]
    assert "by id" in report["backbone.shared.weight"].reason
    assert set(report["backbone.shared.weight"].aliases) >= {"backbone.lm_head.weight"}
    shared = target.backbone.shared.weight
    assert torch.equal(shared[:30], source.backbone.shared.weight)
    assert torch.equal(shared[30:], before[30:])
    assert target.backbone.lm_head.weight is shared


def test_one_tokenizer_is_rejected(seq2seq_factory):
    tokenizer = train_tokenizer(["abc"], kind="char")
    with pytest.raises(ValueError, match="Pass both"):
        transfer_parameters(seq2seq_factory(), seq2seq_factory(), source_tokenizer=tokenizer)


@pytest.mark.parametrize("kind, layers_key", [("bart", "encoder_layers"), ("t5", "num_layers")])
def test_another_depth(seq2seq_factory, kind, layers_key):
    shallow, deep = seq2seq_factory(kind, **{layers_key: 2}), seq2seq_factory(kind, seed=1, **{layers_key: 3})
    per_layer = len([name for name in deep.state_dict() if ".layers.2." in name or ".block.2." in name])

    deeper = transfer_parameters(shallow, deep)
    assert deeper.counts()["initialised"] == per_layer
    assert {entry.reason for entry in deeper.by_status("initialised")} == {"not in source"}

    shallower = transfer_parameters(deep, shallow)
    unique_tensors = len({id(tensor) for tensor in shallow.state_dict(keep_vars=True).values()})  # tied ones once
    assert shallower.counts() == {"copied": unique_tensors, "remapped": 0, "initialised": 0, "skipped": per_layer}
    assert {entry.reason for entry in shallower.by_status("skipped")} == {"not in target"}


def test_include_only_the_encoder(seq2seq_factory):
    source, target = seq2seq_factory("bart", seed=0), seq2seq_factory("bart", seed=1)
    patterns = encoder_patterns(target)
    assert patterns == ["backbone.model.encoder.*"]
    report = transfer_parameters(source, target, include=patterns)
    for entry in report.entries:
        in_encoder = any(name.startswith("backbone.model.encoder.") for name in (entry.name, *entry.aliases))
        assert entry.status == ("copied" if in_encoder else "initialised"), entry.name
        if not in_encoder:
            assert entry.reason == "excluded by pattern"
    # The shared embeddings are the encoder's too (through their alias) and are copied.
    assert report["backbone.model.shared.weight"].status == "copied"


def test_include_and_exclude_on_a_gan(gan_factory):
    source, target = gan_factory(seed=0, num_classes=3), gan_factory(seed=1, num_classes=3)
    patterns = generator_patterns(target, num_blocks=1)
    assert patterns == ["generator.class_embedding.*", "generator.mapping.*", "generator.blocks.0.*"]
    report = transfer_parameters(source, target, include=patterns, exclude=["*.bias"])
    copied = {entry.name for entry in report.by_status("copied")}
    assert copied == {
        "generator.class_embedding.weight",
        "generator.mapping.weight",
        "generator.blocks.0.convs.0.weight",
    }
    assert {entry.reason for entry in report.by_status("initialised")} == {"excluded by pattern"}
    with pytest.raises(ValueError, match="'generator.blocks.9.\\*' match no tensor"):
        transfer_parameters(source, target, include=["generator.blocks.9.*"])


def test_report_table_and_json(tmp_path, gan_factory):
    source = gan_factory(num_classes=3)
    report = transfer_parameters(source, gan_factory(seed=1, num_classes=5))
    report.entries.append(TransferEntry(name="extra.weight", status="skipped", reason="not in target"))
    table = report.format_table().splitlines()
    assert len(table) == 1 + len(report.entries) + 1  # header, one line per tensor, summary
    assert table[-1].startswith("copied 24, remapped 0, initialised 4, skipped 1 | ")
    assert "of target parameters transferred" in table[-1]
    assert any("shape (3, 32) in source vs (5, 32) in target" in line for line in table)

    report.save_json(tmp_path / "transfer_report.json")
    saved = json.loads((tmp_path / "transfer_report.json").read_text())
    assert saved["counts"] == report.counts()
    assert saved["entries"][0]["target_shape"] == list(report.entries[0].target_shape)
    assert saved == TransferReport(report.entries).to_dict()
