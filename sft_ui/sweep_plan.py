"""A sweep request expanded into its points (a grid, or random draws), every point checked as an SFTConfig."""

from __future__ import annotations

import itertools
import json
import math
import random
import types
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sft_ui import settings
from sft_ui.config import MAX_NAME_LENGTH, SFTConfig, Text, parse_config

MAX_FIELDS = 3  # the form says "vary up to three fields"; more makes a sweep nobody can read
FIXED = ("metric_for_best",)  # a sweep ranks its jobs by it, so all of them share one value
SHORT = {"learning_rate": "lr", "lora_r": "r", "lora_alpha": "alpha", "lora_dropout": "dropout",
         "batch_size": "bs", "max_steps": "steps", "num_train_epochs": "epochs", "weight_decay": "wd",
         "warmup_ratio": "warmup", "gradient_accumulation_steps": "accum", "max_seq_length": "len",
         "lr_scheduler_type": "sched"}
Mode = Literal["grid", "random"]
Bound = Annotated[float, Field(allow_inf_nan=False, strict=True)]


class SweepRequest(BaseModel):
    """Body of POST /sweeps: a config and either `grid` (every combination) or `random` with `trials` draws."""

    model_config = ConfigDict(extra="forbid")
    name: Text | None = Field(None, max_length=MAX_NAME_LENGTH,
                              description="The sweep's name; its jobs are called '<name> · lr=0.0001 r=8' "
                              "(default: config.job_name, else base_model)")
    config: dict[str, Any] = Field(default_factory=dict,
                                   description="SFTConfig fields every job shares; the varied fields override them")
    grid: dict[str, list[Any]] | None = Field(
        None, description='Values per field (at most 3 fields); one job per combination, e.g. '
        '{"learning_rate": [1e-4, 3e-4], "lora_r": [8, 16]}')
    random: dict[str, list[Bound]] | None = Field(
        None, description='[low, high] per number field (at most 3); `trials` jobs, each drawn at random: whole '
        'numbers for whole-number fields, else log-uniform when low > 0 and high/low >= 10, else uniform')
    trials: int | None = Field(None, ge=1, description="How many jobs `random` draws")
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="Makes `random`'s draws repeatable "
                             "(default: a new seed, kept in the sweep's record)")


@dataclass
class Plan:
    """What a valid request makes: one config and one point (varied field -> value) per job, in queue order."""

    name: str
    config: dict[str, Any]  # what every job shares: the full config without the varied fields
    mode: Mode
    fields: list[str]
    points: list[dict[str, Any]]
    configs: list[SFTConfig]
    spec: dict[str, Any] = field(default_factory=dict)  # {"grid": ...} or {"random": ..., "trials", "seed"}


def plan(request: dict[str, Any] | SweepRequest) -> Plan:
    """Check a sweep request and expand it; ValueError (or pydantic's ValidationError) naming every bad field."""
    if not isinstance(request, dict | SweepRequest):
        raise TypeError(f"sweep: must be an object with config and grid (or random and trials), got "
                        f"{type(request).__name__}")
    req = request if isinstance(request, SweepRequest) else SweepRequest.model_validate(request)
    mode: Mode = "random" if req.random is not None and req.grid is None else "grid"
    varied: dict[str, Any] = (req.random if mode == "random" else req.grid) or {}
    _raise(_check_request(req, mode, varied))
    if mode == "grid":
        points = [dict(zip(varied, values, strict=True)) for values in itertools.product(*varied.values())]
        spec: dict[str, Any] = {"grid": varied}
    else:
        _raise(_check_bounds(req.config, varied))
        seed = req.seed if req.seed is not None else random.SystemRandom().randrange(2**31)
        points = draw(varied, req.trials or 1, seed)
        spec = {"random": {name: [_typed(name, b) for b in pair] for name, pair in varied.items()},
                "trials": req.trials, "seed": seed}
    configs = _validate(req.config, points, mode)
    name = req.name or str(req.config.get("job_name") or "") or configs[0].base_model
    named = [cfg.model_copy(update={"job_name": job_name(name, point)}) for cfg, point in zip(configs, points,
                                                                                                strict=True)]
    shared = configs[0].model_dump(exclude=set(varied))
    if "job_name" in shared:  # the request's, not the first job's
        shared["job_name"] = req.config.get("job_name", "")
    return Plan(name, shared, mode, list(varied), points, named, spec)


def _raise(errors: list[str]) -> None:
    if errors:
        raise ValueError("; ".join(errors))


def _check_request(req: SweepRequest, mode: Mode, varied: dict[str, Any]) -> list[str]:
    """What is wrong with the request's shape: both or neither of grid and random, fields, sizes, trials."""
    most = settings.max_sweep_jobs()
    limit = f"more than the {most} jobs a sweep may have (SFT_UI_MAX_SWEEP_JOBS={most})"
    if req.grid is not None and req.random is not None:
        return ["grid, random: give one of them, not both"]
    if not varied:
        return [f'{mode}: name the fields to vary, e.g. {{"learning_rate": [1e-4, 3e-4]}}'
                + (" (or random with trials)" if mode == "grid" else "")]
    errors = []
    total = math.prod(len(values) for values in varied.values()) if mode == "grid" else req.trials or 0
    if len(varied) > MAX_FIELDS:
        errors.append(f"{mode}: vary at most {MAX_FIELDS} fields, got {len(varied)} ({', '.join(varied)})")
    for name, values in varied.items():
        where = f"{mode}.{name}"
        if name not in SFTConfig.model_fields:
            errors.append(f"{where}: not a config field")
        elif name in FIXED:
            errors.append(f"{where}: cannot be varied, the sweep ranks its jobs by it; set it in config")
        elif mode == "grid" and total <= most:  # else the size alone is the error
            errors.extend(_check_values(where, values))
        elif number_type(name) is None:
            errors.append(f"{where}: random draws only numbers; vary this field with grid")
    if mode == "grid":
        if req.trials is not None or req.seed is not None:
            errors.append(f"{'trials' if req.trials is not None else 'seed'}: only with random "
                          "(a grid makes one job per combination)")
        if total > most:
            product = " x ".join(str(len(v)) for v in varied.values()) + " = " if len(varied) > 1 else ""
            errors.append(f"grid: {product}{total} jobs, {limit}")
    elif req.trials is None:
        errors.append(f"trials: how many jobs to draw (1 to {most}) is required with random")
    elif req.trials > most:
        errors.append(f"trials: {req.trials} jobs, {limit}")
    return errors


