"""A simulated EPICS MCA IOC (caproto): the standard MCA record's fields over Channel Access.

The record ``<prefix><record>`` (``XRF:mca1``) serves the fields a client of the standard EPICS
MCA record uses: the spectrum ``.VAL`` (``.NUSE`` channels of DBF_LONG), preset real and live time
``.PRTM``/``.PLTM``, elapsed real and live time ``.ERTM``/``.ELTM``, ``.ERST`` (erase and start),
``.STRT``, ``.ERAS``, ``.STOP``, ``.ACQG`` (acquiring), ``.MODE``, the energy calibration
``.CALO``/``.CALS``/``.CALQ`` with ``.EGU``, the background ``.BG`` and ROIs ``.R<n>LO``,
``.R<n>HI``, ``.R<n>NM`` and their counts ``.R<n>``.

An acquisition runs for its preset real time (or until its preset live time, or until
``.STOP``), then draws Poisson spectra from the dwellwise simulator
(:class:`~dwellwise.simulators.detector.PoissonSDD`) for what the beam sees when it starts: a
uniform material by default, or a painting scene at a position an in-process callable supplies.
The spectrum, elapsed times and ROI counts are posted before ``.ACQG`` drops back to ``Done``, so a
client that waits for ``.ACQG`` reads a finished acquisition. (A real record also updates
``.ERTM`` and ``.VAL`` while acquiring; this one posts them when the acquisition ends.)

Faults for tests (:class:`McaFaults`, or :meth:`McaIoc.hang`): the IOC stops answering, the
spectrum comes back with the wrong length, the calibration reads NaN, presets are refused, an
acquisition never ends. Stopping the IOC (:meth:`McaIoc.stop`) is the IOC going away.

Run it for a person::

    python -m dwellwise.simulators.mca_ioc --prefix XRF: --port 5064

and point clients at it with ``EPICS_CA_ADDR_LIST=127.0.0.1 EPICS_CA_AUTO_ADDR_LIST=NO
EPICS_CA_SERVER_PORT=5064``. This module uses caproto only (no ophyd, no bluesky).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import socket
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from caproto import ChannelType
from caproto.server import PVGroup, pvproperty
from dwellwise.simulators.beam import BeamPosition
from dwellwise.simulators.detector import DEFAULT_DEAD_TIME_S, PoissonSDD
from dwellwise.simulators.energy import EnergyAxis
from dwellwise.simulators.scenes import Scene
from dwellwise.simulators.spectra import SpectrumModel

DEFAULT_ELEMENT_RATES = {
    "Ca_K": 1500.0,
    "Fe_K": 2500.0,
    "Cu_K": 800.0,
    "Zn_K": 400.0,
    "Pb_L": 3000.0,
}
"""Detected rate of each element family of the default uniform material, counts/s."""
DEFAULT_SCATTER_RATES = (300.0, 900.0, 1500.0)
"""Rayleigh, Compton and continuum rates of the default material, counts/s."""
N_ROIS = 32
"""ROIs of the standard MCA record (``.R0`` .. ``.R31``)."""
STRT_MENU = ("Done", "Acquire")
"""The record's mcaSTRT menu (``.STRT``, ``.ERST``, ``.STOP``, ``.ACQG``)."""
ERAS_MENU = ("Done", "Erase")
MODE_MENU = ("PHA", "MCS", "List")

log = logging.getLogger(__name__)


class RateSource(Protocol):
    """What the detector sees: component rates of a spectrum model where the beam is now."""

    model: SpectrumModel
    """Spectrum model (energy axis, components)."""

    def component_rates(self) -> np.ndarray:
        """``(J,)`` component rates under the beam, counts/s."""
        ...


