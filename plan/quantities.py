"""Kubernetes resource quantities: CPU in millicores, memory in bytes, requests and limits.

Parsing is strict (ValueError on anything Kubernetes would not accept as a plain decimal
quantity); exponent forms such as ``1e3`` are not supported.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

_CPU = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m?)$")
_MEMORY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_MEMORY_FACTORS = {
    None: 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}


def parse_cpu(text: str) -> int:
    """Kubernetes CPU quantity ("2", "500m", "0.5") in millicores; ValueError if malformed."""
    match = _CPU.match(str(text).strip())
    if not match:
        raise ValueError(text)
    number = Decimal(match.group(1))
    return int(number if match.group(2) else number * 1000)


def parse_memory(text: str) -> int:
    """Kubernetes memory quantity ("4Gi", "512Mi", "1G") in bytes; ValueError if malformed."""
    match = _MEMORY.match(str(text).strip())
    if not match:
        raise ValueError(text)
    try:
        return int(Decimal(match.group(1)) * _MEMORY_FACTORS[match.group(2)])
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise ValueError(text) from exc


@dataclass(frozen=True)
class ResourceList:
    cpu: str
    memory: str

    @property
    def cpu_millis(self) -> int:
        return parse_cpu(self.cpu)

    @property
    def memory_bytes(self) -> int:
        return parse_memory(self.memory)

    def as_dict(self) -> dict[str, str]:
        return {"cpu": self.cpu, "memory": self.memory}


@dataclass(frozen=True)
class Resources:
    requests: ResourceList
    limits: ResourceList

    def as_dict(self) -> dict[str, dict[str, str]]:
        return {"requests": self.requests.as_dict(), "limits": self.limits.as_dict()}
