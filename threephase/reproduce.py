"""Reproductions of the paper's tables (filled in by the book's issue)."""

from __future__ import annotations

import argparse


def add_reproduce_parser(commands) -> None:
    commands.add_parser("reproduce", help="reproduce the paper's Table 3 or 4 with papermill")


def reproduce_command(args: argparse.Namespace) -> int:
    raise NotImplementedError
