"""The daemon's configuration: a TOML file validated with pydantic.

::

    [daemon]
    control = "tcp://127.0.0.1:60715"     # REQ/REP control socket
    events = "tcp://127.0.0.1:60716"      # PUB: status, progress, job, log
    documents = "tcp://127.0.0.1:60717"   # PUB: Bluesky documents (bluesky.callbacks.zmq format)
    data_dir = "dwellwise-data"           # ledger and cube files; relative to this file
    insecure = false                      # allow non-loopback addresses without keys

    [security]                            # CURVE on all three sockets (dwellwise keygen)
    server_secret_key = "keys/server.key_secret"
    allow_list = "keys/allow.toml"        # [clients.NAME] role = ..., public_key = ...

    [beamline]                            # the simulated beamline (scenes, sim stage)
    kind = "simulated"

    [devices.stage]                       # which devices are real (default: all simulated)
    kind = "zaber"                        # "sim" | "zaber"
    port = "/dev/ttyUSB0"
    [devices.sdd]
    kind = "epics-mca"                    # "sim" | "epics-mca"
    prefix = "XRF:mca1"
    elements = ["Ca_K", "Fe_K", "Pb_L"]

    [defaults]                            # fills the fields a scan request leaves out
    policy = "auto"
    speedup = 1.0

Every table and key is checked; an unknown key or a bad value is a :class:`ConfigError` that
names it (``daemon.contol: unknown key``, ``devices.stage.port: missing; ...``).

``[beamline]`` describes the simulated beamline: the painting scenes and the simulated stage's
limits and kinematics. ``[devices]`` says which devices are real. Without it (or with ``kind =
"sim"`` for both) every job gets a freshly built simulated beamline, as before. A real device
(``zaber``, ``epics-mca``) is opened once by the daemon and serves every job; a device left
``sim`` beside a real one is simulated on the real one's clock (a simulated detector reads the
request's scene where the real stage is). The simulated stage's settings stay in ``[beamline]``;
setting them there while the stage is a real one is an error (they would be ignored).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from dwellwise.daemon.keys import NAME_PATTERN, AllowedClient, Role, check_z85_key
from dwellwise.daemon.protocol import ScanRequest, describe_errors
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

DEFAULT_CONTROL = "tcp://127.0.0.1:60715"
"""Default control socket address."""
DEFAULT_EVENTS = "tcp://127.0.0.1:60716"
"""Default events socket address."""
DEFAULT_DOCUMENTS = "tcp://127.0.0.1:60717"
"""Default documents socket address."""
DEFAULT_DATA_DIR = Path("dwellwise-data")
"""Default data directory (relative to the working directory)."""


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file and the key."""


def _address(value: Any) -> Any:
    if isinstance(value, str) and "://" not in value:
        raise ValueError(f"address must look like tcp://HOST:PORT or ipc:///path, got {value!r}")
    return value


Address = Annotated[StrictStr, BeforeValidator(_address)]


class DaemonSection(BaseModel):
    """``[daemon]``: sockets, data directory, limits."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    control: Address = DEFAULT_CONTROL
    """Control socket (ROUTER speaking REQ/REP), ``tcp://HOST:PORT``; port 0 picks a free one."""
    events: Address = DEFAULT_EVENTS
    """Event socket (PUB): topics ``status``, ``progress``, ``job``, ``log``."""
    documents: Address = DEFAULT_DOCUMENTS
    """Document socket (PUB) in the wire format of ``bluesky.callbacks.zmq.Publisher``."""
    data_dir: Path = DEFAULT_DATA_DIR
    """Where the ledger (``ledger.sqlite``) and the cube files (``<job_id>.h5``) go."""
    insecure: StrictBool = False
    """Allow binding to non-loopback addresses without encryption (logged loudly)."""
    max_queue: StrictInt = Field(default=100, ge=1, le=10_000)
    """Most jobs waiting in the queue; more submissions are refused."""
    status_interval: StrictFloat = Field(default=5.0, gt=0, le=3600)
    """Seconds between ``status`` events when nothing changes (a heartbeat)."""
    progress_interval: StrictFloat = Field(default=0.0, ge=0, le=60)
    """Least wall seconds between two ``progress`` events of a job (0: one per row)."""


