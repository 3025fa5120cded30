"""The failure-mode probes and mitigations on real photos (`clipseg_lib.experiments.cases`), for a
full-size CLIPSeg; `mini` only knows the synthetic world and skips them.

Photos have no negation truth and rarely a mask, so each probe measures what needs none:
how much "not X" still looks like "X"; whether the presence score tells a photo's own
prompts from the other photos' prompts (objects that are not in it); and the mitigations'
masks against the photo's mask where there is one, else against the plain prediction of the
undistorted photo. Each image is encoded once for all its prompts. Every function returns
{"summary": {...}, "rows": [...]}, both empty when there are no cases.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from clipseg_lib.analysis.distortions import distort
from clipseg_lib.analysis.metrics import DEFAULT_THRESHOLD, auroc, iou, presence_score
from clipseg_lib.analysis.plotting import show_table
from clipseg_lib.experiments.cases import Case, by_image, load_cases
from clipseg_lib.experiments.mitigations import (
    DEFAULT_TEMPLATES,
    DEFAULT_TRANSFORMS,
    Transform,
    average_views,
    predict_views,
)
from clipseg_lib.experiments.mitigations import ensemble_prompts as ensemble
from clipseg_lib.model.segmenter import Segmenter

#: Models that see at least this many pixels per side are full-size CLIPSeg.
FULL_SIZE = 224
NEGATION_PREFIXES = {"not X": "not {}", "everything except X": "everything except {}"}
NO_RESULTS: dict = {"summary": {}, "rows": []}
ARTICLE = re.compile(r"^(a|an|the)\s+", re.IGNORECASE)


def photo_cases(segmenter: Segmenter, cases_file: str | Path, images_dir: str | Path
                ) -> list[Case]:
    """The cases of `cases_file` for a full-size model; [] (and a printed line) for `mini`."""
    if segmenter.image_size < FULL_SIZE:
        print(f"Real-photo cases skipped: {segmenter.name} only knows the synthetic world.")
        return []
    cases = load_cases(cases_file, images_dir)
    print(f"Real-photo cases: {len(cases)} prompts on {len(by_image(cases))} photos.")
    return cases


def photo_table(results: dict) -> str:
    """The rows as a table (3 decimals), or a line saying there are none."""
    return show_table(results["rows"], precision=3) if results["rows"] else "No real-photo rows."


def photo_negation(segmenter: Segmenter, cases: Sequence[Case], *,
                   threshold: float = DEFAULT_THRESHOLD) -> dict:
    """IoU of the "not X" and "everything except X" masks with the "X" mask, per photo prompt;
    summary: iou_not_x_vs_x, iou_except_vs_x (means)."""
    if not cases:
        return NO_RESULTS
    rows = []
    for photo in by_image(list(cases)).values():
        encoding = segmenter.encode_image(photo[0].image)
        for case in photo:
            prompts = [case.prompt, *(p.format(case.prompt) for p in NEGATION_PREFIXES.values())]
            x_mask, not_mask, except_mask = segmenter.predict(encoding, prompts) > threshold
            rows.append({"photo": case.name, "X": case.prompt,
                         "not X vs X": iou(not_mask, x_mask),
                         "everything except X vs X": iou(except_mask, x_mask)})
    summary = {
        "iou_not_x_vs_x": float(np.mean([r["not X vs X"] for r in rows])),
        "iou_except_vs_x": float(np.mean([r["everything except X vs X"] for r in rows])),
    }
    return {"summary": summary, "rows": rows}


def photo_absent(segmenter: Segmenter, cases: Sequence[Case], *,
                 threshold: float = DEFAULT_THRESHOLD) -> dict:
    """Each photo's own prompts (present) vs the other photos' prompts it does not list
    (absent). summary: presence_auroc, false_positive_area (absent), present_miou (masks)."""
    if not cases:
        return NO_RESULTS
    photos = by_image(list(cases))
    present_scores, absent_scores, absent_areas, ious = [], [], [], []
    for name, photo in photos.items():
        own = [case.prompt for case in photo]
        others = sorted({c.prompt for c in cases if c.name != name} - set(own))
        probs = segmenter.predict(segmenter.encode_image(photo[0].image), own + others)
        present_scores += [presence_score(p) for p in probs[: len(own)]]
        absent_scores += [presence_score(p) for p in probs[len(own):]]
        absent_areas += [float(np.mean(p > threshold)) for p in probs[len(own):]]
        ious += [
            iou(p > threshold, c.mask)
            for p, c in zip(probs[: len(own)], photo, strict=True) if c.mask is not None
        ]
    labels = np.array([True] * len(present_scores) + [False] * len(absent_scores))
    summary = {
        "presence_auroc": auroc(np.array(present_scores + absent_scores), labels),
        "false_positive_area": float(np.mean(absent_areas)) if absent_areas else float("nan"),
        "present_miou": float(np.mean(ious)) if ious else float("nan"),
    }
    rows = [
        {"photo prompts": "own (present)", "n": len(present_scores),
         "mean presence": float(np.mean(present_scores))},
        {"photo prompts": "other photos' (absent)", "n": len(absent_scores),
         "mean presence": float(np.mean(absent_scores)) if absent_scores else float("nan"),
         "area > 0.5": summary["false_positive_area"]},
    ]
    return {"summary": summary, "rows": rows}


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
