"""Evaluate encoders on methane source classification and register the best classifier.

On the labelled sites of the index (train / val / test splits): linear probes on frozen embeddings
(fused and per modality), fine-tuning, label fractions, against random-init, single-modality SSL and
supervised-from-scratch baselines; METER-ML metrics per class with bootstrap intervals. Writes
results.md / results.json / PNGs to <storage.root>/evaluation/<run.name>, logs an MLflow evaluation
run linked to the pre-training run, and registers the best classifier (evaluate.register_model; the
alias 'champion' moves only if it beats the current champion on validation macro AUPRC).
"""

from __future__ import annotations

import argparse
import json
import logging

from jointssl.commands import add_config_arguments, load_args_config

HELP = "Evaluate encoders on methane source classification (METER-ML metrics) and register the best"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from jointssl.evaluate.run import evaluate

    config = load_args_config(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    summary = evaluate(config)
    table = summary.pop("table")
    print(table)
    print(json.dumps(summary, indent=2, default=str))
    return 0
