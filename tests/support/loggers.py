"""`ListLogger`, the RunLogger the domain tests hand to a run (this module holds no tests).

It keeps each record as ``(step, values)`` in plain lists, so a test can compare what was logged step by step;
the engine's own logger (`benchmarks.running.run_logger.BufferedRunLogger`) is tested with the engine.
"""


class ListLogger:
    """The smallest RunLogger: keeps everything in lists, and its snapshot carries it through checkpoints."""

    def __init__(self):
        self.steps, self.evals, self.info = [], [], {}

    def log_step(self, step, values):
        self.steps.append((step, dict(values)))

    def log_eval(self, step, values):
        self.evals.append((step, dict(values)))

    def log_info(self, **info):
        self.info.update(info)

    def snapshot(self):
        return {"steps": list(self.steps), "evals": list(self.evals), "info": dict(self.info)}

    def restore(self, snapshot):
        self.steps, self.evals, self.info = list(snapshot["steps"]), list(snapshot["evals"]), dict(snapshot["info"])


class Killed(Exception):
    """Stands for the process being killed mid-run."""


class DyingLogger(ListLogger):
    """Raises :class:`Killed` when asked to log a training record at or after step ``die_at``."""

    def __init__(self, die_at: int):
        super().__init__()
        self.die_at = die_at

    def log_step(self, step, values):
        if step >= self.die_at:
            raise Killed
        super().log_step(step, values)
