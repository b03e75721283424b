"""Find FlowVQ backends advertised over zeroconf (`_flowvq._tcp`).

bpy-free. By default only the loopback interface is browsed (IPv4): a backend on this machine
is found without a single multicast packet on the real network. LAN discovery is opt-in
(add-on preferences) because it announces the browser to the whole network.
"""
from __future__ import annotations

import socket
import threading
from dataclasses import dataclass

SERVICE_TYPE = "_flowvq._tcp.local."


@dataclass(frozen=True)
class Service:
    name: str
    host: str
    port: int
    properties: dict

    @property
    def label(self) -> str:
        device = self.properties.get("device", "")
        return f"{self.host}:{self.port}" + (f" ({device})" if device else "")


def _text(v) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, (bytes, bytearray)) else str(v or "")


class Browser:
    """A running zeroconf browser; `services()` lists what it has resolved so far."""

    def __init__(self, lan: bool = False):
        from zeroconf import IPVersion, ServiceBrowser, ServiceStateChange, Zeroconf

        self._lock = threading.Lock()
        self._found: dict[str, Service] = {}
        self.changed = threading.Event()
        # loopback unless the user opted into the LAN: never multicast on a real interface
        kw = {} if lan else {"interfaces": ["127.0.0.1"], "ip_version": IPVersion.V4Only}
        self._zc = Zeroconf(**kw)
        self._added = (ServiceStateChange.Added, ServiceStateChange.Updated)
        self._browser = ServiceBrowser(self._zc, SERVICE_TYPE, handlers=[self._on_change])

    def _on_change(self, zeroconf, service_type, name, state_change) -> None:
        if state_change in self._added:
            info = zeroconf.get_service_info(service_type, name, timeout=2000)
            if info is None:
                return
            addresses = info.parsed_addresses()
            host = addresses[0] if addresses else (info.server or "").rstrip(".")
            props = {_text(k): _text(v) for k, v in (info.properties or {}).items()}
            with self._lock:
                self._found[name] = Service(name, host, int(info.port or 0), props)
        else:
            with self._lock:
                self._found.pop(name, None)
        self.changed.set()

    def services(self) -> list[Service]:
        with self._lock:
            return sorted(self._found.values(), key=lambda s: s.name)

    def close(self) -> None:
        try:
            self._browser.cancel()
        finally:
            self._zc.close()


def discover(timeout: float = 2.0, lan: bool = False) -> list[Service]:
    """Browse for `timeout` seconds at most; returns as soon as one backend is resolved."""
    try:
        browser = Browser(lan=lan)
    except (ImportError, OSError, socket.error):
        return []
    try:
        browser.changed.wait(timeout)
        return browser.services()
    finally:
        browser.close()
