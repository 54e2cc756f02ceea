"""Tiny recipes (as raw mappings) that train in a second or two: shared by the tests."""


def tiny_gan_recipe(output_dir, **training):
    """A raw recipe mapping for a tiny conditional digits GAN."""
    return {
        "family": "gan",
        "output_dir": str(output_dir),
        "seed": 0,
        "model": {
            "image_size": 8,
            "base_width": 8,
            "max_width": 16,
            "layers_per_block": 1,
            "latent_size": 16,
            "num_classes": 10,
        },
        "data": {"dataset": "digits", "held_out_fraction": 0.2},
        "training": {
            "max_steps": 4,
            "batch_size": 8,
            "checkpoint_every": 2,
            "sample_every": 2,
            "log_every": 1,
            "report_to": "none",
            **training,
        },
        "evaluation": {"num_samples": 64},
    }


def tiny_seq2seq_recipe(output_dir, backbone="bart", **training):
    """A raw recipe mapping for a tiny Seq2Seq model on a few num2words pairs."""
    backbones = {
        "bart": {
            "d_model": 16,
            "encoder_layers": 1,
            "decoder_layers": 1,
            "encoder_attention_heads": 2,
            "decoder_attention_heads": 2,
            "encoder_ffn_dim": 32,
            "decoder_ffn_dim": 32,
        },
        "t5": {
            "model_type": "t5",
            "d_model": 16,
            "d_kv": 8,
            "d_ff": 32,
            "num_layers": 1,
            "num_decoder_layers": 1,
            "num_heads": 2,
        },
    }
    return {
        "family": "seq2seq",
        "output_dir": str(output_dir),
        "seed": 0,
        "model": {"backbone": backbones[backbone]},
        "data": {
            "dataset": "num2words",
            "language": "en",
            "train_size": 64,
            "validation_size": 8,
            "test_size": 8,
            "low": 0,
            "high": 1000,
        },
        "training": {
            "max_steps": 4,
            "batch_size": 8,
            "learning_rate": 0.003,
            "checkpoint_every": 2,
            "log_every": 1,
            "report_to": "none",
            **training,
        },
        "evaluation": {"max_new_tokens": 12, "num_examples": 3},
    }


TINY_VOCAB_SIZE = 99
TINY_BACKBONES = {  # tiny random BART and T5 configs (vocab 99, hidden 16, 2 layers) for the model tests
    "bart": {
        "model_type": "bart",
        "vocab_size": TINY_VOCAB_SIZE,
        "d_model": 16,
        "encoder_layers": 2,
        "decoder_layers": 2,
        "encoder_attention_heads": 4,
        "decoder_attention_heads": 4,
        "encoder_ffn_dim": 32,
        "decoder_ffn_dim": 32,
        "max_position_embeddings": 64,
    },
    "t5": {
        "model_type": "t5",
        "vocab_size": TINY_VOCAB_SIZE,
        "d_model": 16,
        "d_kv": 4,
        "d_ff": 32,
        "num_layers": 2,
        "num_heads": 4,
        "decoder_start_token_id": 0,
    },
}

TINY_GAN_CONFIG = {"image_size": 16, "base_width": 8, "max_width": 16, "layers_per_block": 1, "latent_size": 8}
# One table of tiny models for the checks every model must pass (tests/models/test_common.py): each family's
# variants, as (family, config fields).
MODEL_CASES = {
    "gan": ("gan", {}),
    "gan_conditional": ("gan", {"num_classes": 4}),
    "gan_multitask": ("gan", {"task_names": ["low", "high"], "shared_blocks": 1, "num_classes": 4}),
    "gan_shared_multitask": ("gan", {"task_names": ["low", "high"]}),
    "seq2seq_bart": ("seq2seq", {"backbone": "bart"}),
    "seq2seq_t5": ("seq2seq", {"backbone": "t5"}),
    "seq2seq_shared_encoder": (
        "seq2seq",
        {"backbone": "bart", "task_names": ["en", "fr"], "sharing": "shared_encoder"},
    ),
}
