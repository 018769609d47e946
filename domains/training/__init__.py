"""The shared step-based training layer of the supervised domains (LLaMA, OLMoE, PatchTST, quadratic).

* :mod:`~domains.training.loop` -- :func:`train` and :class:`TrainLoop` (schedule, cadences);
* :mod:`~domains.training.job` -- :class:`TrainingJob`, the arguments of :func:`train` for one run;
* :mod:`~domains.training.accumulation` -- one forward/backward pass, in micro-batches when asked;
* :mod:`~domains.training.checkpoint` -- the trainer's checkpoint store;
* :mod:`~domains.training.distributed` -- rank, world size, the DDP wrapper;
* :mod:`~domains.training.rng` -- per-step generators and seeds.
"""

from domains.training.distributed import rank_and_world
from domains.training.job import TrainingJob
from domains.training.loop import TrainLoop, lr_factor, train

__all__ = ["train", "TrainLoop", "TrainingJob", "lr_factor", "rank_and_world"]
