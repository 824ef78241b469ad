"""`rag graph ENTITY [--hops N] [--json]`: one entity of the knowledge graph `rag ingest --graph`
built (core/graph.py): its aliases, its relations, its neighbours by distance and the chunks
that mention it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from app.output import print_json

if TYPE_CHECKING:  # loaded in the command: every `rag` start imports this module
    from core.graph import Entity, GraphStore
    from core.index import Index

MAX_LIST = 30  # relations, neighbours and chunks printed (all with --json)


def _first_words(text: str, width: int = 80) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def neighbourhood(index: Index, store: GraphStore, entity: Entity, hops: int) -> dict[str, Any]:
    """What `rag graph` shows of `entity`, as one dict (the --json output)."""
    dist = store.neighbourhood([entity.id], hops)
    names = store.entities(dist)
    chunk_ids = store.chunks_mentioning(entity.id)
    recs = index.docs.get(chunk_ids)
    return {
        "entity": {"id": entity.id, "name": entity.name, "type": entity.type},
        "aliases": [a for a in store.aliases_of(entity.id) if a != entity.name],
        "relations": [{"source": r.source.name, "relation": r.relation, "target": r.target.name}
                      for r in store.relations_of(entity.id)],
        "neighbours": [{"name": names[e].name, "type": names[e].type, "distance": d}
                       for e, d in sorted(dist.items(), key=lambda t: (t[1], names[t[0]].name))
                       if e != entity.id and e in names],
        "chunks": [{"id": c, "source": recs[c].source, "text": recs[c].text} for c in chunk_ids if c in recs],
    }


def _print(view: dict[str, Any], hops: int) -> None:
    from app.output import out

    def say(line: str) -> None:
        out.print(line, markup=False, highlight=False)

    e = view["entity"]
    say(f"{e['name']}" + (f" ({e['type']})" if e["type"] else ""))
    if view["aliases"]:
        say("aliases: " + ", ".join(view["aliases"]))
    rels = view["relations"]
    say(f"relations ({len(rels)}):")
    for r in rels[:MAX_LIST]:
        say(f"  {r['source']} --{r['relation']}--> {r['target']}")
    by_hop: dict[int, list[str]] = {}
    for n in view["neighbours"]:
        by_hop.setdefault(n["distance"], []).append(n["name"])
    for d in range(1, hops + 1):
        names = by_hop.get(d, [])
        more = f" (+{len(names) - MAX_LIST} more)" if len(names) > MAX_LIST else ""
        say(f"{d} hop{'s' * (d > 1)} ({len(names)}): " + ", ".join(names[:MAX_LIST]) + more)
    say(f"mentioned in {len(view['chunks'])} chunks:")
    for c in view["chunks"][:MAX_LIST]:
        say(f"  {Path(c['source']).name}: {_first_words(c['text'])}")


def graph_cmd(
    entity: str = typer.Argument(..., help="An entity's name or alias (case and spacing ignored)."),
    hops: int = typer.Option(2, "--hops", min=1, max=5, help="How far to list neighbours."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Show an entity of the knowledge graph built by `rag ingest --graph`: aliases, relations,
    neighbours by distance, the chunks that mention it."""
    from app.output import out
    from core.index import Index
    from core.settings import load_settings

    index = Index(load_settings())
    store = index.graph if index.exists() else None
    if store is None or not store.counts()["entities"]:
        say = f"No knowledge graph in the index at {index.path}; build one with `rag ingest --graph PATH`."
        out.print(say, markup=False, highlight=False)
        raise typer.Exit(1)
    found = store.find(entity)
    if found is None:
        near = store.close_names(entity)
        hint = f" Close names: {', '.join(near)}." if near else ""
        out.print(f"No entity named {entity!r} in the knowledge graph.{hint}", markup=False, highlight=False)
        raise typer.Exit(1)
    view = neighbourhood(index, store, found, hops)
    if json_out:
        print_json(view)
    else:
        _print(view, hops)


def register(app: typer.Typer) -> None:
    app.command("graph")(graph_cmd)
