"""``paper-unet``: the self-supervised U-Net of paper 000 (Chopp et al.), reproduced faithfully.

:mod:`dwellwise.models.paper_unet` trains a 4-level U-Net on the Anscombe transform of the
first-pass *rates* with uniform pixel selection in a 5×5 window and the simulated-sampling loss
(Eq. 5-6), N = 1024 crops of 16×16, K = 64 targets, random rotations and flips; the dwell map is
the mean-adjustment layer (Eq. 4) ``t_i = t1 · S⁺(t̃_i) / mean_j S⁺(t̃_j)`` of the outputs at crop
centres (K = 1). Its known shortcomings (own-pixel bias, ``a^(1/3)`` instead of ``sqrt(ψ)``,
Anscombe on rates) are kept on purpose and listed in that module.

The MA output already has mean ``mean_dwell``; :func:`dwellwise.planners.waterfill.fit_mean`
then enforces ``[min_dwell, max_dwell]`` by an exact rescale-and-clip that keeps the mean.
Several elements: the net is trained on the weighted rate sum ``Σ_c w_c Λ_c``.

Options: ``steps`` (training steps), ``deadline`` (seconds), ``device``, ``full_image``
(one-pass inference instead of crop centres).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from dwellwise.models import paper_unet
from dwellwise.planners.policies import DwellProblem, register
from dwellwise.planners.waterfill import fit_mean


@register("paper-unet", "paper 000's self-supervised U-Net (Anscombe, UPS, MA layer, Eq. 5-6)")
def paper_unet_policy(problem: DwellProblem) -> np.ndarray:
    """Dwell map (seconds) from the paper's U-Net."""
    opts = problem.options
    cfg = paper_unet.PaperUNetConfig()
    if "steps" in opts:
        cfg = dataclasses.replace(cfg, steps=int(opts["steps"]))
    seed = 0 if problem.seed is None else problem.seed
    net = paper_unet.train_paper_unet(
        problem.counts, problem.t0, problem.mean_dwell, weights=problem.weights, config=cfg,
        seed=seed, deadline=opts.get("deadline"), device=opts.get("device"),
    )
    dwell = paper_unet.paper_unet_dwell(
        net, problem.counts, problem.t0, problem.mean_dwell, weights=problem.weights,
        crop=cfg.crop, full_image=bool(opts.get("full_image", False)),
    )
    return fit_mean(dwell, problem.mean_dwell, problem.min_dwell, problem.max_dwell)