class BeamlineSection(BaseModel):
    """``[beamline]``: the devices the daemon drives."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    kind: Literal["simulated"] = "simulated"
    """Only the simulated beamline exists yet."""
    allow_scene_files: StrictBool = False
    """Whether a scan request may name an image file on the daemon's host as its scene."""
    limits_x: tuple[float, float] | None = None
    """Soft limits of the X axis ``[low, high]``, mm (None: -10..310, widened to the scene)."""
    limits_y: tuple[float, float] | None = None
    """Soft limits of the Y axis ``[low, high]``, mm (None: as X)."""
    v_max: float = Field(default=100.0, gt=0, le=10_000, allow_inf_nan=False)
    """Top speed of each axis, mm/s."""
    a_max: float = Field(default=1000.0, gt=0, le=1e6, allow_inf_nan=False)
    """Acceleration and braking of each axis, mm/s²."""
    settle_s: float = Field(default=0.0, ge=0, le=10, allow_inf_nan=False)
    """Extra settling after each row step, s."""

    def stage_options(self) -> dict:
        """Keyword arguments of ``sim_beamline`` for the stage (kinematics, limits)."""
        from dwellwise.simulators.kinematics import Kinematics

        options: dict = {
            "kinematics": Kinematics(v_max=self.v_max, a_max=self.a_max, settle_s=self.settle_s)
        }
        if self.limits_x is not None or self.limits_y is not None:
            x = self.limits_x or self.limits_y
            options["limits"] = (tuple(x), tuple(self.limits_y or x))
        return options


SIM_STAGE_KEYS = ("limits_x", "limits_y", "v_max", "a_max", "settle_s")
"""``[beamline]`` keys that configure the simulated stage only."""
DEVICE_KINDS = {"stage": ("sim", "zaber"), "sdd": ("sim", "epics-mca")}
"""The kinds of each device in ``[devices]``."""


def _pv_name(value: Any) -> Any:
    if isinstance(value, str) and (not value or any(c.isspace() for c in value)):
        raise ValueError(f"must be a PV name without spaces, e.g. 'XRF:mca1', got {value!r}")
    return value


def _element(value: Any) -> Any:
    """An element channel: symbol, underscore, line family (``Fe_K``, ``Pb_L``, ``Hg_M``)."""
    if isinstance(value, str) and not re.fullmatch(r"[A-Z][a-z]?_[KLM]", value):
        raise ValueError(f"{value!r} is not an element channel like 'Fe_K', 'Pb_L' or 'Hg_M'")
    return value


def _axis_address(value: Any) -> Any:
    """``[device, axis]``: Zaber device address 1-99 and axis number 1-9."""
    if isinstance(value, list | tuple) and len(value) == 2 and all(type(v) is int for v in value):
        device, axis = value
        if not (1 <= device <= 99 and 1 <= axis <= 9):
            raise ValueError(f"must be [device 1-99, axis 1-9], got {list(value)}")
    return value


AxisAddress = Annotated[tuple[StrictInt, StrictInt], BeforeValidator(_axis_address)]
Limits = tuple[StrictFloat, StrictFloat]


def _limits(value: Limits | None, key: str) -> Limits | None:
    if value is not None and not value[0] < value[1]:
        raise ValueError(f"{key} must be [low, high] with low < high, got {list(value)}")
    return value


