"""The store's SQLite schema (version :data:`SCHEMA_VERSION`, kept in table ``schema``) and its column lists.

``runs``        one row per run: the spec columns (domain, preset, recipe, variant, lr, seed, hparams JSON),
                the config the run used (JSON) and its ``budget`` (the run length it trained for, the value of
                the domain's budget field; NULL in stores written before it was recorded), ``status``
                (finished | diverged | failed), ``diverged_step``, ``error`` (one line) and ``traceback``, the
                headline ``metric`` / ``metric_value`` / ``higher_is_better``, all final metrics as JSON,
                ``info`` (what the domain passed to ``log_info``), wall time and UTC timestamps.
``study_runs``  (study, run_id): which studies asked for a run. A run shared by two studies is stored once.
``curves``      one row per (run, kind, series): ``kind`` is ``train`` (per-step telemetry) or ``eval``;
                ``steps`` (int64) and ``vals`` (float64) are little-endian numpy arrays stored as BLOBs, so a
                20k-step run with 8 series is 8 rows, written and read in milliseconds.
``environment`` one row per run: git commit, package versions, python, torch, hostname, CPU, GPU, device.
"""

SCHEMA_VERSION = 1
STATUSES = ("finished", "diverged", "failed")

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS schema (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    domain TEXT NOT NULL,
    preset TEXT NOT NULL,
    recipe TEXT NOT NULL,
    variant TEXT NOT NULL,
    lr REAL,
    seed INTEGER NOT NULL,
    budget INTEGER,
    budget_unit TEXT,
    hparams TEXT NOT NULL,
    config TEXT NOT NULL,
    overrides TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('finished', 'diverged', 'failed')),
    diverged_step INTEGER,
    error TEXT,
    traceback TEXT,
    metric TEXT,
    metric_value REAL,
    higher_is_better INTEGER,
    final_metrics TEXT NOT NULL,
    info TEXT NOT NULL,
    wall_seconds REAL,
    started_at TEXT,
    finished_at TEXT
);
CREATE TABLE IF NOT EXISTS study_runs (
    study TEXT NOT NULL,
    run_id TEXT NOT NULL,
    PRIMARY KEY (study, run_id)
);
CREATE TABLE IF NOT EXISTS curves (
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('train', 'eval')),
    name TEXT NOT NULL,
    n INTEGER NOT NULL,
    steps BLOB NOT NULL,
    vals BLOB NOT NULL,
    PRIMARY KEY (run_id, kind, name)
);
CREATE TABLE IF NOT EXISTS environment (
    run_id TEXT PRIMARY KEY,
    git_commit TEXT,
    git_dirty INTEGER,
    python TEXT,
    torch TEXT,
    packages TEXT,
    hostname TEXT,
    platform TEXT,
    cpu TEXT,
    gpu TEXT,
    device TEXT
);
"""

RUN_COLUMNS = (
    "run_id", "domain", "preset", "recipe", "variant", "lr", "seed", "budget", "budget_unit", "hparams", "config",
    "overrides", "status", "diverged_step", "error", "traceback", "metric", "metric_value", "higher_is_better",
    "final_metrics", "info", "wall_seconds", "started_at", "finished_at",
)
ENV_COLUMNS = ("git_commit", "git_dirty", "python", "torch", "packages", "hostname", "platform", "cpu", "gpu", "device")
