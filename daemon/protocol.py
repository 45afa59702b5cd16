"""The daemon's wire protocol: control requests and replies, scan requests, job records.

A control request is one JSON object ``{"method": str, "params": {...}}`` and every reply is
``{"success": bool, "msg": str, "result": {...}}``. :func:`parse_request` turns raw bytes into a
method name and its validated parameters, or raises :class:`RequestError` whose message names the
problem (not JSON, not an object, unknown method, unknown field, wrong type, value out of range,
over :data:`MAX_REQUEST_BYTES`); :func:`error_reply` makes the reply for it.

This module imports no bluesky, ophyd or torch, so the console starts fast.
"""

from __future__ import annotations

import json
import math
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)

from dwellwise.units import parse_duration

MAX_REQUEST_BYTES = 1 << 20
"""Largest control request accepted, bytes (1 MiB); larger ones are answered with an error."""
MAX_BUDGET_S = 7 * 24 * 3600.0
"""Longest budget of one scan, seconds (a week)."""
MAX_PIXELS_PER_SIDE = 8192
"""Largest number of rows or columns of one scan."""


class JobState(StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    ABORTED = "aborted"
    INTERRUPTED = "interrupted"

    @property
    def finished(self) -> bool:
        """Whether the job will not change state again by itself."""
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.ABORTED)

    @property
    def active(self) -> bool:
        """Whether the job holds the RunEngine (running or paused)."""
        return self in (JobState.RUNNING, JobState.PAUSED)


class RequestError(ValueError):
    """A control request that cannot be served; the message names the problem."""


def _duration(value: Any) -> Any:
    """``"5ms"``, ``"2min"`` -> seconds; numbers pass through for the field's own checks."""
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
    return value


def _shape(value: Any) -> Any:
    """``"32x48"`` -> ``[32, 48]``; lists pass through for the field's own checks."""
    if isinstance(value, str):
        from dwellwise.units import parse_shape

        try:
            return list(parse_shape(value))
        except ValueError as exc:
            raise ValueError(str(exc)) from None
    if isinstance(value, (list, tuple)) and len(value) != 2:
        raise ValueError(f"shape must be [H, W] (two numbers), got {len(value)} values")
    return value


PositiveSeconds = Annotated[StrictFloat, BeforeValidator(_duration)]
Side = Annotated[StrictInt, Field(ge=1, le=MAX_PIXELS_PER_SIDE)]


class ScanRequest(BaseModel):
    """A scan on the simulated beamline, as the ``submit`` method takes it."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True)

    scene: StrictStr = Field(default="astronaut", min_length=1, max_length=200)
    """Painting scene of the simulated beamline (a built-in name such as ``astronaut``)."""
    shape: Annotated[tuple[Side, Side], BeforeValidator(_shape)] = (32, 32)
    """Region ``[H, W]`` in pixels (rows, columns); ``"32x48"`` is accepted too."""
    pixel_size: StrictFloat = Field(default=0.5, gt=0, le=100.0, allow_inf_nan=False)
    """Pitch, mm."""
    budget: PositiveSeconds = Field(gt=0, le=MAX_BUDGET_S, allow_inf_nan=False)
    """Total instrument time for the whole scan, seconds (``"2min"`` is accepted too)."""
    t0: PositiveSeconds = Field(default=0.005, gt=0, le=3600.0, allow_inf_nan=False)
    """First-pass dwell per pixel, seconds (``"5ms"`` is accepted too)."""
    policy: StrictStr = Field(default="auto", min_length=1, max_length=64)
    """Dwell policy of the later passes (``auto``, ``uniform``, ``bilevel``, ...)."""
    passes: StrictInt = Field(default=2, ge=1, le=16)
    """Number of passes in adaptive mode (1: only the uniform first pass)."""
    weights: list[StrictFloat] | dict[StrictStr, StrictFloat] | None = Field(
        default=None, max_length=256
    )
    """Per-element weights: one number per element, ``{element: weight}``, or null (equal)."""
    mode: Literal["adaptive", "raster"] = "adaptive"
    """``adaptive`` (uniform first pass, then policy passes) or ``raster`` (one uniform pass
    with the largest dwell that fits the budget)."""
    speedup: StrictFloat = Field(default=1.0, gt=0, le=1e4, allow_inf_nan=False)
    """Simulated instrument seconds per wall-clock second."""
    seed: StrictInt = Field(default=0, ge=0, le=2**32 - 1)
    """Random seed of the simulated painting and counting."""
    analysis: StrictBool = False
    """Whether to run the analysis models on the finished cube."""


SCAN_REQUEST_FIELDS = tuple(ScanRequest.model_fields)
"""The fields of a scan request, in order."""


class NoParams(BaseModel):
    """Methods without parameters."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class JobParams(BaseModel):
    """Methods about one job."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    job_id: StrictStr = Field(min_length=1, max_length=128)
    """Job id as ``submit`` returned it."""


class OptionalJobParams(BaseModel):
    """Methods that act on the current job unless a job is named."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    job_id: StrictStr | None = Field(default=None, min_length=1, max_length=128)
    """Job id; null for the current job."""


class JobsParams(BaseModel):
    """Parameters of ``jobs``."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    limit: StrictInt = Field(default=20, ge=1, le=1000)
    """How many of the most recent jobs to list."""


METHODS: dict[str, type[BaseModel]] = {
    "ping": NoParams,
    "status": NoParams,
    "submit": ScanRequest,
    "jobs": JobsParams,
    "job": JobParams,
    "pause": OptionalJobParams,
    "resume": OptionalJobParams,
    "abort": OptionalJobParams,
    "shutdown": NoParams,
}
"""Every control method and the model of its parameters."""


class Request(BaseModel):
    """A control request."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    method: StrictStr = Field(min_length=1, max_length=64)
    """Method name (see :data:`METHODS`)."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Method parameters (validated by the method's own model)."""


