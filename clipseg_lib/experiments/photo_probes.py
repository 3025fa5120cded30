"""The failure-mode probes and mitigations on real photos (`clipseg_lib.experiments.cases`), for a
full-size CLIPSeg (`cases.cases_for_model` gives `mini`, which only knows the synthetic world,
none).

Photos have no negation truth and rarely a mask, so each probe measures what needs none:
how much "not X" still looks like "X"; whether a photo's own prompts get a mask and the other
photos' prompts (objects that are not in it) get none; and the mitigations' masks against the
photo's mask where there is one, else against the plain prediction of the undistorted photo.
Each image is encoded once for all its prompts. Every function returns
{"summary": {...}, "rows": [...]}, both empty when there are no cases; the negation and absence
probes give every mean and rate as an Estimate (95% interval, n).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from clipseg_lib.analysis.distortions import distort
from clipseg_lib.analysis.metrics import DEFAULT_THRESHOLD, iou, presence_score
from clipseg_lib.analysis.plotting import format_table
from clipseg_lib.analysis.stats import Estimate, mean_ci, proportion_ci
from clipseg_lib.experiments.cases import Case, by_image
from clipseg_lib.experiments.mitigations import (
    DEFAULT_TEMPLATES,
    DEFAULT_TRANSFORMS,
    Transform,
    average_views,
    predict_views,
)
from clipseg_lib.experiments.mitigations import ensemble_prompts as ensemble
from clipseg_lib.model.segmenter import Segmenter

NEGATION_PREFIXES = {"not X": "not {}", "everything except X": "everything except {}"}
NO_RESULTS: dict = {"summary": {}, "rows": []}
ARTICLE = re.compile(r"^(a|an|the)\s+", re.IGNORECASE)


def photo_table(results: dict) -> str:
    """The rows as a table (3 decimals), or a line saying there are none."""
    return format_table(results["rows"], precision=3) if results["rows"] else "No real-photo rows."


def photo_negation(segmenter: Segmenter, cases: Sequence[Case], *,
                   threshold: float = DEFAULT_THRESHOLD) -> dict:
    """IoU of the "not X" and "everything except X" masks with the "X" mask, per photo prompt
    ("cases"); summary: iou_not_x_vs_x, iou_except_vs_x (Estimate dicts); rows: both."""
    if not cases:
        return NO_RESULTS
    records = []
    for photo in by_image(list(cases)).values():
        encoding = segmenter.encode_image(photo[0].image)
        for case in photo:
            prompts = [case.prompt, *(p.format(case.prompt) for p in NEGATION_PREFIXES.values())]
            x_mask, not_mask, except_mask = segmenter.predict(encoding, prompts) > threshold
            records.append({"photo": case.name, "x": case.prompt,
                            "not_x_vs_x_mask": iou(not_mask, x_mask),
                            "except_x_vs_x_mask": iou(except_mask, x_mask)})
    summary = {
        "iou_not_x_vs_x": mean_ci([r["not_x_vs_x_mask"] for r in records]),
        "iou_except_vs_x": mean_ci([r["except_x_vs_x_mask"] for r in records]),
    }
    rows = [{"photo prompt": "not X", "IoU with the X mask": summary["iou_not_x_vs_x"]},
            {"photo prompt": "everything except X", "IoU with the X mask":
             summary["iou_except_vs_x"]}]
    return {"summary": _as_dicts(summary), "rows": rows, "cases": records}


def photo_absent(segmenter: Segmenter, cases: Sequence[Case], *,
                 threshold: float = DEFAULT_THRESHOLD) -> dict:
    """Each photo's own prompts (present) vs the other photos' prompts it does not list
    (absent), as notebook 08 scores the synthetic world. summary (Estimate dicts):
    false_positive (absent prompts that mark something), false_negative (own prompts with an
    empty mask), present_miou (own prompts with a mask; absent when none has one)."""
    if not cases:
        return NO_RESULTS
    photos = by_image(list(cases))
    marked_present, marked_absent, ious = [], [], []
    for name, photo in photos.items():
        own = [case.prompt for case in photo]
        others = sorted({c.prompt for c in cases if c.name != name} - set(own))
        probs = segmenter.predict(segmenter.encode_image(photo[0].image), own + others)
        marked = [presence_score(p) > threshold for p in probs]
        marked_present += marked[: len(own)]
        marked_absent += marked[len(own):]
        ious += [
            iou(p > threshold, c.mask)
            for p, c in zip(probs[: len(own)], photo, strict=True) if c.mask is not None
        ]
    summary = {"false_negative": proportion_ci([not m for m in marked_present])}
    rows = [{"photo prompts": "own (present)", "wrong answer": "empty mask",
             "rate [95% interval] (n)": summary["false_negative"]}]
    if marked_absent:
        summary["false_positive"] = proportion_ci(marked_absent)
        rows.append({"photo prompts": "other photos' (absent)", "wrong answer": "marks something",
                     "rate [95% interval] (n)": summary["false_positive"]})
    if ious:
        summary["present_miou"] = mean_ci(ious)
        rows[0]["mIoU (photos with a mask)"] = summary["present_miou"]
    return {"summary": _as_dicts(summary), "rows": rows}


def _as_dicts(summary: dict[str, Estimate]) -> dict[str, dict]:
    return {name: value.as_dict() for name, value in summary.items()}


def photo_mitigations(
    segmenter: Segmenter,
    cases: Sequence[Case],
    *,
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    transforms: Sequence[Transform] = DEFAULT_TRANSFORMS,
    distortions: Sequence[str] = ("gaussian_noise", "blur", "jpeg"),
    severity: int = 3,
    seed: int = 0,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict:
    """Prompt ensembling (photos with a mask; the templates take the prompt without its
    leading article) and test-time augmentation (every photo, against its mask, else against
    the plain prediction of the undistorted photo), before/after. Photo g is distorted with
    seed `seed + g`."""
    if not cases:
        return NO_RESULTS
    if Transform() not in transforms:
        raise ValueError("transforms must include the identity Transform(): its view is the "
                         "plain prediction")
    identity = list(transforms).index(Transform())
    scores: dict[str, list[float]] = {key: [] for key in ("plain", "ensemble", "distorted",
                                                           "tta")}
    for group, photo in enumerate(by_image(list(cases)).values()):
        encoding = segmenter.encode_image(photo[0].image)
        prompts = [case.prompt for case in photo]
        clean = segmenter.predict(encoding, prompts) > threshold
        for case, plain in zip(photo, clean, strict=True):
            if case.mask is not None:
                phrase = ARTICLE.sub("", case.prompt)
                ensembled = ensemble(segmenter, encoding, phrase, templates) > threshold
                scores["plain"].append(iou(plain, case.mask))
                scores["ensemble"].append(iou(ensembled, case.mask))
        pairs = zip(photo, clean, strict=True)
        references = [c.mask if c.mask is not None else m for c, m in pairs]
        for name in distortions:
            image = distort(photo[0].image, name, severity, seed=seed + group)
            views = predict_views(segmenter, image, prompts, transforms)
            distorted = views[identity][0] > threshold
            augmented = average_views(views) > threshold
            scores["distorted"] += [iou(m, r) for m, r in zip(distorted, references, strict=True)]
            scores["tta"] += [iou(m, r) for m, r in zip(augmented, references, strict=True)]
    mean = {key: float(np.mean(v)) if v else float("nan") for key, v in scores.items()}
    rows = [
        {"mitigation": "prompt ensembling (photos with a mask)", "n": len(scores["plain"]),
         "before": mean["plain"], "after": mean["ensemble"]},
        {"mitigation": f"test-time augmentation (severity {severity})",
         "n": len(scores["tta"]), "before": mean["distorted"], "after": mean["tta"]},
    ]
    return {"summary": mean, "rows": rows}
