"""The `genxfer` command: train, sample, generate, eval, bench and demo.

Bad input ends with one sentence naming the problem and the fix, and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from huggingface_hub.errors import StrictDataclassError

from .errors import GenxferError

# GenxferError carries the project's own sentences; ValueError and OSError are what transformers, datasets and the
# standard library raise for bad values and missing files.
# StrictDataclassError: a config field of the wrong type (`@strict` configs), e.g. in a hand-edited config.json.
USER_ERRORS = (GenxferError, ValueError, OSError, StrictDataclassError)


def _require_folder(folder: str) -> None:
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"No model folder at {folder!r}: pass the output_dir of a `genxfer train` run.")


def _require_model_folder(folder: str, command: str | None = None):
    """
    The folder exists and holds safetensors weights (never only a pickle); with `command`, the folder is one that
    command reads (`sample`: a GAN's; `generate`: a Seq2Seq run's or any encoder-decoder's). Returns its family, or
    None for a plain transformers model.
    """
    from .errors import ModelFolderError
    from .families import family_of_folder, get_family
    from .source import check_model_folder

    _require_folder(folder)
    model_type = check_model_folder(folder, what="The folder")
    family = family_of_folder(model_type)
    if command is not None:
        reads_it = family.folder_command == command if family is not None else command == "generate"
        if not reads_it:
            what = f"a {family.name} run folder" if family is not None else f"a {model_type} model"
            other = family.folder_command if family is not None else get_family("seq2seq").folder_command
            raise ModelFolderError(
                f"{folder!r} is {what}, which `genxfer {command}` does not read: use `genxfer {other}`."
            )
    return family


def command_train(args) -> int:
    from .recipes import load_recipe, recipe_to_dict

    recipe = load_recipe(args.recipe, args.set)
    if args.dry_run:
        import yaml

        from .training.loop import describe_model

        print(yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False).rstrip())
        print(describe_model(recipe))
        return 0
    from accelerate import PartialState

    from .training.loop import train

    metrics = train(recipe)
    if PartialState().is_main_process:
        print(json.dumps(metrics, indent=2))
    return 0


def command_sample(args) -> int:
    import torch

    from .models.gan import GANModel, GANPipeline
    from .source import load_pretrained
    from .utils import image_grid

    if args.num < 1:
        raise ValueError(f"--num must be at least 1 (the number of images to draw), got {args.num}.")
    _require_model_folder(args.folder, "sample")
    if os.path.isfile(os.path.join(args.folder, "model_index.json")):
        pipe = load_pretrained(GANPipeline.from_pretrained, args.folder, what="The folder", use_safetensors=True)
    else:  # a GANModel folder without the pipeline files (e.g. save_pretrained): the same generator
        model = load_pretrained(GANModel.from_pretrained, args.folder, what="The folder", use_safetensors=True)
        pipe = GANPipeline(generator_model=model.generator)
    tasks = pipe.generator_model.config.task_names
    if tasks and args.task is None:
        raise ValueError(f"{args.folder!r} is a multi-task GAN: pass --task, one of {', '.join(tasks)}.")
    output = pipe(
        batch_size=args.num,
        class_labels=args.class_label,
        task=args.task,
        generator=torch.Generator().manual_seed(args.seed),
        output_type="pt",
    )
    image_grid(output.images * 2 - 1).save(args.out)
    print(f"Wrote {args.num} samples to {args.out}")
    return 0


def command_generate(args) -> int:
    from .training.seq2seq import generate_texts

    if args.num_beams < 1:
        raise ValueError(f"--num-beams must be at least 1, got {args.num_beams}.")
    _require_model_folder(args.folder, "generate")
    texts = generate_texts(args.folder, args.inputs, num_beams=args.num_beams, task=args.task)
    for source, text in zip(args.inputs, texts):
        print(f"{source}\t{text}")
    return 0


def command_eval(args) -> int:
    if args.num_samples is not None and args.num_samples < 1:
        raise ValueError(f"--num-samples must be at least 1, got {args.num_samples}.")
    family = _require_model_folder(args.folder)
    if family is None or not os.path.isfile(os.path.join(args.folder, "genxfer_recipe.yaml")):
        raise FileNotFoundError(
            f"{args.folder!r} holds no genxfer_recipe.yaml: `genxfer eval` scores a folder written by `genxfer train` "
            "on the held-out data of the recipe it was trained with."
        )
    options = {} if args.num_samples is None else {"num_samples": args.num_samples}
    metrics = family.resolve("evaluate_folder")(args.folder, **options)
    print(json.dumps(metrics, indent=2))
    return 0


def command_push(args) -> int:
    from .hub import push_run

    _require_folder(args.folder)
    info = push_run(args.folder, args.repo_id, private=args.private)
    print(f"Pushed {args.folder} to {args.repo_id}: {info.commit_url}")
    return 0


def command_recipes(args) -> int:
    from .shipped_recipes import describe, shipped_recipe, shipped_recipes

    if args.name is None:
        recipes = shipped_recipes()
        width = max(len(name) for name in recipes)
        for name, path in recipes.items():
            print(f"{name:<{width}}  {describe(path)}")
        print("Copy one with: genxfer recipes NAME --out my_recipe.yaml")
        return 0
    text = shipped_recipe(args.name).read_text(encoding="utf-8")
    if args.out is None:
        print(text, end="")
        return 0
    if os.path.exists(args.out):
        raise FileExistsError(f"{args.out!r} already exists: pass another --out, or delete it first.")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as handle:
        handle.write(text)
    print(f"Wrote {args.out}; run it with: genxfer train {args.out}")
    return 0


def command_demo(args) -> int:
    from .demo import run_demo

    run_demo(args.out, quick=args.quick)
    return 0


def command_bench(args) -> int:
    import importlib

    protocol = importlib.import_module(f".bench.{args.protocol}", __package__)
    args.out = args.out or f"bench_out/{args.protocol}.json"
    config = protocol.resolve_config(quick=args.quick, overrides=args.set)  # bad --set keys fail before training
    mode = "quick" if args.quick else "full"
    run = getattr(protocol, f"run_{args.protocol}_bench")
    report = run(config, args.out, mode=mode, resume=args.resume)
    protocol.print_summary(report)
    print(f"Wrote {args.out} and {', '.join(report['plots'])}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genxfer", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="run a YAML recipe")
    train.add_argument("recipe", help="path to a recipe, e.g. recipes/gan_digits_pretrain.yaml")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field")
    train.add_argument("--dry-run", action="store_true", help="print the resolved recipe and model size, then stop")
    train.set_defaults(handler=command_train)

    sample = commands.add_parser("sample", help="sample a grid of images from a GAN folder")
    sample.add_argument("folder")
    sample.add_argument("--num", type=int, default=64)
    sample.add_argument("--out", default="grid.png")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--class-label", type=int, default=None, help="class of every image (conditional GANs)")
    sample.add_argument("--task", default=None, help="the task of a multi-task GAN, e.g. high")
    sample.set_defaults(handler=command_sample)

    generate = commands.add_parser("generate", help="generate text from a Seq2Seq folder")
    generate.add_argument("folder")
    generate.add_argument("inputs", nargs="+", help="source texts, e.g. 4021")
    generate.add_argument("--num-beams", type=int, default=1)
    generate.add_argument("--task", default=None, help="the task of a multi-task model, e.g. fr")
    generate.set_defaults(handler=command_generate)

    evaluate = commands.add_parser("eval", help="score a saved run on its held-out data")
    evaluate.add_argument("folder")
    evaluate.add_argument("--num-samples", type=int, default=None, help="GAN: generated images to score")
    evaluate.set_defaults(handler=command_eval)

    bench = commands.add_parser("bench", help="run a benchmark protocol (results as JSON + PNG plots)")
    bench.add_argument(
        "protocol",
        choices=["transfer", "multitask", "speed"],
        help="transfer: transfer strategies against scratch; multitask: one multi-task model against one per task; "
        "speed: our loop, generation and pipeline against a plain loop, Seq2SeqTrainer and the bare backbone",
    )
    bench.add_argument("--quick", action="store_true", help="shorter schedules (under 15 minutes on 2 cores)")
    bench.add_argument(
        "--resume",
        action="store_true",
        help="reuse the jobs an interrupted run with the same --out and fields already finished",
    )
    bench.add_argument(
        "--out", default=None, help="the JSON file (default bench_out/PROTOCOL.json); PNGs are written beside it"
    )
    bench.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a bench field, e.g. seq2seq.target_language=de",
    )
    bench.set_defaults(handler=command_bench)

    push = commands.add_parser("push", help="upload a run folder (weights, config, tokenizer, card, plots) to the Hub")
    push.add_argument("folder")
    push.add_argument("repo_id", help="e.g. your-name/digits-gan")
    push.add_argument("--private", action="store_true")
    push.set_defaults(handler=command_push)

    recipes = commands.add_parser("recipes", help="list the shipped recipes, or print or copy one")
    recipes.add_argument("name", nargs="?", default=None, help="a recipe name, e.g. gan_digits_pretrain")
    recipes.add_argument("--out", default=None, help="write the recipe to this file instead of printing it")
    recipes.set_defaults(handler=command_recipes)

    demo = commands.add_parser("demo", help="pretrain a digits GAN and an English number-to-words model")
    demo.add_argument("--out", default="demo_out")
    demo.add_argument("--quick", action="store_true", help="a much shorter run, for smoke tests")
    demo.set_defaults(handler=command_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except BrokenPipeError:  # `genxfer recipes | head`: the reader went away, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except USER_ERRORS as error:
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"genxfer {args.command}: error: {message}", file=sys.stderr)
        return getattr(error, "exit_status", 2)


if __name__ == "__main__":
    sys.exit(main())
