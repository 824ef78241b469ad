"""`rag tree [--level N]`: the RAPTOR tree, top-down (each node's first line and child
count), or the nodes of one level."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from app.output import print_json

if TYPE_CHECKING:  # loaded in the command: every `rag` start imports this module (app/cmd_index.py)
    from core.index import Index
    from core.types import Record
    from retrieval.tree import Tree


def _first_line(text: str, width: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _extractive(r: Record) -> bool:
    """Made of the children's sentences: by choice (ingest.raptor_summaries) or after an unusable reply."""
    return bool(r.extra.get("fallback")) or r.extra.get("method") == "extractive"


def _line(r: Record, width: int, indent: int = 0) -> str:
    mark = " (extractive)" if _extractive(r) else ""
    counts = f"[{len(r.children)} children, {r.extra.get('leaves', '?')} leaves]"
    head = f"{'  ' * indent}L{r.level} {r.id[:8]} {counts}{mark} "
    return head + _first_line(r.text, max(20, width - len(head)))


def _node_dict(r: Record) -> dict[str, Any]:
    return {"id": r.id, "level": r.level, "children": r.children, "leaves": r.extra.get("leaves"),
            "extractive": _extractive(r), "method": r.extra.get("method", "llm"), "text": r.text}


def _print_level(index: Index, tree: Tree, level: int, width: int, json_out: bool) -> None:
    from app.output import out

    recs = list(index.docs.iter_records(("chunk",))) if level == 0 else tree.level(level)
    if not recs:
        out.print(f"The tree has no level {level}; levels are 0..{tree.depth}.")
        raise typer.Exit(1)
    if json_out:
        print_json([_node_dict(r) for r in recs])
        return
    out.print(f"level {level}: {len(recs)} nodes", markup=False, highlight=False)
    for r in recs:
        out.print(_line(r, width), markup=False, highlight=False)


def tree_cmd(
    level: int = typer.Option(None, "--level", "-l", help="Only the nodes of this level (0 = leaf chunks)."),
    depth: int = typer.Option(None, "--depth", help="Levels to print below the top (default: all)."),
    width: int = typer.Option(120, "--width", help="Characters per line."),
    json_out: bool = typer.Option(False, "--json", help="Print nodes as JSON."),
) -> None:
    """Print the RAPTOR summary tree built by `rag ingest --raptor`."""
    from app.output import out
    from core.index import Index
    from core.settings import load_settings
    from retrieval.tree import load_tree

    settings = load_settings()
    index = Index(settings)
    tree = load_tree(index) if index.exists() else None
    if not tree or not tree.nodes:
        out.print(f"No RAPTOR tree in the index at {index.path}; build one with `rag ingest --raptor PATH`.")
        raise typer.Exit(1)
    if level is not None:
        _print_level(index, tree, level, width, json_out)
        return
    roots = sorted(tree.roots(), key=lambda r: (-r.level, r.id))
    if json_out:
        print_json({"depth": tree.depth, "roots": [r.id for r in roots],
                    "nodes": [_node_dict(r) for r in sorted(tree.nodes.values(), key=lambda r: -r.level)]})
        return
    floor = 1 if depth is None else max(1, tree.depth - depth)
    per = {lv: len(tree.level(lv)) for lv in range(tree.depth, 0, -1)}
    out.print(f"RAPTOR tree: depth {tree.depth}, nodes per level "
              + ", ".join(f"L{k}={v}" for k, v in per.items()), markup=False, highlight=False)

    def walk(r: Record, indent: int) -> None:
        out.print(_line(r, width, indent), markup=False, highlight=False)
        if r.level <= floor:
            return
        for c in r.children:
            if c in tree.nodes:
                walk(tree.nodes[c], indent + 1)

    for r in roots:
        walk(r, 0)


def register(app: typer.Typer) -> None:
    app.command("tree")(tree_cmd)