class UniformMaterial:
    """The same material everywhere: fixed element and scatter rates (counts/s)."""

    def __init__(
        self,
        element_rates: Mapping[str, float] | None = None,
        scatter_rates: Sequence[float] = DEFAULT_SCATTER_RATES,
        axis: EnergyAxis | None = None,
    ) -> None:
        rates = dict(DEFAULT_ELEMENT_RATES if element_rates is None else element_rates)
        if not rates or any(not (v >= 0 and math.isfinite(v)) for v in rates.values()):
            raise ValueError(f"element rates must be finite counts/s >= 0, got {rates}")
        self.model = SpectrumModel(list(rates), axis=axis)
        self._rates = self.model.component_rates(np.array(list(rates.values())), scatter_rates)

    def component_rates(self) -> np.ndarray:
        return self._rates


class SceneAtPosition:
    """A painting scene under the beam at the stage position ``position()`` returns, ``(x, y)``
    mm (pixel (0, 0) centred at the origin; off the painting the detector sees nothing)."""

    def __init__(
        self, scene: Scene, pixel_size: float, position: Callable[[], tuple[float, float]]
    ) -> None:
        self.model = scene.model
        self.beam = BeamPosition(scene, pixel_size)
        self.position = position

    def component_rates(self) -> np.ndarray:
        x, y = self.position()
        return self.beam.component_rates(np.array([float(x)]), float(y))[:, 0]


@dataclass
class McaFaults:
    """Faults to inject into a running IOC (set the flags from any thread)."""

    short_spectrum: bool = False
    """``.VAL`` answers with half of ``.NUSE`` channels (a garbled array)."""
    nan_calibration: bool = False
    """``.CALS`` reads NaN (a garbled calibration)."""
    reject_presets: bool = False
    """Writes to ``.PRTM`` and ``.PLTM`` are refused (the value stays)."""
    stall: bool = False
    """An acquisition started never ends by itself (``.ACQG`` stays ``Acquire`` until ``.STOP``)."""

    def clear(self) -> None:
        """No fault."""
        self.short_spectrum = self.nan_calibration = self.reject_presets = self.stall = False


def _field(name: str, **kwargs) -> pvproperty:
    """A pvproperty for record field ``name`` (``.VAL``)."""
    return pvproperty(name=name, **kwargs)


