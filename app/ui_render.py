"""Streamlit pieces of an answer: its numbered citations (each opening the cited passage in
its document, with thumbs up / down), the "How this answer was found" panel, and the
whole-document page a citation links to (`?passage=<chunk id>`)."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
import streamlit as st

from app import ui_data
from app.answer_notes import check_note
from core.feedback import Feedback, record_feedback
from core.index import Index
from core.types import location
from retrieval.answer import AnswerResult
from retrieval.generate import Citation

# Documents are data: answers quote them, titles come from them, so nothing in them may make the
# page fetch a URL (an image, a remote link or raw HTML is a tracking pixel or worse).
_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\s*(?:\([^)]*\)|\[[^\]]*\])")
_MD_LINK = re.compile(r"\[([^\]]*)\]\s*\(\s*<?(?:[a-z][a-z0-9+.-]*:|//)[^)]*\)", re.I)
_MD_REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*\S+.*$", re.M)
_AUTOLINK = re.compile(r"<((?:[a-z][a-z0-9+.-]*:|//)[^>\s]*)>", re.I)
_HTML_TAG = re.compile(r"</?[a-zA-Z][^>]*>|<!--.*?-->", re.S)


def safe_markdown(text: str) -> str:
    """Markdown that fetches nothing: images dropped (their alt text kept), remote links reduced
    to their text, reference definitions and autolinks defused, raw HTML tags removed (and any
    `<` left escaped). Citation markers such as [1] stay."""
    text = _MD_IMAGE.sub(lambda m: f"(image: {m.group(1)})" if m.group(1).strip() else "", text)
    text = _MD_LINK.sub(lambda m: m.group(1), text)
    text = _MD_REF_DEF.sub("", text)
    text = _AUTOLINK.sub(lambda m: m.group(1).replace(":", "\\:", 1), text)
    text = _HTML_TAG.sub("", text)
    return text.replace("<", "&lt;")


def safe_text(text: str) -> str:
    """A one-line label (a title in an expander header): safe Markdown on one line."""
    return " ".join(safe_markdown(text).split())


def answer_markdown(result: AnswerResult) -> str:
    """The answer as the chat shows it: safe Markdown of the checked answer."""
    return safe_markdown(result.answer)


def _vote(key: str, path: str, query: str, question: str, chunk_id: str, source: str) -> None:
    """st.feedback callback: store the vote (1 up, 0 down, None withdrawn) as a labelled pair."""
    label = st.session_state.get(key)
    record_feedback(
        Path(path), Feedback(query, chunk_id, None if label is None else int(label), question, source)
    )


def passage_link(chunk_id: str) -> str:
    return f"?passage={quote(chunk_id)}"


def citation_block(
    c: Citation, msg_id: str, doc_text: str | None, result: AnswerResult, feedback_file: Path
) -> None:
    """One citation: an expander with the passage in its document, and a thumbs vote beside it."""
    loc = location(c.source, c.page_start, c.page_end)
    left, right = st.columns([10, 2], vertical_alignment="top")
    title = safe_text(c.title)
    with left, st.expander(f"[{c.n}] {safe_text(loc)}" + (f" · {title}" if title else "")):
        st.markdown(f"**Source** `{c.source or '(derived)'}`")
        facts = []
        if title:
            facts.append(f"**Heading** {title}")
        if c.page_start is not None:
            same = c.page_end in (None, c.page_start)
            facts.append(f"**Page** {c.page_start}" if same else f"**Pages** {c.page_start}–{c.page_end}")
        facts.append(f"**Characters** {c.start}–{c.end}")
        st.markdown(" · ".join(facts))
        if doc_text is not None and c.end > c.start:
            ctx = ui_data.passage_context(doc_text, c.start, c.end)
            st.html(ui_data.highlight_html(ctx, anchor=f"cite-{msg_id}-{c.n}"))
            if st.toggle("Show the whole document", key=f"whole-{msg_id}-{c.n}"):
                whole = ui_data.Context(
                    doc_text[: c.start], doc_text[c.start : c.end], doc_text[c.end :], False, False
                )
                st.html(ui_data.highlight_html(whole, anchor=f"whole-{msg_id}-{c.n}", scroll=True))
            st.markdown(
                f'<a href="{passage_link(c.chunk_id)}" target="_blank">Open the whole document '
                "in a new tab ↗</a>",
                unsafe_allow_html=True,
            )
        else:  # a derived node (summary, RAPTOR) or a file no longer in the index: its own text
            st.html(
                f'<div style="{ui_data.PAGE_STYLE}"><mark style="{ui_data.MARK_STYLE}">'
                f"{html.escape(c.text)}</mark></div>"
            )
    with right:
        key = f"fb-{msg_id}-{c.n}"
        st.caption("Relevant?")
        st.feedback(
            "thumbs",
            key=key,
            on_change=_vote,
            args=(
                key,
                str(feedback_file),
                result.standalone_question or result.question,
                result.question,
                c.chunk_id,
                c.source,
            ),
        )


def citations(result: AnswerResult, msg_id: str, index: Index, feedback_file: Path) -> None:
    """The answer's sources; after a refusal for lack of support, the passages that came closest
    (`AnswerResult.closest`), said to be no answer."""
    shown = result.citations or result.closest()
    if not shown:
        return
    head = "**Sources**" if result.citations else "**Closest passages** (none of them supports an answer)"
    st.markdown(head)
    texts: dict[str, str | None] = {}
    for c in shown:
        if c.source and c.source not in texts:
            texts[c.source] = index.docs.file_text(c.source)
        citation_block(c, msg_id, texts.get(c.source), result, feedback_file)


def _bars(rows: list[dict[str, Any]], label: str, value: str) -> None:
    """A small horizontal bar chart keeping the rows' order (pipeline order, rank order)."""
    if not rows:
        return
    import altair as alt

    chart = (
        alt.Chart(pd.DataFrame(rows))
        .mark_bar()
        .encode(
            y=alt.Y(f"{label}:N", sort=None, title=None, axis=alt.Axis(labelLimit=260)),
            x=alt.X(f"{value}:Q", title=value),
            tooltip=[label, value],
        )
        .properties(height=30 * len(rows) + 40)
    )
    st.altair_chart(chart, width="stretch")