class SimStageDevice(BaseModel):
    """``[devices.stage] kind = "sim"``: the simulated stage, with ``[beamline]``'s limits and
    kinematics."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    kind: Literal["sim"]
    """``sim``."""

    def describe(self) -> str:
        return "simulated X/Y fly-scan stage"


class ZaberStageDevice(BaseModel):
    """``[devices.stage] kind = "zaber"``: an X/Y stage on Zaber controllers over a serial line
    (:class:`~dwellwise.drivers.zaber.ZaberStage`)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    kind: Literal["zaber"]
    """``zaber``."""
    port: StrictStr = Field(min_length=1, max_length=4096)
    """Serial port of the daisy chain, e.g. ``/dev/ttyUSB0`` or ``/dev/serial/by-id/...``."""
    baudrate: Literal[9600, 19200, 38400, 57600, 115200] = 115200
    """Baud rate the controllers are set to (Zaber's default is 115200)."""
    x_axis: AxisAddress = (1, 1)
    """``[device, axis]`` of the X axis on the chain."""
    y_axis: AxisAddress = (2, 1)
    """``[device, axis]`` of the Y axis on the chain."""
    microstep_mm: StrictFloat | tuple[StrictFloat, StrictFloat] | None = None
    """Microstep length, mm: one value or ``[x, y]`` (default 0.49609375e-3, Zaber X-LSQ)."""
    offset_mm: tuple[StrictFloat, StrictFloat] = (10.0, 10.0)
    """Device position (mm from home) of stage coordinate 0, ``[x, y]``."""
    limits_x: Limits | None = None
    """Soft limits of X ``[low, high]`` in stage mm, within the devices' own travel (default:
    the devices' ``limit.min``/``limit.max``)."""
    limits_y: Limits | None = None
    """Soft limits of Y ``[low, high]`` in stage mm (default: the devices' travel)."""
    v_max: StrictFloat | None = Field(default=None, gt=0, le=10_000, allow_inf_nan=False)
    """Top speed written to both axes, mm/s (default: keep what the devices have)."""
    a_max: StrictFloat | None = Field(default=None, gt=0, le=1e6, allow_inf_nan=False)
    """Acceleration written to both axes, mm/s² (default: keep what the devices have)."""
    settle_s: StrictFloat = Field(default=0.0, ge=0, le=10, allow_inf_nan=False)
    """Extra settling after each row step, s."""
    timeout_s: StrictFloat = Field(default=0.5, gt=0, le=60, allow_inf_nan=False)
    """Longest wait for one reply, s (then the port is reopened and the command resent)."""
    retries: StrictInt = Field(default=2, ge=0, le=10)
    """Resends of a command that got no reply or a garbled one."""
    move_timeout_s: StrictFloat = Field(default=120.0, gt=0, le=3600, allow_inf_nan=False)
    """Longest a move or homing may take, s."""
    home: StrictBool = False
    """Home the axes when the daemon opens the stage and they have no reference position
    (otherwise ``dwellwise check-hardware --home`` does it)."""
    max_segments: StrictInt = Field(default=64, ge=1, le=1000)
    """Most stream segments per fly row (each costs two queued stream actions)."""
    clock_speedup: StrictFloat = Field(default=1.0, gt=0, le=1e4, allow_inf_nan=False)
    """Instrument seconds per wall second: 1 for a real stage; more only for the dwellwise
    emulator running that much faster than real time."""

    @model_validator(mode="after")
    def _check(self) -> ZaberStageDevice:
        if tuple(self.x_axis) == tuple(self.y_axis):
            raise ValueError(f"x_axis and y_axis must differ, both are {list(self.x_axis)}")
        _limits(self.limits_x, "limits_x")
        _limits(self.limits_y, "limits_y")
        steps = self.microstep_mm
        for value in steps if isinstance(steps, tuple) else (steps,):
            if value is not None and not value > 0:
                raise ValueError(f"microstep_mm must be > 0 mm, got {value}")
        return self

    def describe(self) -> str:
        return (
            f"Zaber X/Y stage on {self.port} (x device {self.x_axis[0]} axis {self.x_axis[1]}, "
            f"y device {self.y_axis[0]} axis {self.y_axis[1]})"
        )


