"""`genxfer train` in a process that kills itself with SIGKILL at a chosen point, for the kill-and-resume tests.

    python tests/kill_driver.py RECIPE.yaml [--kill-at POINT] [--set key=value ...]

POINT is one of
    step:N              at the start of micro-batch N (0-based), in the middle of the run
    state-write:N       while checkpoint N is written: accelerate's files and half of the run's own state are on disk
    before-rename:N     checkpoint N is complete (manifest included) but not yet renamed into place
    final-eval          at the start of the final evaluation (after the last checkpoint)
Nothing in the library is changed for this: the driver wraps library functions before it calls the CLI.
"""

import os
import signal
import sys


def _die():
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def install(point: str) -> None:
    from hf_genxfer.training import checkpointing, gan, seq2seq

    kind, _, number = point.partition(":")
    if kind == "step":
        for run_class in (gan.GANRun, seq2seq.Seq2SeqRun):
            original = run_class.training_step

            def training_step(self, batch_number, original=original):
                if batch_number == int(number):
                    _die()
                return original(self, batch_number)

            run_class.training_step = training_step
    elif kind == "state-write":
        original_write = checkpointing.write_states

        def write_states(folder, stem, objects):
            if os.path.basename(folder) == f".tmp-checkpoint-{number}" and stem == checkpointing.SHARED_STATE:
                from safetensors.torch import save_file

                save_file({"half": __import__("torch").zeros(3)}, os.path.join(folder, f"{stem}.safetensors"))
                _die()
            return original_write(folder, stem, objects)

        checkpointing.write_states = write_states
    elif kind == "before-rename":
        original_replace = os.replace

        def replace(source, destination, *args, **kwargs):
            if os.path.basename(str(source)) == f".tmp-checkpoint-{number}":
                _die()
            return original_replace(source, destination, *args, **kwargs)

        checkpointing.os.replace = replace
    elif kind == "final-eval":
        for run_class in (gan.GANRun, seq2seq.Seq2SeqRun):
            run_class.evaluate = lambda self: _die()
    else:
        raise SystemExit(f"unknown kill point {point!r}")


def main(argv: list[str]) -> int:
    import torch

    torch.set_num_threads(1)
    args = list(argv)
    if "--kill-at" in args:
        at = args.index("--kill-at")
        install(args[at + 1])
        del args[at : at + 2]
    from hf_genxfer.cli import main as cli_main

    return cli_main(["train", *args])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