def how_found(result: AnswerResult) -> None:
    """The route, the generated queries, candidates per stage with scores, timings per stage."""
    with st.expander("How this answer was found"):
        trace = result.trace
        st.markdown(
            "**Route**\n\n"
            + "\n".join(
                f"- {line}"
                for line in ui_data.route_lines(
                    trace, result.strategy, result.question, result.standalone_question
                )
            )
        )
        queries = ui_data.query_rows(trace)
        if queries:
            st.markdown("**Queries searched**")
            st.dataframe(pd.DataFrame(queries), hide_index=True, width="stretch")
        st.markdown("**Candidates at each stage**")
        _bars(ui_data.funnel_rows(trace, len(result.hits), len(result.citations)), "stage", "candidates")
        for note in ui_data.stage_notes(trace):
            st.caption(note)
        cited = {c.chunk_id for c in result.citations}
        if result.hits:
            st.markdown("Top-k passages and each stage's score")
            st.dataframe(pd.DataFrame(ui_data.hit_rows(result.hits, cited)), hide_index=True, width="stretch")
        for stage, rows in ui_data.stage_listings(trace).items():
            st.markdown(f"Reranking stage `{stage}` (rank, rank before it, score)")
            _bars(
                [
                    {
                        "candidate": f"{r['rank']}. {safe_text(r['title'][:50]) or r['id'][:8]}",
                        "score": r["score"],
                    }
                    for r in rows[:10]
                ],
                "candidate",
                "score",
            )
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        st.markdown("**Timings per stage (ms)**")
        t = result.timings
        st.caption(
            f"total {t.get('total', 0) / 1000:.2f} s · first token "
            f"{t.get('first_token', 0) / 1000:.2f} s · retrieval {t.get('retrieve', 0):.0f} ms"
        )
        _bars(ui_data.timing_rows(t), "stage", "ms")


def answer_extras(result: AnswerResult, msg_id: str, index: Index, feedback_file: Path) -> None:
    if result.abstained and result.abstain_reason != "model_declined":
        st.caption(f"No answer generated ({result.abstain_reason}).")
    if result.note:  # a weakly supported answer
        st.warning(result.note)
    note = check_note([(t.stage, t.detail) for t in result.trace])
    if note:
        st.caption(note + " (see How this answer was found).")
    citations(result, msg_id, index, feedback_file)
    st.caption(f"{result.backend} · {result.model} · {result.timings.get('total', 0) / 1000:.1f} s")
    how_found(result)


def document_page(index: Index, chunk_id: str) -> None:
    """The whole text of the document a passage comes from, the passage highlighted."""
    rec = index.docs.get([chunk_id]).get(chunk_id)
    if rec is None:
        st.error(
            f"No passage '{chunk_id}' in the index at {index.path}; the document may have been "
            "re-ingested since. Ask again for fresh citations."
        )
        return
    text = index.docs.file_text(rec.source) if rec.source else None
    st.title(Path(rec.source).name if rec.source else "(derived passage)")
    facts = [f"**Source** `{rec.source or '(derived)'}`"]
    facts += [f"**Heading** {safe_text(rec.title)}"] if rec.title else []
    facts += [f"**Pages** {rec.page_start}–{rec.page_end}"] if rec.page_start is not None else []
    st.markdown(" · ".join(facts))
    if text is None:
        st.warning("The document's text is not stored in the index; showing the passage alone.")
        text, start, end = rec.text, 0, len(rec.text)
    else:
        start, end = rec.start, rec.end
    st.caption(f"{len(text):,} characters; the cited passage ({start}–{end}) is highlighted.")
    st.markdown('<a href="#cited">Jump to the passage ↓</a>', unsafe_allow_html=True)
    st.html(
        ui_data.highlight_html(
            ui_data.Context(text[:start], text[start:end], text[end:], False, False), anchor="cited"
        )
    )
