"""What the world's queries are drawn from: its splits, the query kinds and their default mix,
the colour-shape pairs held out of training, and the prompt templates of each kind (see
:mod:`clipseg_lib.world.scenes` for what each kind's target is)."""

SPLITS = ("train", "test", "heldout")
QUERY_KINDS = (
    "attribute", "category", "composite", "referring", "word", "expression", "negation",
    "absent", "image",
)
HELD_OUT_COMBINATIONS = frozenset({
    ("green", "star"), ("blue", "hexagon"), ("yellow", "circle"), ("purple", "square"),
    ("orange", "triangle"),
})
DEFAULT_KIND_WEIGHTS = {
    "attribute": 0.12, "category": 0.12, "composite": 0.2, "referring": 0.14, "word": 0.08,
    "expression": 0.08, "negation": 0.0, "absent": 0.2, "image": 0.06,
}
# Fields: c colour, s shape, d direction or side, a anchor shape, n word or expression.
PROMPT_TEMPLATES = {
    "attribute": ("{c}", "{c} object", "the {c} shapes"),
    "category": ("{s}", "a {s}", "all {s}s"),
    "composite": ("{c} {s}", "a {c} {s}", "the {c} {s}"),
    "side": ("the {d} {c} {s}", "the {c} {s} on the {d}"),
    "largest": ("the largest {s}", "the biggest {s}"),
    "smallest": ("the smallest {s}", "the tiniest {s}"),
    "neighbour": ("the shape {d} the {a}", "the object {d} the {a}"),
    "word": ("the word {n}", "the sign that says {n}", "the text {n}"),
    "expression": ("the {n} face", "a {n} face", "the {n} cartoon face"),
    "negation": ("not the {c} {s}", "everything except the {c} {s}"),
}
