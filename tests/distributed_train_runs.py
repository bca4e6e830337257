"""Entry point for torchrun in test_training_distributed: runs `llada-uni train` command lines one after another in
the same processes (one launch, several runs); the command lines are separated by `--next--`."""

import sys

from llada_uni_cli.main import main


if __name__ == "__main__":
    argv = sys.argv[1:]
    runs, current = [], []
    for item in argv:
        if item == "--next--":
            runs.append(current)
            current = []
        else:
            current.append(item)
    runs.append(current)
    for run in runs:
        status = main(["train", *run])
        if status:
            sys.exit(status)