class SimSddDevice(BaseModel):
    """``[devices.sdd] kind = "sim"``: the simulated detector (it reads the request's scene)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    kind: Literal["sim"]
    """``sim``."""

    def describe(self) -> str:
        return "simulated silicon drift detector"


class EpicsMcaDevice(BaseModel):
    """``[devices.sdd] kind = "epics-mca"``: an SDD behind the standard EPICS MCA record
    (:class:`~dwellwise.drivers.epics.EpicsSDD`)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    kind: Literal["epics-mca"]
    """``epics-mca``."""
    prefix: Annotated[StrictStr, BeforeValidator(_pv_name)] = Field(min_length=1, max_length=200)
    """The MCA record's name, e.g. ``XRF:mca1`` (its fields are ``XRF:mca1.VAL`` ...)."""
    elements: list[Annotated[StrictStr, BeforeValidator(_element)]] = Field(
        min_length=1, max_length=64
    )
    """Element channels to record, in order, e.g. ``["Ca_K", "Fe_K", "Pb_L"]``; each gets an
    ROI (the record's first 32 are programmed on the IOC too)."""
    timeout_s: StrictFloat = Field(default=2.0, gt=0, le=60, allow_inf_nan=False)
    """Longest wait for a Channel Access connection, read or write, s."""
    acquisition_margin_s: StrictFloat = Field(default=1.0, gt=0, le=600, allow_inf_nan=False)
    """How long after its preset an acquisition may end before it counts as stalled, s."""
    poll_s: StrictFloat = Field(default=0.002, gt=0, le=1, allow_inf_nan=False)
    """Seconds between polls of the acquiring flag (``.ACQG``)."""
    ca_addr_list: list[Annotated[StrictStr, Field(min_length=1)]] | None = None
    """Channel Access servers to search (``host`` or ``host:port``); set, they become
    ``EPICS_CA_ADDR_LIST`` (and ``EPICS_CA_AUTO_ADDR_LIST=NO``) for the daemon; left out, the
    environment decides."""

    @model_validator(mode="after")
    def _check(self) -> EpicsMcaDevice:
        if len(set(self.elements)) != len(self.elements):
            raise ValueError(f"elements must be unique, got {self.elements}")
        from dwellwise.simulators.lines import line_group

        for el in self.elements:
            try:
                line_group(el)
            except ValueError as exc:
                raise ValueError(f"elements: {exc}") from None
        return self

    def describe(self) -> str:
        return f"EPICS MCA record {self.prefix} ({', '.join(self.elements)})"


StageDevice = Annotated[SimStageDevice | ZaberStageDevice, Discriminator("kind")]
SddDevice = Annotated[SimSddDevice | EpicsMcaDevice, Discriminator("kind")]


class DevicesSection(BaseModel):
    """``[devices]``: which devices are real (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    stage: StageDevice = Field(default_factory=lambda: SimStageDevice(kind="sim"))
    """``[devices.stage]``: ``kind = "sim"`` (default) or ``"zaber"``."""
    sdd: SddDevice = Field(default_factory=lambda: SimSddDevice(kind="sim"))
    """``[devices.sdd]``: ``kind = "sim"`` (default) or ``"epics-mca"``."""

    @property
    def hardware(self) -> bool:
        """Whether any device is real (the daemon then owns the devices, not each job)."""
        return self.stage.kind != "sim" or self.sdd.kind != "sim"

    @property
    def speedup(self) -> float:
        """Instrument seconds per wall second of a beamline with real devices."""
        return self.stage.clock_speedup if isinstance(self.stage, ZaberStageDevice) else 1.0


class ClientEntry(BaseModel):
    """``[security.clients.NAME]``: one client allowed in, as in an allow-list file."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    role: Role
    """``observer`` (status, jobs, events, documents), ``operator`` (also submit, pause,
    resume, abort) or ``admin`` (also shutdown)."""
    public_key: Annotated[StrictStr, BeforeValidator(check_z85_key)]
    """The client's public key, Z85 (40 characters, the ``public-key`` of its ``.key`` file)."""


