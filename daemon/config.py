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

    [beamline]
    kind = "simulated"

    [defaults]                            # fills the fields a scan request leaves out
    policy = "auto"
    speedup = 1.0

Every table and key is checked; an unknown key or a bad value is a :class:`ConfigError` that
names it (``daemon.contol: unknown key``).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from dwellwise.daemon.keys import NAME_PATTERN, AllowedClient, Role, check_z85_key
from dwellwise.daemon.protocol import ScanRequest, describe_errors
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
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            parts.append(f"{loc}: unknown key")
        else:
            parts.append(
                f"{loc}: {err['msg'].removeprefix('Value error, ')} (got {err.get('input')!r})"
            )
    return "; ".join(parts)
