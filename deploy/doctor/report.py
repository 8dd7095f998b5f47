"""One line per check: what was found, or what to do about it."""

from __future__ import annotations

from dataclasses import dataclass

OK, WARN, FAIL = "ok", "warn", "FAIL"


@dataclass(frozen=True)
class Verdict:
    """What one check found; when it is not ok, ``detail`` says what to do."""

    status: str
    detail: str


@dataclass(frozen=True)
class Finding:
    """A verdict on one subject, as the doctor prints it."""

    subject: str
    status: str
    detail: str

    def line(self) -> str:
        return f"{self.status:<4}  {self.subject}: {self.detail}"


def ok(detail: str) -> Verdict:
    return Verdict(OK, detail)


def warn(detail: str) -> Verdict:
    return Verdict(WARN, detail)


def fail(detail: str) -> Verdict:
    return Verdict(FAIL, detail)
