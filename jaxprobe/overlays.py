"""Overlays of a few test images with the true mask (green) and each encoder's predicted mask (red)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from . import predictions  # noqa: E402
from .data import preprocess  # noqa: E402
from .embed.store import Store  # noqa: E402
from .embed.analysis import display_name  # noqa: E402
from .encoders.spec import EncoderSpec  # noqa: E402
from .heads import SCENARIOS  # noqa: E402


def write_overlays(config, inputs, workdir: Path, n: int = 4) -> Path:
    test = sorted(inputs.rows("test"), key=lambda i: inputs.ids[i])[:n]
    names = list(config.encoders.names)
    fig, axes = plt.subplots(len(test), len(names), figsize=(3.2 * len(names), 3.2 * len(test)), squeeze=False)
    for j, name in enumerate(names):
        head = predictions.read_head(workdir, name)
        store = Store.open(head["store"]).bind_masks(head["masks"])
        spec = EncoderSpec.from_dict(store.meta["identity"]["spec"])
        row_of = {cid: k for k, cid in enumerate(store.ids)}
        pred_ids, pred_masks = predictions.load_masks(workdir, name)
        pred_row = {cid: k for k, cid in enumerate(pred_ids)}
        for i, row in enumerate(test):
            cid = inputs.ids[row]
            pixels = preprocess(inputs.read(row), spec)[..., 0] * spec.std[0] + spec.mean[0]
            true = store.masks(np.array([row_of[cid]]))[0]
            pred = np.asarray(pred_masks[pred_row[cid]])
            ax = axes[i, j]
            ax.imshow(pixels, cmap="gray", vmin=0, vmax=1)
            for m, colour in ((true, "#2ca02c"), (pred, "#d62728")):
                if m.any():
                    ax.contour(m.astype(float), levels=[0.5], colors=colour, linewidths=1.2)
            inter = np.logical_and(true, pred).sum()
            dice = 2 * inter / (true.sum() + pred.sum()) if (true.sum() + pred.sum()) else float("nan")
            ax.set_title(f"{display_name(config, name)}  Dice {dice:.2f}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"{config.title} ({SCENARIOS[config.head.name]}): true mask green, prediction red", fontsize=11)
    fig.tight_layout()
    out = workdir / "overlays.png"
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
