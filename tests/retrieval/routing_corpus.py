"""Two clearly separated small collections for the routing and translation tests, each in
its own index folder: coffee brewing (Markdown + one PDF) and machine-learning notes
(Markdown + text). Built once per test session."""

from __future__ import annotations

from pathlib import Path

from core.settings import CollectionSettings, Settings, load_settings
from ingest.pipeline import ingest

COFFEE = {
    "espresso.md": (
        "# Espresso\n\nEspresso needs a fine grind, about like table salt. The machine pushes water "
        "at nine bar through the puck for 25 to 30 seconds. A shot that runs fast is under-extracted."
    ),
    "french-press.md": (
        "# French press\n\nUse a coarse grind for the French press, like breadcrumbs. Steep the "
        "coffee for four minutes, then press the plunger slowly and pour at once."
    ),
    "milk.md": "# Milk\n\nSteam milk to about sixty degrees Celsius for a silky latte. Hotter milk is flat.",
}
COFFEE_PDF = (
    "brewing-guide.pdf",
    [
        "Pour-over brewing guide. Heat the water to 92 to 96 degrees Celsius before pouring.",
        "Let the coffee bloom for thirty seconds, then pour in slow circles. Brew time is three minutes.",
    ],
)
ML = {
    "langchain-notes.md": (
        "# LangChain\n\nIn LangChain a retriever returns documents for a query. A vector store "
        "retriever wraps a vector store; chains combine a retriever with a chat model."
    ),
    "transformers.md": "# Transformers\n\nSelf-attention lets every token attend to every other token. The "
    "transformer stacks attention layers and feed-forward layers with residual connections.",
    "training.txt": "Training a neural network uses gradient descent. A learning rate that is too high makes "
    "the loss diverge; too many epochs cause overfitting, which early stopping prevents.",
}
DESCRIPTIONS = {
    "coffee": "Coffee brewing notes: espresso, grind size, French press, pour-over, milk steaming.",
    "ml": "Machine learning notes: transformers, self-attention, network training, LangChain retrievers.",
}
_BUILT: dict[str, Path] = {}


def _pdf(path: Path, pages: list[str]) -> None:
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path))
    for text in pages:
        c.drawString(72, 720, text[:95])
        if len(text) > 95:
            c.drawString(72, 700, text[95:])
        c.showPage()
    c.save()


def build(root: Path) -> dict[str, Path]:
    """Index folders {'coffee': ..., 'ml': ...} (built once, reused by later test modules)."""
    if _BUILT:
        return dict(_BUILT)
    for name, files in (("coffee", COFFEE), ("ml", ML)):
        docs = root / name / "docs"
        docs.mkdir(parents=True)
        for fn, text in files.items():
            (docs / fn).write_text(text, encoding="utf-8")
        if name == "coffee":
            _pdf(docs / COFFEE_PDF[0], COFFEE_PDF[1])
        s = load_settings(index_dir=str(root / name / "index"))
        report = ingest([docs], s)
        assert not report.failed, report.summary()
        _BUILT[name] = root / name / "index"
    return dict(_BUILT)


def settings_for(
    dirs: dict[str, Path], main: str = "coffee", collections: bool = False, **overrides: object
) -> Settings:
    """Settings searching `main`; with `collections`, both are configured for routing."""
    s = load_settings(index_dir=str(dirs[main]), **overrides)
    s.search.coarse = False  # keep these tests about translation and routing, not reranking
    s.search.ltr = False
    s.translate.temperature = 0.0
    if collections:
        s.route.collections = [
            CollectionSettings(name=n, description=d, index_dir=dirs[n]) for n, d in DESCRIPTIONS.items()
        ]
    return s
