"""The knowledge graph beside the index (`graph.sqlite`): entities, their aliases, the relations
between them and the chunks that mention them. Ingest writes it (ingest/graph.py, `rag ingest
--graph`); the query path reads it (retrieval/graph.py) and `rag graph` shows it.

Every fact belongs to the chunk it was read from, so the graph follows the index incrementally:
a changed file's chunks have their facts replaced, a deleted file's chunks lose theirs, and an
entity no chunk mentions any more is removed. A chunk's facts and its `done` row change in one
transaction, so an interrupted ingest leaves each chunk either extracted or not.

Names are matched by a normalised key (`norm_key`: NFKC, case-folded, spaces and dashes
collapsed); an alias key points to the entity it was given for. A question is matched by
substring for aliases holding CJK text (Chinese has no spaces; aliases are short) and by
word n-grams otherwise ("AI" does not match inside "said")."""

from __future__ import annotations

import difflib
import re
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from core.lang import CJK_RANGES
from core.sqlite_file import SQLiteFile

GRAPH_FILE = "graph.sqlite"
SCHEMA_VERSION = 1
MAX_NGRAM = 6  # words in the longest English alias a question is searched for

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entities (id INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL,
    name TEXT NOT NULL, type TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS aliases (key TEXT NOT NULL, text TEXT NOT NULL, entity INTEGER NOT NULL,
    chunk TEXT NOT NULL, PRIMARY KEY (key, entity, chunk));
CREATE INDEX IF NOT EXISTS aliases_chunk ON aliases(chunk);
CREATE TABLE IF NOT EXISTS mentions (entity INTEGER NOT NULL, chunk TEXT NOT NULL,
    PRIMARY KEY (entity, chunk));
CREATE INDEX IF NOT EXISTS mentions_chunk ON mentions(chunk);
CREATE TABLE IF NOT EXISTS relations (src INTEGER NOT NULL, rel TEXT NOT NULL, dst INTEGER NOT NULL,
    chunk TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS relations_src ON relations(src);
CREATE INDEX IF NOT EXISTS relations_dst ON relations(dst);
CREATE INDEX IF NOT EXISTS relations_chunk ON relations(chunk);
CREATE TABLE IF NOT EXISTS done (chunk TEXT PRIMARY KEY, method TEXT NOT NULL);
"""

_CJK = re.compile(f"[{CJK_RANGES}]")
_SEP = re.compile(r"[\s\-_‐–—·・/]+")
_PUNCT = r"\s\"'“”‘’《》「」『』()（）\[\]【】<>.,;:!?，。；：！？、"
_EDGE = re.compile(f"^[{_PUNCT}]+|[{_PUNCT}]+$")
# a CJK run, or a word of letters and digits (not CJK) with the joints of "node.js", "c++", "c#"
_WORD = re.compile(rf"[{CJK_RANGES}]+|[^\W_{CJK_RANGES}]+(?:[.+#][^\W_{CJK_RANGES}]+)*[+#]*")


def norm_key(text: str) -> str:
    """The key a name is matched by: NFKC, case-folded, dashes and spaces one space (none
    next to CJK), punctuation at the ends dropped ("GPT-4" = "gpt 4", "《青石镇志》" = "青石镇志")."""
    s = unicodedata.normalize("NFKC", text).casefold()
    s = _EDGE.sub("", _SEP.sub(" ", s).strip())
    return re.sub(rf"(?<=[{CJK_RANGES}]) | (?=[{CJK_RANGES}])", "", s)


def _words(key: str) -> list[str]:
    return _WORD.findall(key)


def _match_key(key: str) -> str:
    """How a question finds an alias key: CJK keys as they are (substring), others as their
    words ("o'brien" is found in "who is o'brien" as "o brien")."""
    return key if _CJK.search(key) else " ".join(_words(key))


@dataclass
class EntityFact:
    """An entity as one chunk states it."""

    name: str
    type: str = ""
    aliases: list[str] = field(default_factory=list)


@dataclass
class RelationFact:
    source: str
    relation: str
    target: str


@dataclass
class ChunkFacts:
    """What extraction read from one chunk (nothing, for a chunk it could not read)."""

    entities: list[EntityFact] = field(default_factory=list)
    relations: list[RelationFact] = field(default_factory=list)


@dataclass(frozen=True)
class Entity:
    id: int
    name: str
    type: str
    key: str


@dataclass(frozen=True)
class Relation:
    source: Entity
    relation: str
    target: Entity
    chunk: str


class GraphStore(SQLiteFile):
    """Typed access to `graph.sqlite`; one connection per instance (shared by its threads)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA, SCHEMA_VERSION)
        self._lock = threading.Lock()
        self._aliases: tuple[int, dict[str, set[int]]] | None = None  # (generation, key -> entities)

    @property
    def generation(self) -> int:
        """Bumped by every write: a reader's cached alias table is stale when it differs."""
        return int(self.get_meta("generation") or 0)

    # --- writing ----------------------------------------------------------------------
    def done(self) -> dict[str, str]:
        """chunk id -> the extraction method (and version) its facts came from."""
        return {c: m for c, m in self.conn.execute("SELECT chunk, method FROM done")}

    def replace(self, facts: dict[str, ChunkFacts], method: str) -> None:
        """Swap the facts of these chunks for the given ones, in one transaction."""
        with self._lock, self.conn:
            self._delete(list(facts))
            for chunk, f in facts.items():
                self._insert(chunk, f)
            self.conn.executemany("INSERT OR REPLACE INTO done(chunk, method) VALUES (?, ?)",
                                  [(c, method) for c in facts])
            self._prune()
            self._bump()

    def remove(self, chunks: Iterable[str]) -> int:
        """Forget the facts of chunks no longer indexed; how many chunks had some."""
        ids = list(chunks)
        if not ids:
            return 0
        with self._lock, self.conn:
            self._delete(ids)
            self._prune()
            self._bump()
        return len(ids)

    def _bump(self) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('generation', ?)",
                          (str(self.generation + 1),))

    def _delete(self, chunks: list[str]) -> None:
        rows = [(c,) for c in chunks]
        for table in ("aliases", "mentions", "relations", "done"):
            self.conn.executemany(f"DELETE FROM {table} WHERE chunk=?", rows)

    def _prune(self) -> None:
        self.conn.execute("DELETE FROM entities WHERE id NOT IN (SELECT entity FROM mentions)")

    def _resolve(self, name: str, etype: str = "") -> int | None:
        """The entity a name stands for: by its own key, else by an alias key, else a new one."""
        key = norm_key(name)
        if not key:
            return None
        row = self.conn.execute("SELECT id FROM entities WHERE key=?", (key,)).fetchone()
        if row is None:
            row = self.conn.execute("SELECT entity FROM aliases WHERE key=? ORDER BY entity LIMIT 1",
                                    (key,)).fetchone()
        if row is not None:
            if etype:
                self.conn.execute("UPDATE entities SET type=? WHERE id=? AND type=''", (etype, row[0]))
            return int(row[0])
        cur = self.conn.execute("INSERT INTO entities(key, name, type) VALUES (?, ?, ?)",
                                (key, name.strip(), etype))
        return int(cur.lastrowid or 0)

    def _mention(self, eid: int, key: str, text: str, chunk: str) -> None:
        self.conn.execute("INSERT OR IGNORE INTO aliases(key, text, entity, chunk) VALUES (?, ?, ?, ?)",
                          (key, text.strip(), eid, chunk))
        self.conn.execute("INSERT OR IGNORE INTO mentions(entity, chunk) VALUES (?, ?)", (eid, chunk))

    def _insert(self, chunk: str, f: ChunkFacts) -> None:
        by_key: dict[str, int] = {}
        for e in f.entities:
            eid = self._resolve(e.name, e.type)
            if eid is None:
                continue
            for text in [e.name, *e.aliases]:
                k = norm_key(text)
                if k:
                    by_key[k] = eid
                    self._mention(eid, k, text, chunk)
        for r in f.relations:
            ends = []
            for name in (r.source, r.target):
                eid = by_key.get(norm_key(name)) or self._resolve(name)
                if eid is not None:
                    self._mention(eid, norm_key(name), name, chunk)
                ends.append(eid)
            if None not in ends and ends[0] != ends[1]:
                self.conn.execute("INSERT INTO relations(src, rel, dst, chunk) VALUES (?, ?, ?, ?)",
                                  (ends[0], r.relation.strip()[:120], ends[1], chunk))

    # --- reading ----------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        one = self.conn.execute
        return {"entities": int(one("SELECT COUNT(*) FROM entities").fetchone()[0]),
                "relations": int(one("SELECT COUNT(*) FROM relations").fetchone()[0]),
                "mentions": int(one("SELECT COUNT(*) FROM mentions").fetchone()[0]),
                "chunks": int(one("SELECT COUNT(*) FROM done").fetchone()[0])}

    def entities(self, ids: Iterable[int]) -> dict[int, Entity]:
        ids = list(ids)
        out: dict[int, Entity] = {}
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            q = f"SELECT id, name, type, key FROM entities WHERE id IN ({','.join('?' * len(part))})"
            out.update({r[0]: Entity(*r) for r in self.conn.execute(q, part)})
        return out

    def find(self, name: str) -> Entity | None:
        """The entity `name` (or one of its aliases) names; the most mentioned when several."""
        ids = self._alias_table().get(_match_key(norm_key(name)), set())
        if not ids:
            return None
        df = self.mention_counts(ids)
        best = max(ids, key=lambda i: (df.get(i, 0), -i))
        return self.entities([best]).get(best)

    def close_names(self, name: str, n: int = 5) -> list[str]:
        """Known names and aliases like `name`, for "no such entity" messages."""
        key = norm_key(name)
        texts = {k: t for k, t in self.conn.execute("SELECT key, text FROM aliases")}
        near = difflib.get_close_matches(key, list(texts), n=n, cutoff=0.5)
        near += [k for k in texts if key and key in k and k not in near]
        return [texts[k] for k in near[:n]]

    def aliases_of(self, eid: int) -> list[str]:
        rows = self.conn.execute("SELECT DISTINCT text FROM aliases WHERE entity=? ORDER BY text", (eid,))
        return [r[0] for r in rows]

    def relations_of(self, eid: int, limit: int = 200) -> list[Relation]:
        rows = self.conn.execute("SELECT src, rel, dst, chunk FROM relations WHERE src=? OR dst=? LIMIT ?",
                                 (eid, eid, limit)).fetchall()
        ents = self.entities({r[0] for r in rows} | {r[2] for r in rows})
        return [Relation(ents[s], rel, ents[d], c) for s, rel, d, c in rows if s in ents and d in ents]

    def chunks_mentioning(self, eid: int) -> list[str]:
        rows = self.conn.execute("SELECT chunk FROM mentions WHERE entity=? ORDER BY chunk", (eid,))
        return [r[0] for r in rows]

    def mention_counts(self, ids: Iterable[int]) -> dict[int, int]:
        """Chunks mentioning each entity: its document frequency."""
        ids = list(ids)
        out: dict[int, int] = {}
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            marks = ",".join("?" * len(part))
            q = f"SELECT entity, COUNT(*) FROM mentions WHERE entity IN ({marks}) GROUP BY entity"
            out.update({int(e): int(n) for e, n in self.conn.execute(q, part)})
        return out

    def _alias_table(self) -> dict[str, set[int]]:
        """alias key -> entity ids, read once per graph generation (every query matches against it)."""
        gen = self.generation
        with self._lock:
            if self._aliases is None or self._aliases[0] != gen:
                table: dict[str, set[int]] = {}
                for k, e in self.conn.execute("SELECT DISTINCT key, entity FROM aliases"):
                    table.setdefault(_match_key(k), set()).add(int(e))
                self._aliases = (gen, table)
            return self._aliases[1]

    def match(self, text: str) -> dict[int, str]:
        """Entities named in `text`: entity id -> the alias that matched. CJK aliases match as
        substrings, others as whole word n-grams; an alias inside a longer matched one ("北京"
        in "北京大学") does not count on its own."""
        table = self._alias_table()
        if not table:
            return {}
        q = norm_key(text)
        words = _words(q)
        grams = {" ".join(words[i:i + n]) for n in range(1, MAX_NGRAM + 1) for i in range(len(words) - n + 1)}
        found = [k for k in grams if k in table and not _CJK.search(k)]
        found += [k for k in table if _CJK.search(k) and len(k) >= 2 and k in q]
        found.sort(key=len, reverse=True)
        keep: list[str] = []
        for k in found:
            if not any(k in longer for longer in keep):
                keep.append(k)
        out: dict[int, str] = {}
        for k in keep:
            for eid in table[k]:
                out.setdefault(eid, k)
        return out

    def chunk_count(self) -> int:
        """Chunks the graph has read (with or without facts)."""
        return int(self.conn.execute("SELECT COUNT(*) FROM done").fetchone()[0])

    def neighbourhood(self, seeds: Iterable[int], hops: int, max_mentions: int | None = None,
                      limit: int = 500) -> dict[int, int]:
        """entity id -> distance (0 for the seeds) up to `hops` relations away, either direction.
        An entity mentioned in more than `max_mentions` chunks (a hub: "model", 问题) is left out:
        through it everything would be two hops from everything."""
        dist = {e: 0 for e in seeds}
        frontier = list(dist)
        for d in range(1, hops + 1):
            if not frontier or len(dist) >= limit:
                break
            found: list[int] = []
            for i in range(0, len(frontier), 400):
                part = frontier[i:i + 400]
                marks = ",".join("?" * len(part))
                q = f"SELECT src, dst FROM relations WHERE src IN ({marks}) OR dst IN ({marks})"
                for s, t in self.conn.execute(q, part + part):
                    found += [e for e in (int(s), int(t)) if e not in dist]
            found = list(dict.fromkeys(found))
            if max_mentions is not None:
                df = self.mention_counts(found)
                found = [e for e in found if df.get(e, 0) <= max_mentions]
            found = found[: max(0, limit - len(dist))]
            dist.update((e, d) for e in found)
            frontier = found
        return dist

    def chunks_of(self, dist: dict[int, int]) -> dict[str, tuple[int, int]]:
        """chunk id -> (the nearest distance of an entity it mentions, how many of the
        neighbourhood's entities it mentions)."""
        ids = list(dist)
        out: dict[str, tuple[int, int]] = {}
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            q = f"SELECT entity, chunk FROM mentions WHERE entity IN ({','.join('?' * len(part))})"
            for e, c in self.conn.execute(q, part):
                d, n = out.get(c, (10**6, 0))
                out[c] = (min(d, dist[int(e)]), n + 1)
        return out