class Reply(BaseModel):
    """A control reply."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    success: bool
    """Whether the request was served."""
    msg: str = ""
    """What happened, or what was wrong with the request."""
    result: dict[str, Any] = Field(default_factory=dict)
    """The method's answer."""


class ScanProgressFields(BaseModel):
    """How far a job's scan has got: shared by the job record and the ``progress`` event."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    pass_number: int = 0
    """Pass being measured (1-based; 0 before the first row)."""
    passes: int = 1
    """Passes planned."""
    rows_done: int = 0
    """Rows completed in the current pass."""
    rows_total: int = 0
    """Rows per pass."""
    rows_done_all: int = 0
    """Rows completed over all passes."""
    budget_s: float | None = None
    """Instrument-time budget, seconds."""
    used_s: float = 0.0
    """Instrument time used so far, seconds."""
    left_s: float | None = None
    """Instrument time left in the budget, seconds."""
    policy: str | None = None
    """Policy that decided the dwell of the latest pass."""
    fell_back: bool = False
    """Whether the requested policy missed its deadline and the fallback answered."""
    train_device: str | None = None
    """Where a learned policy trained (``cuda``, ``cpu``; ``-`` for closed-form policies)."""
    compute_s: float = 0.0
    """Instrument seconds between passes spent computing dwell maps (the budget's share)."""
    train_s: float = 0.0
    """Wall seconds a learned policy spent training and inferring (part of ``compute_s``)."""
    run_uid: str | None = None
    """Bluesky run start uid."""


class Job(ScanProgressFields):
    """A job as the ledger records it and the ``job`` method reports it."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    job_id: str
    """Unique id (``YYYYmmdd-HHMMSS-xxxxxx``)."""
    state: JobState
    """Current state."""
    request: dict[str, Any]
    """The scan request, all fields filled in."""
    cube_file: str
    """Cube file (HDF5) the scan writes."""
    error: str | None = None
    """Why the job failed, was aborted or interrupted."""
    created: float
    """Submission time, Unix seconds."""
    started: float | None = None
    """When the scan began, Unix seconds."""
    finished: float | None = None
    """When it ended, Unix seconds."""
    updated: float
    """Last change of this record, Unix seconds."""


def parse_request(raw: bytes) -> tuple[str, BaseModel]:
    """Bytes from the wire -> (method, validated params); :class:`RequestError` otherwise."""
    if len(raw) > MAX_REQUEST_BYTES:
        raise RequestError(
            f"request too large: {len(raw):,} bytes, the limit is {MAX_REQUEST_BYTES:,} bytes (1 MiB)"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(f"request is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestError(
            f"request is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise RequestError("request is not JSON: nested too deeply") from None
    return parse_object(obj)


def parse_object(obj: Any) -> tuple[str, BaseModel]:
    """A decoded JSON value -> (method, validated params); :class:`RequestError` otherwise."""
    if not isinstance(obj, dict):
        raise RequestError(
            f'request must be a JSON object {{"method": ..., "params": {{...}}}}, '
            f"got {_json_type(obj)}"
        )
    try:
        req = Request.model_validate(obj)
    except ValidationError as exc:
        raise RequestError(f"bad request: {describe_errors(exc)}") from None
    model = METHODS.get(req.method)
    if model is None:
        raise RequestError(f"unknown method {_clip(req.method)!r}; methods: {', '.join(METHODS)}")
    try:
        params = model.model_validate(req.params)
    except ValidationError as exc:
        raise RequestError(f"bad params for {req.method}: {describe_errors(exc)}") from None
    return req.method, params


def describe_errors(exc: ValidationError) -> str:
    """pydantic's errors as one line that names each bad field and what is wrong with it."""
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"] if not _is_union_tag(p)) or "(value)"
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown field {loc!r}")
        elif err["type"] == "missing":
            parts.append(f"missing field {loc!r}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            parts.append(f"{loc}: {msg} (got {_clip(repr(err.get('input')))})")
    unique = list(dict.fromkeys(parts))
    return "; ".join(unique[:8]) + (f"; and {len(unique) - 8} more" if len(unique) > 8 else "")


def _is_union_tag(part: Any) -> bool:
    """pydantic puts the member type of a union into the error location; leave it out."""
    return isinstance(part, str) and (
        part.startswith(("list[", "dict[", "tuple[", "function-"))
        or part in ("str", "float", "int")
    )


def error_reply(msg: str) -> dict[str, Any]:
    """The reply to a request that was not served."""
    return {"success": False, "msg": msg, "result": {}}


def ok_reply(msg: str = "", **result: Any) -> dict[str, Any]:
    """The reply to a served request."""
    return {"success": True, "msg": msg, "result": result}


def encode(obj: Any) -> bytes:
    """JSON bytes of a reply, event or document (numpy values converted, NaN/inf as null)."""
    return json.dumps(jsonable(obj), separators=(",", ":"), allow_nan=False).encode()


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars and arrays, tuples, sets and paths made JSON-ready."""
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in obj]
    tolist = getattr(obj, "tolist", None)  # numpy arrays and scalars
    if callable(tolist):
        return jsonable(tolist())
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    return str(obj)


def _json_type(obj: Any) -> str:
    return {
        list: "an array",
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "a boolean",
        type(None): "null",
    }.get(type(obj), type(obj).__name__)


def _clip(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."