class SecuritySection(BaseModel):
    """``[security]``: CURVE keys and the clients allowed in (``dwellwise keygen`` writes them).

    With ``server_secret_key`` set, all three sockets are encrypted and only the clients of the
    allow-list (``allow_list`` file and ``clients`` tables together) can connect, each with its
    role; the daemon may then listen on any address. Without it, loopback only (or
    ``insecure``). Relative paths are relative to the config file."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    server_secret_key: Path | None = None
    """The daemon's secret key file (``server.key_secret``); setting it turns CURVE on."""
    server_public_key: Path | None = None
    """The daemon's public key file (``server.key``), for ``dwellwise console --config``; by
    default the public half of ``server_secret_key``."""
    allow_list: Path | None = None
    """Allow-list file: ``[clients.NAME]`` tables with ``role`` and ``public_key``."""
    clients: dict[str, ClientEntry] = Field(default_factory=dict)
    """More allowed clients, inline: ``[security.clients.NAME]``."""

    @model_validator(mode="after")
    def _check(self) -> SecuritySection:
        for name in self.clients:
            if not NAME_PATTERN.match(name):
                raise ValueError(
                    f"client name {name!r} must be letters, digits and _ . @ - (at most 64)"
                )
        if self.server_secret_key is None and (self.allow_list is not None or self.clients):
            raise ValueError(
                "an allow-list needs server_secret_key (the daemon's key pair, from dwellwise keygen)"
            )
        if self.server_secret_key is not None and self.allow_list is None and not self.clients:
            raise ValueError(
                "server_secret_key without allow_list or [security.clients.NAME]: no client "
                "could connect"
            )
        return self

    @property
    def enabled(self) -> bool:
        """Whether CURVE is on."""
        return self.server_secret_key is not None

    def inline_clients(self) -> list[AllowedClient]:
        """The ``[security.clients.NAME]`` entries."""
        return [
            AllowedClient(name=name, role=c.role, public_key=c.public_key)
            for name, c in self.clients.items()
        ]

    def resolved(self, base: Path) -> SecuritySection:
        """A copy with relative paths taken relative to ``base``."""
        update = {}
        for key in ("server_secret_key", "server_public_key", "allow_list"):
            value = getattr(self, key)
            if value is not None and not value.is_absolute():
                update[key] = base / value
        return self.model_copy(update=update)


