"""Presence for negated prompts, measured as SAM 3 measures it (notebook 06).

In the world's negation scenes "not X" always has a target (every object but X's), so the
image-level question "is there anything that 'not X' names?" always has the answer yes, and
IL_MCC (`analysis.presence`) is undefined: a model that always marks something is never wrong
about presence. A *lone* scene holds X's objects and nothing else (`lone_query`): there the right
answer to "not X" is an empty mask. Asking the negations on both kinds of scene makes the
question two-sided: normal scenes are the present prompts (their masks scored against the
negation's truth for pmF1), lone scenes the absent ones; a prompt marks something when the map's
maximum is above the mask threshold (`probes.marks_something`), as in notebook 08.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clipseg_lib import world
from clipseg_lib.analysis.presence import Presence, presence_scores, shown_score
from clipseg_lib.analysis.stats import Estimate, proportion_ci
from clipseg_lib.experiments.probes import excluded_objects, presence_auroc
from clipseg_lib.world.render import LayoutDoesNotFit, SceneLayout

#: Negation forms scored, with the case keys their decisions and IoUs are stored under.
FORMS = {"not X": "not_x", "everything except X": "except_x"}
#: Mixed into a negation scene's seed to draw its lone scene (another background and layout).
LONE_SALT = 6
_ATTEMPTS = 50


def lone_query(query: world.Query) -> world.Query:
    """The lone twin of a negation `query`: a new scene (same size) holding only the composite X
    that `query` excludes, as many of them as `query`'s scene holds, at random sizes and places
    on a background of its own; the same prompt, an empty target. A pure function of the
    query's scene."""
    excluded = [query.scene.objects[i] for i in excluded_objects(query)]
    size = query.scene.image.shape[0]
    rng = np.random.default_rng([query.scene.seed, LONE_SALT])
    for _ in range(_ATTEMPTS):
        layout = SceneLayout(rng, size)
        try:
            for thing in excluded:
                layout.add("shape", thing.name, thing.colour)
            scene = layout.render(query.scene.seed)
        except LayoutDoesNotFit:
            continue
        return world.Query(scene, query.prompt, np.zeros((size, size), bool), "negation")
    raise RuntimeError(f"no lone layout for {query.prompt!r} fitted in {_ATTEMPTS} attempts")


def presence_by_form(
    normal: Sequence[dict], lone: Sequence[dict], *, seed: int = 0
) -> dict[str, Presence]:
    """SAM 3's presence scores (IL_MCC, pmF1, cgF1 with bootstrap intervals) per negation form
    of `FORMS`: normal-scene cases are the present prompts, lone-scene cases the absent ones.
    A case holds ``<key>_marks`` (bool) per form, and a normal case ``<key>_vs_truth`` (IoU)."""
    return {
        form: presence_scores(
            [case[f"{key}_vs_truth"] for case in normal],
            [case[f"{key}_marks"] for case in normal],
            [case[f"{key}_marks"] for case in lone], seed=seed,
        )
        for form, key in FORMS.items()
    }


def presence_aurocs(
    normal: Sequence[dict], lone: Sequence[dict], *, seed: int = 0
) -> dict[str, Estimate]:
    """Per form, the AUROC of the presence score (the map's maximum, ``<key>_presence``) telling
    normal scenes from lone ones, threshold-free (0.5: chance), with its 95% interval."""
    return {form: presence_auroc([case[f"{key}_presence"] for case in lone],
                                 [case[f"{key}_presence"] for case in normal], seed=seed)
            for form, key in FORMS.items()}


def marked_rates(cases: Sequence[dict]) -> dict[str, Estimate]:
    """Per form, the share of `cases` whose mask marks something, with its exact interval."""
    return {form: proportion_ci([case[f"{key}_marks"] for case in cases])
            for form, key in FORMS.items()}


def presence_sentence(form: str, presence: Presence, normal: Estimate, lone: Estimate) -> str:
    """What the numbers say about one form: the decision rates on normal and lone scenes
    (`marked_rates`) and IL_MCC, read as undefined, no better than chance or better."""
    rates = (f'"{form}" marks something in {normal} of normal scenes (a target exists) and in '
             f"{lone} of lone scenes (the right answer is an empty mask)")
    if presence.il_mcc is None:
        answer = "marks something" if normal.mean == 1 else "marks nothing"
        return (f"{rates}: it {answer} whatever the scene holds, so IL_MCC is undefined (one "
                "class of decisions: no better than a constant answer).")
    low, high = presence.il_mcc_ci
    reading = ("better than a constant answer" if low > 0 else
               "worse than a constant answer" if high < 0 else
               "not shown better than a constant answer")
    return f"{rates}: IL_MCC {presence.il_mcc:.2f} [{low:.2f}, {high:.2f}], {reading}."


@dataclass(frozen=True)
class FormPresence:
    """One negation form's presence evidence: SAM 3's scores, the presence score's AUROC, and
    the share of normal and of lone scenes where its mask marks something."""

    form: str
    presence: Presence
    auroc: Estimate
    marked_normal: Estimate
    marked_lone: Estimate

    def as_dict(self) -> dict:
        """JSON-ready, under names that say what each number is."""
        return {**self.presence.as_dict(), "presence_auroc": self.auroc.as_dict(),
                "marks_something_normal": self.marked_normal.as_dict(),
                "marks_something_lone": self.marked_lone.as_dict()}

    def row(self) -> dict[str, str]:
        """A table row: the two decision rates, IL_MCC, pmF1, cgF1 and the AUROC."""
        scores = self.presence
        return {"prompt": self.form, "marks something, normal scenes": str(self.marked_normal),
                "marks something, lone scenes": str(self.marked_lone),
                "IL_MCC": shown_score(scores.il_mcc, scores.il_mcc_ci, 2),
                "pmF1": shown_score(scores.pm_f1, scores.pm_f1_ci, 2),
                "cgF1": shown_score(scores.cg_f1, scores.cg_f1_ci, 1),
                "n (normal + lone)": f"{scores.n_present} + {scores.n_absent}",
                "presence-score AUROC": str(self.auroc)}

    def sentence(self) -> str:
        """`presence_sentence` of this form."""
        return presence_sentence(self.form, self.presence, self.marked_normal, self.marked_lone)


def form_presences(normal: Sequence[dict], lone: Sequence[dict], *, seed: int = 0
                   ) -> list[FormPresence]:
    """`FormPresence` per form of `FORMS`, from normal-scene and lone-scene cases."""
    presences = presence_by_form(normal, lone, seed=seed)
    aurocs = presence_aurocs(normal, lone, seed=seed)
    on_normal, on_lone = marked_rates(normal), marked_rates(lone)
    return [FormPresence(form, presences[form], aurocs[form], on_normal[form], on_lone[form])
            for form in FORMS]
