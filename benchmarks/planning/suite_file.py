"""Suite files: the same request as the command line, declared in TOML (or YAML), parsed, never evaluated.

Example (``python run_all.py --suite my_suite.toml``)::

    preset = "smoke"                 # smoke | quick | cpu | paper
    study = "main"                   # or a list: ["main", "lr_sweep"]; default: each domain's default study
    domains = ["quadratic", "weather"]
    seeds = 3                        # seeds 0..2
    lrs = [1e-3, 3e-3]               # replaces the study's LRs

    # replaces the study's recipes; a string uses the --optimizers syntax, a table names hyper-parameters
    optimizers = ["adam", "stable_spam:gamma1=0.85"]

    [[optimizer]]                    # table form; a list value is a grid over its elements
    name = "stable_spam"
    gamma1 = [0.5, 0.7, 0.9]         # three runs; write a tuple value as a string: betas = "0.9/0.95"

    [set.weather]                    # domain config fields; a list is a grid
    severity = [0, 2, 5]

    [budget]                         # run length per domain, in the domain's budget unit (default: the
    quadratic = 200                  # preset's); written into the config field the domain names (``steps``)

    # top-level keys (before any [table]):
    domain_module = "my_domain.py"   # or a list; a file (relative to this file) or a dotted module that calls
                                     # domains.register(MyDomain); --domain-module adds to these
    out = "my_study"                 # results folder, relative to the results root and inside it (--out wins)

Errors name the file and the key, on one line, showing values shortened (``[1, 2, 3, 4, ...]``). Command-line
flags given with ``--suite`` win over the file.

Limits (bad input beyond them, exit code 2): the file is UTF-8 text of at most :data:`MAX_FILE_BYTES`; its
values nest at most :data:`MAX_DEPTH` deep and hold at most :data:`MAX_VALUES` values in all, counted with
YAML aliases expanded (a few hundred bytes of nested aliases can stand for billions of values).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomllib

from benchmarks.errors import BadInput, short_repr
from benchmarks.planning.request import (
    OptimizerItem,
    SuiteRequest,
    check_lrs,
    expand_hparam_grid,
    parse_optimizer_item,
    parse_value,
)
from benchmarks.suggest import did_you_mean

MAX_FILE_BYTES = 1_000_000
MAX_DEPTH = 16  # a suite file needs 4 (set.domain.field = [values]); tables of tables nest a little more
MAX_VALUES = 100_000
KEYS = ("preset", "study", "domains", "seeds", "lrs", "optimizers", "optimizer", "set", "budget", "domain_module",
        "out")
_FIELD_KEYS = {"preset": "preset", "studies": "study", "domains": "domains", "seeds": "seeds", "lrs": "lrs",
               "optimizers": "optimizers", "sets": "set", "budgets": "budget", "domain_modules": "domain_module",
               "out": "out"}  # SuiteRequest field -> file key


def load_suite_file(path: str | Path) -> tuple[SuiteRequest, set[str]]:
    """Parse and validate a suite file; returns the request and the names of the fields it set."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise BadInput(f"suite file not found: {where}")
    data = _parse(path, where)
    if not isinstance(data, dict):
        raise BadInput(f"{where}: the file must hold a table of keys, not {type(data).__name__}")
    unknown = sorted((key for key in data if key not in KEYS), key=str)
    if unknown:
        raise BadInput(f"{where}: unknown key {short_repr(unknown[0])}{did_you_mean(unknown[0], KEYS)} "
                       f"(known: {', '.join(KEYS)})")
    for key, value in data.items():
        _check_size(value, where, key)

    request, given = SuiteRequest(), set()
    if "preset" in data:
        request.preset = _expect(data["preset"], str, where, "preset")
        given.add("preset")
    if "study" in data:
        request.studies = _strings(data["study"], where, "study")
        given.add("studies")
    if "domains" in data:
        request.domains = _strings(data["domains"], where, "domains")
        given.add("domains")
    if "seeds" in data:
        request.seeds = _expect(data["seeds"], int, where, "seeds")
        given.add("seeds")
    if "lrs" in data:
        values = data["lrs"] if isinstance(data["lrs"], list) else [data["lrs"]]
        lrs = tuple(_expect(v, (int, float), where, "lrs") for v in values)
        request.lrs = check_lrs(tuple(float(v) for v in lrs), f"{where}: lrs")
        given.add("lrs")
    items = _optimizer_items(data, where)
    if items is not None:
        request.optimizers = items
        given.add("optimizers")
    if "set" in data:
        request.sets = _sets(data["set"], where)
        given.add("sets")
    if "budget" in data:
        table = _expect(data["budget"], dict, where, "budget")
        request.budgets = {domain: _positive(v, where, f"budget.{domain}") for domain, v in table.items()}
        given.add("budgets")
    if "domain_module" in data:
        refs = _strings(data["domain_module"], where, "domain_module")
        request.domain_modules = tuple(_relative_to(path.parent, ref) for ref in refs)
        given.add("domain_modules")
    if "out" in data:
        request.out = _expect(data["out"], str, where, "out")
        given.add("out")
    request.origins = {name: f"{where}: {key}" for name, key in _FIELD_KEYS.items() if name in given}
    return request, given