class ScanDefaults(BaseModel):
    """``[defaults]``: values for the scan-request fields a request leaves out."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    scene: str | None = None
    """Default painting scene."""
    shape: list[int] | str | None = None
    """Default region ``[H, W]`` or ``"HxW"``."""
    pixel_size: float | None = None
    """Default pitch, mm."""
    t0: float | str | None = None
    """Default first-pass dwell, seconds or ``"5ms"``."""
    policy: str | None = None
    """Default dwell policy."""
    passes: int | None = None
    """Default number of passes."""
    mode: Literal["adaptive", "raster"] | None = None
    """Default mode."""
    speedup: float | None = None
    """Default simulated-time speedup."""
    seed: int | None = None
    """Default random seed."""
    analysis: bool | None = None
    """Whether to run the analysis by default."""

    def apply(self, request: ScanRequest) -> ScanRequest:
        """``request`` with the fields it left out taken from these defaults."""
        given = request.model_dump(exclude_unset=True)
        defaults = self.model_dump(exclude_none=True)
        merged = {**defaults, **given}
        return ScanRequest.model_validate(merged)


class DaemonConfig(BaseModel):
    """The whole configuration."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    daemon: DaemonSection = Field(default_factory=DaemonSection)
    """Sockets, data directory and limits."""
    beamline: BeamlineSection = Field(default_factory=BeamlineSection)
    """The devices."""
    security: SecuritySection = Field(default_factory=SecuritySection)
    """CURVE keys and the allow-list of clients with their roles."""
    defaults: ScanDefaults = Field(default_factory=ScanDefaults)
    """Defaults of scan requests."""
    devices: DevicesSection = Field(default_factory=DevicesSection)
    """Which devices are real: ``[devices.stage]``, ``[devices.sdd]``."""

    @model_validator(mode="after")
    def _check_default_scene(self) -> DaemonConfig:
        from dwellwise.simulators.scenes import scene_names

        scene = self.defaults.scene
        if scene is not None and scene not in scene_names() and not self.beamline.allow_scene_files:
            raise ValueError(
                f"defaults.scene {scene!r} is not a scene; scenes: {', '.join(scene_names())} "
                "(image files only with beamline.allow_scene_files = true)"
            )
        return self

    @model_validator(mode="after")
    def _check_devices(self) -> DaemonConfig:
        stage = self.devices.stage
        if stage.kind != "sim":
            for key in SIM_STAGE_KEYS:
                if key in self.beamline.model_fields_set:
                    raise ValueError(
                        f"beamline.{key} sets the simulated stage, but devices.stage.kind is "
                        f"{stage.kind!r}: put {key} under [devices.stage] (or remove it)"
                    )
        return self

    def with_overrides(self, **daemon_fields: Any) -> DaemonConfig:
        """A copy with ``[daemon]`` keys replaced (command-line flags); ``None`` keeps a key."""
        given = {k: v for k, v in daemon_fields.items() if v is not None}
        section = {**self.daemon.model_dump(), **given}
        try:
            new = DaemonSection.model_validate(section)
        except ValidationError as exc:
            raise ConfigError(describe_errors(exc)) from None
        return self.model_copy(update={"daemon": new})


def load_config(path: str | Path | None) -> DaemonConfig:
    """Read and check a TOML configuration; ``None`` gives the defaults."""
    if path is None:
        return DaemonConfig()
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path} is not valid TOML: {exc}") from None
    try:
        config = DaemonConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"config {path}: {_config_errors(exc)}") from None
    try:
        config.defaults.apply(ScanRequest(budget=1.0))
    except ValidationError as exc:
        raise ConfigError(f"config {path}: [defaults] {describe_errors(exc)}") from None
    data_dir = config.daemon.data_dir
    if not data_dir.is_absolute():
        data_dir = path.parent / data_dir
        config = config.with_overrides(data_dir=data_dir)
    return config.model_copy(update={"security": config.security.resolved(path.parent)})


def _config_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        path = [str(p) for p in err["loc"]]
        if len(path) >= 3 and path[0] == "devices" and path[2] in DEVICE_KINDS.get(path[1], ()):
            kind = path.pop(2)  # pydantic names the union member; the key is what a person edits
        else:
            kind = None
        loc = ".".join(path) or "(top level)"
        kinds = " | ".join(f'"{k}"' for k in DEVICE_KINDS.get(path[1], ())) if len(path) > 1 else ""
        if err["type"] == "extra_forbidden":
            parts.append(f"{loc}: unknown key" + (f" for kind {kind!r}" if kind else ""))
        elif err["type"] == "missing":
            need = f" (kind {kind!r} needs it)" if kind else ""
            parts.append(f"{loc}: missing{need}")
        elif err["type"] == "union_tag_invalid":
            got = (err.get("ctx") or {}).get("tag", err.get("input"))
            parts.append(f"{loc}.kind: unknown kind {got!r}; allowed: {kinds}")
        elif err["type"] == "union_tag_not_found":
            parts.append(f"{loc}.kind: missing; allowed: {kinds}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            got = err.get("input")
            if not path:
                parts.append(msg)
            elif isinstance(got, dict) or repr(got) in msg:
                parts.append(f"{loc}: {msg}")
            else:
                parts.append(f"{loc}: {msg} (got {got!r})")
    return "; ".join(parts)
