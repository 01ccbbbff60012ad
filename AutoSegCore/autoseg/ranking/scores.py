"""One number and one sentence per case, from its :class:`CaseUncertainty`.

The ranking score is ``fold_disagreement + mean_entropy`` (just ``mean_entropy`` when the disagreement is not
available). Both terms lie in [0, 1]. The disagreement measures what the model does not know (members
trained on different cases, or seeing the image mirrored, draw different structures): where members
disagree at least one is wrong, so it is the strongest sign that a correction teaches the model something.
The entropy adds how unsure the ensemble is along what it did predict (boundaries, faint structures), and
orders the many cases on which the members agree. Equal weights keep the score explainable; all cases of
one run have the same members, so their scores are comparable.
"""

from __future__ import annotations

from autoseg.ranking.uncertainty import CaseUncertainty

#: Below this mean member-vs-ensemble Dice the reason says the members disagree.
AGREEMENT_DICE = 0.9
#: From this mean normalised entropy on the predicted foreground the reason calls the prediction uncertain.
UNCERTAIN_ENTROPY = 0.2


def combined_score(uncertainty: CaseUncertainty) -> float:
    """``disagreement + mean_entropy`` (``mean_entropy`` alone without a disagreement); higher: annotate first."""
    if uncertainty.disagreement is None:
        return uncertainty.mean_entropy
    return uncertainty.disagreement + uncertainty.mean_entropy


def explain(uncertainty: CaseUncertainty, members: str = "folds") -> str:
    """A human-readable reason, e.g. ``"folds disagree: mean Dice of the folds against their ensemble 0.62;
    uncertain boundary: mean entropy 0.31 over 12,345 predicted voxels"``. ``members`` names the members
    (``"folds"``, ``"mirrored copies"``)."""
    return f"{_disagreement_part(uncertainty, members)}; {_entropy_part(uncertainty)}"


def _disagreement_part(uncertainty: CaseUncertainty, members: str) -> str:
    if uncertainty.mean_dice is None:
        return "no disagreement measured (one fold, no mirrored copies)"
    verb = "disagree" if uncertainty.mean_dice < AGREEMENT_DICE else "agree"
    return f"{members} {verb}: mean Dice of the {members} against their ensemble {uncertainty.mean_dice:.2f}"


def _entropy_part(uncertainty: CaseUncertainty) -> str:
    entropy = uncertainty.mean_entropy
    if uncertainty.no_foreground:
        return f"no foreground predicted: mean entropy {entropy:.2f} over all {uncertainty.total_voxels:,} voxels"
    state = "uncertain boundary" if entropy >= UNCERTAIN_ENTROPY else "confident"
    return f"{state}: mean entropy {entropy:.2f} over {uncertainty.foreground_voxels:,} predicted voxels"
