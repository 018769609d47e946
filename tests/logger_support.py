"""`ListLogger`, the RunLogger the domain tests hand to a run (this module holds no tests).

It keeps each record as ``(step, values)`` in plain lists, so a test can compare what was logged step by step;
the engine's own logger (`benchmarks.logger.BufferedRunLogger`) is tested with the engine.
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
