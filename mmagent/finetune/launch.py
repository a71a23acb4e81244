"""`accelerate launch` entry point: the same recipe, on several processes, GPUs or machines.

    accelerate launch --config_file ddp_cpu.yaml -m mmagent.finetune.launch RECIPE [--set ...] [--resume] [--json]

runs `mmagent finetune run RECIPE ...` in every process that accelerate starts. transformers' Trainer
reads the distributed environment accelerate sets up (DDP, FSDP, DeepSpeed); rank 0 alone writes the
adapter, manifest and metrics and scores the held-out set. Example configs ship next to this file in
``mmagent/finetune/accelerate/``: `mmagent finetune list` shows them, `mmagent finetune cp ddp_cpu` copies one.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from mmagent.cli import main as cli_main

    return cli_main(["finetune", "run", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