def _relative_to(folder: Path, ref: str) -> str:
    """A domain module reference from a suite file: a file path relative to the file's folder; a dotted
    module name as it is."""
    if ref.endswith(".py") or "/" in ref or "\\" in ref:
        return str((folder / Path(ref).expanduser()).resolve())
    return ref


def _parse(path: Path, where: str) -> Any:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise BadInput(f"{where}: the file is {size} bytes; a suite file may have at most {MAX_FILE_BYTES}")
        raw = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"{where}: cannot read the suite file ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{where}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); save the "
                       f"file as UTF-8") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            return _parse_yaml(text, where)
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise BadInput(f"{where}: malformed TOML: {exc}") from None
    except RecursionError:
        raise BadInput(f"{where}: values nested too deeply (a suite file nests at most {MAX_DEPTH} levels)") from None


def _parse_yaml(text: str, where: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        message = " ".join(str(exc).split())
        raise BadInput(f"{where}: malformed YAML: {message[:300]}") from None


def _check_size(value: Any, where: str, key: str) -> None:
    """BadInput when ``value`` nests deeper than MAX_DEPTH or holds more than MAX_VALUES values (YAML aliases
    counted as often as they are used); walks at most MAX_VALUES nodes, without recursion."""
    count, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise BadInput(f"{where}: key {short_repr(key)} holds more than {MAX_VALUES} values (YAML aliases "
                           f"expanded); a suite this size is not one to declare in a file")
        if depth > MAX_DEPTH:
            raise BadInput(f"{where}: key {short_repr(key)} nests more than {MAX_DEPTH} levels deep")
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
            count += len(node)  # the keys
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)


def _expect(value: Any, kind, where: str, key: str) -> Any:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:  # TOML true is not an integer here
        ok = False
    else:
        ok = isinstance(value, kinds)
    if not ok:
        names = " or ".join({int: "an integer", float: "a number", str: "a string", dict: "a table",
                             list: "a list"}[k] for k in kinds)
        raise BadInput(f"{where}: key {key!r} must be {names}, got {short_repr(value)}")
    return value


def _positive(value: Any, where: str, key: str) -> int:
    if _expect(value, int, where, key) < 1:
        raise BadInput(f"{where}: key {key!r} must be at least 1, got {short_repr(value)}")
    return value


def _strings(value: Any, where: str, key: str) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    return tuple(_expect(v, str, where, key) for v in values)


def _optimizer_items(data: dict, where: str) -> tuple[OptimizerItem, ...] | None:
    if "optimizers" not in data and "optimizer" not in data:
        return None
    items: list[OptimizerItem] = []
    entries = []
    for key in ("optimizers", "optimizer"):
        value = data.get(key, [])
        if isinstance(value, (str, dict)):
            value = [value]
        if not isinstance(value, list):
            raise BadInput(f"{where}: key {key!r} must be a list of optimizer names or tables, got {short_repr(value)}")
        entries += value
    for index, entry in enumerate(entries):
        origin = f"{where}: optimizer {index + 1}"
        if isinstance(entry, str):
            items.append(parse_optimizer_item(entry, origin))
        elif isinstance(entry, dict):
            entry = dict(entry)
            name = entry.pop("name", None)
            if not isinstance(name, str) or not name:
                raise BadInput(f"{origin}: a table needs a string 'name'")
            hparams = {key: _hparam_value(value) for key, value in entry.items()}
            items.extend(expand_hparam_grid(name, hparams, origin))
        else:
            raise BadInput(f"{origin}: expected a string or a table, got {short_repr(entry)}")
    if not items:
        raise BadInput(f"{where}: 'optimizers' is empty")
    return tuple(items)


def _hparam_value(value: Any) -> Any:
    if isinstance(value, str):
        return parse_value(value)
    if isinstance(value, list):
        return [_hparam_value(v) if not isinstance(v, list) else tuple(v) for v in value]
    return value


def _sets(table: Any, where: str) -> dict[str, dict[str, tuple]]:
    table = _expect(table, dict, where, "set")
    sets: dict[str, dict[str, tuple]] = {}
    for domain, fields in table.items():
        fields = _expect(fields, dict, where, f"set.{domain}")
        for name, value in fields.items():
            values = value if isinstance(value, list) else [value]
            if not values or any(isinstance(v, (dict, list)) for v in values):
                raise BadInput(f"{where}: set.{domain}.{name} must be a value or a list of values, "
                               f"got {short_repr(value)}")
            # Text goes through the domain's own field parser, which checks the type and names the field.
            sets.setdefault(domain, {})[name] = tuple(_field_text(v) for v in values)
    return sets


def _field_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
