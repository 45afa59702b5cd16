"""One fault vocabulary for every hardware driver.

A :class:`DeviceFault` is what a real device raises when something a person must look at went
wrong: a controller that does not answer, a garbled or rejected reply, a limit switch, a stall,
an acquisition that never ends. Every driver's own faults subclass it
(:class:`~dwellwise.drivers.zaber_protocol.ZaberFault`,
:class:`~dwellwise.drivers.epics.EpicsSDDError`) and keep their own messages; the fields here let
the layers above (the daemon pauses a job on a fault, ``dwellwise check-hardware`` reports it)
say which device failed, which part of it, what happened and what to do, without knowing the
driver.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["DeviceFault", "find_device_fault"]


class DeviceFault(RuntimeError):
    """A hardware device failed; the message names the device, the part, the cause and the fix."""

    def __init__(
        self, message: str, *, device: str, part: str = "", cause: str, advice: str = ""
    ) -> None:
        super().__init__(message)
        self.device = device
        """Name of the device (the Ophyd name, e.g. ``stage`` or ``sdd``, or the port)."""
        self.part = part
        """Which part of it: an axis (``x (device 1 axis 1)``), a PV (``XRF:mca1.ACQG``), or ``""``."""
        self.cause = cause
        """What happened, in words."""
        self.advice = advice
        """What a person should do about it (may be empty)."""

    @property
    def summary(self) -> str:
        """``device part: cause`` in one line (the full message adds the advice)."""
        where = f"{self.device} {self.part}".strip()
        return f"{where}: {self.cause}"


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    """``exc``, its causes and contexts, and the exception of a failed Ophyd status inside it."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [e.__cause__, e.__context__]
        status = getattr(e, "args", (None,))[0] if type(e).__name__ == "FailedStatus" else None
        get = getattr(status, "exception", None)
        if callable(get):
            try:
                todo.append(get(timeout=0))
            except Exception:  # noqa: BLE001 - a status without an exception: nothing to add
                pass


def find_device_fault(exc: BaseException | None) -> DeviceFault | None:
    """The first :class:`DeviceFault` in ``exc``'s chain (a Bluesky ``FailedStatus`` wraps the
    fault its status failed with), or ``None``."""
    for e in _chain(exc):
        if isinstance(e, DeviceFault):
            return e
    return None