class McaRecordGroup(PVGroup):
    """The MCA record's fields. Use :func:`mca_group_class`, which adds the fields sized by the
    energy axis (``.VAL``, ``.BG``, ``.NUSE``, ``.NMAX``, ``.CALO``, ``.CALS``) and the ROIs."""

    prtm = _field(".PRTM", value=1.0, dtype=float)
    pltm = _field(".PLTM", value=0.0, dtype=float)
    ertm = _field(".ERTM", value=0.0, dtype=float, read_only=True)
    eltm = _field(".ELTM", value=0.0, dtype=float, read_only=True)
    dtim = _field(".DTIM", value=0.0, dtype=float, read_only=True)
    strt = _field(".STRT", value="Done", dtype=ChannelType.ENUM, enum_strings=STRT_MENU)
    erst = _field(".ERST", value="Done", dtype=ChannelType.ENUM, enum_strings=STRT_MENU)
    stop_ = _field(".STOP", value="Done", dtype=ChannelType.ENUM, enum_strings=STRT_MENU)
    eras = _field(".ERAS", value="Done", dtype=ChannelType.ENUM, enum_strings=ERAS_MENU)
    acqg = _field(
        ".ACQG", value="Done", dtype=ChannelType.ENUM, enum_strings=STRT_MENU, read_only=True
    )
    mode = _field(".MODE", value="PHA", dtype=ChannelType.ENUM, enum_strings=MODE_MENU)
    calq = _field(".CALQ", value=0.0, dtype=float)
    egu = _field(".EGU", value="keV", dtype=ChannelType.STRING)

    def __init__(
        self,
        *args,
        source: RateSource,
        faults: McaFaults,
        dead_time_s: float = DEFAULT_DEAD_TIME_S,
        seed: int = 0,
        **kwargs,
    ) -> None:
        self.source = source
        self.faults = faults
        self.axis = source.model.axis
        self.counter = PoissonSDD(source.model, dead_time_s=dead_time_s)
        self.rng = np.random.default_rng(seed)
        self.acquisitions = 0
        """Acquisitions completed (for tests and the CLI's log)."""
        super().__init__(*args, **kwargs)
        if self.nuse.value != self.axis.channels:
            raise ValueError(
                f"{type(self).__name__} serves {self.nuse.value} channels, the source's axis has "
                f"{self.axis.channels}: build the class with mca_group_class(axis)"
            )
        self._spectrum = np.zeros(self.axis.channels, np.int64)
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    # -- faults on read ------------------------------------------------------------------
    async def _get_val(self, instance):
        spectrum = self._spectrum.astype(np.int32)
        return spectrum[: spectrum.size // 2] if self.faults.short_spectrum else spectrum

    async def _get_cals(self, instance):
        return float("nan") if self.faults.nan_calibration else self.axis.gain_kev

    @prtm.putter
    async def prtm(self, instance, value):
        return self._preset(".PRTM", value)

    @pltm.putter
    async def pltm(self, instance, value):
        return self._preset(".PLTM", value)

    def _preset(self, field: str, value: float) -> float:
        if self.faults.reject_presets:
            raise ValueError(f"{self.prefix}{field}: preset refused (injected fault)")
        if not (value >= 0 and math.isfinite(value)):
            raise ValueError(f"{self.prefix}{field}: a preset time is finite and >= 0 s")
        return float(value)

    # -- acquisition control ---------------------------------------------------------------
    @erst.putter
    async def erst(self, instance, value):
        if value == "Acquire":
            await self._start(erase=True)
        return "Done"

    @strt.putter
    async def strt(self, instance, value):
        if value == "Acquire":
            await self._start(erase=False)
        return "Done"

    @eras.putter
    async def eras(self, instance, value):
        if value == "Erase":
            await self._erase()
        return "Done"

    @stop_.putter
    async def stop_(self, instance, value):
        if value == "Acquire":
            self._stop.set()
        return "Done"

    async def _erase(self) -> None:
        self._spectrum[:] = 0
        await self.ertm.write(0.0, verify_value=False)
        await self.eltm.write(0.0, verify_value=False)
        await self.val.write(self._spectrum.astype(np.int32), verify_value=False)

    async def _start(self, erase: bool) -> None:
        """Start acquiring (a running acquisition ends first; ``erase``: from zero)."""
        if self._task is not None and not self._task.done():
            self._stop.set()
            await self._task
        if erase:
            await self._erase()
        self._stop = asyncio.Event()
        await self.acqg.write("Acquire", verify_value=False)
        self._task = asyncio.get_running_loop().create_task(self._acquire(self._stop))

    async def _acquire(self, stop: asyncio.Event) -> None:
        try:
            await self._count(stop)
        except Exception:  # e.g. the position callable failed: the acquisition ends empty
            log.exception("%s: acquisition failed", self.prefix)
        finally:
            await self.acqg.write("Done", verify_value=False)

    async def _count(self, stop: asyncio.Event) -> None:
        rates = np.asarray(self.source.component_rates(), dtype=float)[:, None]
        prtm, pltm = float(self.prtm.value), float(self.pltm.value)
        limits = [prtm] if prtm > 0 else []
        if pltm > 0:
            limits.append(float(self.counter.real_from_live(np.array([pltm]), rates)[0]))
        preset = min(limits) if limits else math.inf
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        if self.faults.stall or not math.isfinite(preset):
            await stop.wait()
            real = loop.time() - t0
        else:
            try:
                await asyncio.wait_for(stop.wait(), timeout=preset)
                real = min(loop.time() - t0, preset)
            except TimeoutError:
                real = preset
        acq = self.counter.acquire(rates, real_time=np.array([real]), rng=self.rng)
        self._spectrum += acq.counts[0]
        ertm = float(self.ertm.value) + real
        eltm = float(self.eltm.value) + float(acq.live_time[0])
        await self.val.write(self._spectrum.astype(np.int32), verify_value=False)
        await self.ertm.write(ertm, verify_value=False)
        await self.eltm.write(eltm, verify_value=False)
        await self.dtim.write(100.0 * (1.0 - eltm / ertm) if ertm > 0 else 0.0, verify_value=False)
        await self._update_rois()
        self.acquisitions += 1

    async def _update_rois(self) -> None:
        csum = np.concatenate([[0], np.cumsum(self._spectrum)])
        n = self.axis.channels
        for i in range(getattr(self, "n_rois", 0)):
            lo, hi = int(getattr(self, f"r{i}lo").value), int(getattr(self, f"r{i}hi").value)
            counts = float(csum[hi + 1] - csum[lo]) if 0 <= lo <= hi < n else 0.0
            roi = getattr(self, f"r{i}")
            if roi.value != counts:
                await roi.write(counts, verify_value=False)


def mca_group_class(axis: EnergyAxis, n_rois: int = N_ROIS) -> type[McaRecordGroup]:
    """The record's PVGroup for spectra on ``axis`` (``.NUSE`` channels, ``.CALO``/``.CALS``)
    with ``n_rois`` ROIs (``.R<n>LO``, ``.R<n>HI``, ``.R<n>NM``, ``.R<n>``)."""
    if not 0 <= n_rois <= N_ROIS:
        raise ValueError(f"the MCA record has 0..{N_ROIS} ROIs, got {n_rois}")
    n = axis.channels
    zeros = np.zeros(n, np.int32)
    attrs: dict[str, object] = {
        "n_rois": n_rois,
        "val": _field(
            ".VAL",
            get=McaRecordGroup._get_val,
            value=zeros,
            dtype=int,
            max_length=n,
            read_only=True,
        ),
        "bg": _field(".BG", value=zeros, dtype=int, max_length=n, read_only=True),
        "nuse": _field(".NUSE", value=n, dtype=int, read_only=True),
        "nmax": _field(".NMAX", value=n, dtype=int, read_only=True),
        "calo": _field(".CALO", value=float(axis.offset_kev), dtype=float),
        "cals": _field(
            ".CALS", get=McaRecordGroup._get_cals, value=float(axis.gain_kev), dtype=float
        ),
    }
    for i in range(n_rois):
        attrs[f"r{i}lo"] = _field(f".R{i}LO", value=-1, dtype=int)
        attrs[f"r{i}hi"] = _field(f".R{i}HI", value=-1, dtype=int)
        attrs[f"r{i}nm"] = _field(f".R{i}NM", value="", dtype=ChannelType.STRING)
        attrs[f"r{i}"] = _field(f".R{i}", value=0.0, dtype=float, read_only=True)
    return type(f"McaRecordGroup{n}x{n_rois}", (McaRecordGroup,), attrs)


def free_port(host: str = "127.0.0.1") -> int:
    """A port number free for both UDP and TCP on ``host`` (for a test IOC)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = udp.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                    tcp.bind((host, port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port on {host}")


class McaIoc:
    """The simulated MCA IOC, served by caproto from a background thread.

    >>> ioc = McaIoc("XRF:", port=free_port()).start()
    >>> os.environ.update(ioc.client_env())   # before the first CA client is made
    >>> ioc.faults.stall = True                # inject a fault; ioc.hang() stops all replies
    >>> ioc.stop()
    """

    def __init__(
        self,
        prefix: str = "XRF:",
        record: str = "mca1",
        *,
        source: RateSource | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
        dead_time_s: float = DEFAULT_DEAD_TIME_S,
        seed: int = 0,
        n_rois: int = N_ROIS,
    ) -> None:
        self.record_name = f"{prefix}{record}"
        """The MCA record's name, e.g. ``XRF:mca1`` (its fields are ``XRF:mca1.VAL`` ...)."""
        self.host = host
        self.port = int(port) if port is not None else free_port(host)
        """UDP search port (the TCP port too when it is free)."""
        self.faults = McaFaults()
        """Flags of the faults to inject (see :class:`McaFaults`)."""
        source = source or UniformMaterial()
        self.group = mca_group_class(source.model.axis, n_rois)(
            prefix=self.record_name,
            source=source,
            faults=self.faults,
            dead_time_s=dead_time_s,
            seed=seed,
        )
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._ctx = None
        self._ready = threading.Event()
        self._released = threading.Event()
        self._released.set()
        self._error: BaseException | None = None

    def client_env(self) -> dict[str, str]:
        """Environment for a Channel Access client that must find this IOC (and only it)."""
        return {
            "EPICS_CA_ADDR_LIST": f"{self.host}:{self.port}",
            "EPICS_CA_AUTO_ADDR_LIST": "NO",
            "EPICS_CA_SERVER_PORT": str(self.port),
        }

    def start(self, timeout_s: float = 10.0) -> McaIoc:
        """Serve in a background thread; returns once the IOC answers searches."""
        if self._thread is not None:
            raise RuntimeError(f"IOC {self.record_name} already started")
        self._thread = threading.Thread(
            target=self._serve, name=f"ioc-{self.record_name}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout_s):
            self.stop()
            raise RuntimeError(f"IOC {self.record_name} did not start within {timeout_s} s")
        if self._error is not None:
            raise RuntimeError(f"IOC {self.record_name} failed to start: {self._error}")
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop serving: clients see the IOC go away (their circuits close)."""
        self._released.set()
        if self._loop is not None and self._task is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._shutdown)
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._thread = None

    def _shutdown(self) -> None:
        """In the IOC's loop: drop every client connection (as a dying IOC's sockets close),
        then end the server."""
        for circuit in list(getattr(self._ctx, "circuits", ())):
            try:
                circuit.client.close()
            except (AttributeError, OSError):
                pass
        self._task.cancel()

    def hang(self) -> None:
        """The IOC stops answering (its connections stay open) until :meth:`answer`."""
        if self._loop is None:
            raise RuntimeError(f"IOC {self.record_name} is not running")
        self._released.clear()
        self._loop.call_soon_threadsafe(self._released.wait)

    def answer(self) -> None:
        """The IOC answers again after :meth:`hang`."""
        self._released.set()

    @property
    def acquisitions(self) -> int:
        """Acquisitions completed so far."""
        return self.group.acquisitions

    def __enter__(self) -> McaIoc:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        from caproto.asyncio.server import Context

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop

        async def ready(async_lib) -> None:
            self._ready.set()

        async def main() -> None:
            self._task = asyncio.current_task()
            ctx = Context(self.group.pvdb, interfaces=[self.host])
            ctx.ca_server_port = self.port
            self._ctx = ctx
            await ctx.run(startup_hook=ready)

        try:
            loop.run_until_complete(main())
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()
        finally:
            loop.close()


def _parse_rates(text: str) -> dict[str, float]:
    rates = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        try:
            rates[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise argparse.ArgumentTypeError(
                f"rates are NAME=counts/s, comma-separated; got {item!r}"
            )
    return rates


def main(argv: list[str] | None = None) -> int:
    """``python -m dwellwise.simulators.mca_ioc``: serve a simulated MCA until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m dwellwise.simulators.mca_ioc",
        description="Simulated EPICS MCA record (caproto) with Poisson XRF spectra.",
    )
    parser.add_argument("--prefix", default="XRF:", help="PV prefix (default XRF:)")
    parser.add_argument("--record", default="mca1", help="record name after the prefix (mca1)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to serve on (127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=None, help="CA server port (default: a free one)"
    )
    parser.add_argument(
        "--rates",
        type=_parse_rates,
        default=None,
        help="uniform material, e.g. Fe_K=2500,Pb_L=3000 (counts/s; default a few pigments)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the counting noise")
    args = parser.parse_args(argv)
    try:
        source = UniformMaterial(args.rates)
        ioc = McaIoc(
            args.prefix, args.record, source=source, port=args.port, host=args.host, seed=args.seed
        )
        ioc.start()
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"mca_ioc: {exc}", file=sys.stderr)
        return 2
    env = " ".join(f"{k}={v}" for k, v in ioc.client_env().items())
    print(f"serving {ioc.record_name} on {ioc.host}:{ioc.port}; clients: {env}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        ioc.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