def _check_values(where: str, values: list[Any]) -> list[str]:
    """A grid field's values: at least one, none twice."""
    if not values:
        return [f"{where}: an empty list; give at least one value"]
    twice = [value for i, value in enumerate(values) if value in values[:i]]
    return [f"{where}: {twice[0]!r:.80} appears twice"] if twice else []


def _check_bounds(config: dict[str, Any], bounds: dict[str, list[float]]) -> list[str]:
    """Each random field's [low, high]: two numbers, low <= high, whole for whole-number fields, both valid."""
    errors = []
    for name, pair in bounds.items():
        where = f"random.{name}"
        if len(pair) != 2:
            errors.append(f"{where}: give [low, high], got {len(pair)} values")
            continue
        low, high = pair
        if low > high:
            errors.append(f"{where}: low {low:g} is above high {high:g}")
        elif number_type(name) is int and not all(float(b).is_integer() for b in pair):
            errors.append(f"{where}: a whole-number field needs whole bounds, got [{low:g}, {high:g}]")
        else:
            for bound in pair:  # the field's own limits; rules between fields are checked on each point
                errors.extend(_point_errors(config, {name: _typed(name, bound)}, "random", varied_only=True))
    return list(dict.fromkeys(errors))


def number_type(name: str) -> type | None:
    """int or float for a number field of SFTConfig (None allowed beside it), else None (bool is no number)."""
    annotation = SFTConfig.model_fields[name].annotation
    found = {arg for arg in typing.get_args(annotation) if arg is not type(None)} \
        if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union else {annotation}
    return found.pop() if len(found) == 1 and found & {int, float} else None


def _typed(name: str, value: float) -> int | float:
    return int(value) if number_type(name) is int else value


def draw(bounds: dict[str, list[float]], trials: int, seed: int) -> list[dict[str, Any]]:
    """`trials` points drawn with random.Random(seed): whole numbers uniformly for whole-number fields; other
    numbers log-uniformly when low > 0 and high/low >= 10 (learning rates), else uniformly, rounded to 3
    significant digits (kept within the bounds) so that names and configs stay readable."""
    rng = random.Random(seed)
    points = []
    for _ in range(trials):
        point: dict[str, Any] = {}
        for name, (low, high) in bounds.items():
            if number_type(name) is int:
                point[name] = rng.randint(int(low), int(high))
                continue
            if low > 0 and high / low >= 10:
                value = math.exp(rng.uniform(math.log(low), math.log(high)))
            else:
                value = rng.uniform(low, high)
            point[name] = min(high, max(low, float(f"{value:.3g}")))
        points.append(point)
    return points


def _validate(config: dict[str, Any], points: list[dict[str, Any]], mode: Mode) -> list[SFTConfig]:
    """Every point's SFTConfig; ValueError naming each distinct bad field and value before any job exists."""
    configs, errors = [], []
    for point in points:
        found = _point_errors(config, point, mode)
        if found:
            errors.extend(found)
        else:
            configs.append(parse_config({**config, **point}))
    _raise(list(dict.fromkeys(errors)))
    return configs


def _point_errors(config: dict[str, Any], point: dict[str, Any], mode: Mode, varied_only: bool = False) -> list[str]:
    """What SFTConfig says about `config` with `point` over it: a varied field as '<mode>.<field>: <value>: ...',
    another as 'config.<field>: ...', a rule between fields with the point's label (only the first with
    `varied_only`)."""
    try:
        parse_config({**config, **point})
    except ValidationError as exc:
        errors = []
        for item in exc.errors():
            loc = [str(part) for part in item["loc"]]
            msg = item["msg"].removeprefix("Value error, ")
            if loc and loc[0] in point:
                errors.append(f"{mode}.{'.'.join(loc)}: {point[loc[0]]!r:.80}: {msg}")
            elif not varied_only and loc:
                errors.append(f"config.{'.'.join(loc)}: {msg} (got {item.get('input')!r:.80})")
            elif not varied_only:
                errors.append(f"{mode} point {label(point)}: {msg}")
        return errors
    return []


def label(point: dict[str, Any]) -> str:
    """A point in a few characters: 'lr=0.0001 r=8'."""
    return " ".join(f"{SHORT.get(name, name)}={_short(value)}" for name, value in point.items())


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def job_name(base: str, point: dict[str, Any]) -> str:
    """'<base> · lr=0.0001 r=8', the base cut so that the whole fits a job name."""
    tail = f" · {label(point)}"
    room = MAX_NAME_LENGTH - len(tail)
    if room < 1:
        return tail[3:][:MAX_NAME_LENGTH]
    return (base if len(base) <= room else base[:room - 1] + "…") + tail
