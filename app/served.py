"""`rag search` and `rag ask` answered by a running `rag serve`, before the Typer app is built.

Typer converts every command-line value through a pydantic TypeAdapter, and importing pydantic
for that costs about 0.15 s: half of the 0.3 s a served `rag search` may take. So when a live
server for this index and these settings exists, the two commands' arguments are read here with
argparse (the same options, checked against the Typer commands by tests/app/test_serve.py) and
the command functions are called directly. Anything this parser does not accept exactly (help,
an unknown or malformed option, another command) returns None and the Typer app runs as always,
which reaches the server too: this is only the faster road to it."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

# option strings -> (dest, how): "int", "str", "flag" (store_true) or (True/False) for a --x/--no-x pair
SEARCH_OPTIONS: dict[tuple[str, ...], tuple[str, Any]] = {
    ("-k",): ("k", "int"),
    ("--mode",): ("mode", "str"),
    ("--json",): ("json_out", "flag"),
    ("--coarse",): ("coarse", True), ("--no-coarse",): ("coarse", False),
    ("--ltr",): ("ltr", True), ("--no-ltr",): ("ltr", False),
    ("--no-serve",): ("no_serve", "flag"),
}
ASK_OPTIONS: dict[tuple[str, ...], tuple[str, Any]] = {
    ("--json",): ("json_out", "flag"),
    ("--trace",): ("trace", "flag"),
    ("--strategy",): ("strategy", "str"),
    ("-k",): ("k", "int"),
    ("--no-serve",): ("no_serve", "flag"),
}
ROOT_FLAGS = ("-v", "--verbose")


class _Declined(Exception):
    """The arguments are not ones this parser reads exactly like Typer: let Typer read them."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would print usage and exit
        raise _Declined(message)


def _parser(positional: str, options: dict[tuple[str, ...], tuple[str, Any]]) -> _Parser:
    p = _Parser(add_help=False, allow_abbrev=False)  # click takes no abbreviations either
    p.add_argument(positional)
    for flags, (dest, how) in options.items():
        if how == "int":
            p.add_argument(*flags, dest=dest, type=int)
        elif how == "str":
            p.add_argument(*flags, dest=dest)
        elif how == "flag":
            p.add_argument(*flags, dest=dest, action="store_true")
        else:
            p.add_argument(*flags, dest=dest, action="store_const", const=how)
    return p


def _defaults(options: dict[tuple[str, ...], tuple[str, Any]]) -> dict[str, Any]:
    return {dest: (False if how == "flag" else None) for dest, how in options.values()}


def answer_served(argv: list[str], configure_logging: Callable[[bool], None]) -> int | None:
    """Run `rag [-v] search|ask ...` when a server answers it; None: run the Typer app instead."""
    verbose = False
    i = 0
    while i < len(argv) and argv[i] in ROOT_FLAGS:
        verbose, i = True, i + 1
    if i >= len(argv) or argv[i] not in ("search", "ask"):
        return None
    command, rest = argv[i], argv[i + 1:]
    if any(a in ("--help", "--no-serve") for a in rest):
        return None
    from app.serve_client import find_server

    configure_logging(verbose)  # before find_server: `-v` shows why a serve.json was not used
    if find_server() is None:
        return None
    positional, options = ("query", SEARCH_OPTIONS) if command == "search" else ("question", ASK_OPTIONS)
    try:
        ns = _parser(positional, options).parse_args(rest, argparse.Namespace(**_defaults(options)))
    except _Declined:
        return None
    if command == "search":
        from app.cmd_index import search_cmd

        k = 5 if ns.k is None else ns.k
        search_cmd(query=ns.query, k=k, mode=ns.mode, json_out=ns.json_out, coarse=ns.coarse, ltr=ns.ltr,
                   no_serve=False)
    else:
        from app.cmd_ask import ask_cmd

        ask_cmd(question=ns.question, json_out=ns.json_out, trace=ns.trace, strategy=ns.strategy, k=ns.k,
                no_serve=False)
    return 0
