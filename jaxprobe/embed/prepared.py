"""Extraction from a prepared (TFDS) dataset: one split's examples (those a task selects) into a store keyed by
the dataset, split, selection and example index (the loading itself is ``jaxprobe.data.loaders``)."""
from __future__ import annotations

import hashlib
from pathlib import Path


from ..data.loaders import prepared_loader, prepared_targets
from ..data.tfds.index import Task, example_index, select
from ..data.tfds.base import INDEX_FILE
from .extract import extract
from .store import Store


def extract_prepared(encoder, builder, split: str, root: str | Path, *, name: str, task: Task = "all",
                     seed: int = 0, mask: str | None = None, **kwargs) -> Store:
    """Embed one split of a prepared dataset (the examples ``task`` selects) into a store under ``root``.

    ``builder`` is what ``jaxprobe.data.tfds.prepare(...)`` returns (it prepares the dataset on first use and
    reuses it afterwards). Row ids are ``"<source>:<image_id>"`` as ``extract_records`` writes them; the store
    key also covers the dataset, split, task and the example index's contents, so another preparation (other
    splits, other files) never reuses these embeddings. ``kwargs`` go to ``extract`` (batch_size, workers, ...).
    With ``jax.distributed``, prepare before the processes start (``python -m jaxprobe.data.prepare``): two
    processes building the same dataset at once would race for its folder.
    """
    rows = example_index(builder)[split]
    chosen = select(rows, task, seed=seed)
    picked = [rows[i] for i in chosen]
    source_name = builder.info.metadata["source"]
    ids = [f"{source_name}:{r.image_id}" for r in picked]
    index_digest = hashlib.sha256((Path(builder.data_path) / INDEX_FILE).read_bytes()).hexdigest()
    extra = {"dataset": f"{builder.name}/{builder.builder_config.name}:{builder.version}",
             "split": split, "task": task, "seed": seed if task == "classification" else None,
             "index_sha256": index_digest}
    loader = prepared_loader(builder.as_data_source(split), encoder.spec, mask, chosen)
    return extract(encoder, ids, loader, root, name=name, mask_size=encoder.spec.input_size if mask else None,
                   mask_settings={"target": mask}, targets=prepared_targets(picked), extra=extra, **kwargs)
