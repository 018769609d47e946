"""Live curves in TensorBoard: a run logger that also streams every record to event files (``--tensorboard DIR``).

Each run writes to ``DIR/<domain>/<run name>/`` with tags ``train/<series>`` (per-step telemetry) and
``eval/<metric>`` (evaluations), so ``tensorboard --logdir DIR`` shows a long study while it runs. Offline: the
writer is the ``tensorboard`` package's (through ``torch.utils.tensorboard``), which only writes local files.
The store stays the record; the event files are a view.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

from benchmarks.analysis.frame import file_stem
from benchmarks.planning.run_spec import RunSpec
from benchmarks.running.progress import grid_point_text

FLUSH_SECONDS = 5  # how stale a watched curve may be


def run_folder(root: Path, spec: RunSpec) -> Path:
    """``ROOT/<domain>/<grid point>_<recipe>[_variant]_seed<N>_<run id>``: one event folder per run."""
    recipe = spec.recipe + (f"_{spec.variant}" if spec.variant else "")
    lr = f"_lr{spec.lr:g}" if spec.lr is not None else ""
    name = "_".join(p for p in (grid_point_text(spec.overrides).replace(" ", "_"), recipe) if p)
    return Path(root) / file_stem(spec.domain) / file_stem(f"{name}{lr}_seed{spec.seed}_{spec.run_id[:8]}")


class TensorBoardLogger:
    """Wraps a run logger: every call goes to ``inner`` (what the store keeps) and, as scalars, to an event file.

    A resumed run (``restore``) carries on writing at the steps after its checkpoint; TensorBoard shows the
    steps logged before the kill from the earlier event file of the same folder.
    """

    def __init__(self, inner, folder: Path, info: Mapping[str, Any] | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.inner = inner
        self.folder = Path(folder)
        self.writer = SummaryWriter(log_dir=str(self.folder), flush_secs=FLUSH_SECONDS)
        if info:
            self.writer.add_text("run", "  \n".join(f"**{k}**: {v}" for k, v in info.items()), 0)

    @property
    def info(self) -> dict:
        """The wrapped logger's run info."""
        return self.inner.info

    def _scalars(self, prefix: str, step: int, values: Mapping[str, float]) -> None:
        for name, value in values.items():
            value = float(value)
            if math.isfinite(value):
                self.writer.add_scalar(f"{prefix}/{name}", value, int(step))

    def log_step(self, step: int, values: Mapping[str, float]) -> None:
        """Per-step telemetry, to both."""
        self.inner.log_step(step, values)
        self._scalars("train", step, values)

    def log_eval(self, step: int, values: Mapping[str, float]) -> None:
        """An evaluation, to both (flushed: evaluations are what a watcher waits for)."""
        self.inner.log_eval(step, values)
        self._scalars("eval", step, values)
        self.writer.flush()

    def log_info(self, **info: Any) -> None:
        """Run metadata: kept by the wrapped logger only."""
        self.inner.log_info(**info)

    def snapshot(self) -> dict:
        """The wrapped logger's snapshot (for a checkpoint)."""
        return self.inner.snapshot()

    def restore(self, snapshot: dict) -> None:
        """Restore the wrapped logger (resume)."""
        self.inner.restore(snapshot)

    def curves(self):
        """The wrapped logger's curves."""
        return self.inner.curves()

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.flush()
        self.writer.close()
