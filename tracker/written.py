"""Draft a written termination request, in Azerbaijani and English, from what was typed.

Pure: nothing here stores or logs what it is given (a full number and a name).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from urllib.parse import quote

# The operator reads Azerbaijani; English follows so the traveller knows what they send.
# It asks for permanent termination, not a block, and for a written confirmation: that
# reply is the strongest evidence the check page accepts.
_BODY = """Hörmətli {operator},

Xahiş edirəm, {number} nömrəsini həmişəlik ləğv edəsiniz və müqaviləyə xitam verəsiniz. \
Müvəqqəti bağlanma istəmirəm. Pasportumun surəti əlavə olunur. Ləğvi yazılı şəkildə \
təsdiq etməyinizi xahiş edirəm.

Ad, soyad (pasportda olduğu kimi): {name}
Tarix: {day}

---

Dear {operator},

Please terminate the number {number} permanently and end its contract. I do not want a \
temporary suspension. A copy of my passport is attached. Please confirm the termination \
in writing.

Name (as in my passport): {name}
Date: {day}
"""
_SUBJECT = "Nömrənin ləğvi / Termination of number {number}"


@dataclass(frozen=True)
class Draft:
    to: str
    subject: str
    body: str

    @property
    def mailto(self) -> str:
        """A mailto: link that opens the draft in the traveller's mail app."""
        return f"mailto:{self.to}?subject={quote(self.subject)}&body={quote(self.body)}"


def international(national_number: str) -> str:
    """+994 50 123 45 67, as the operator writes it."""
    n = national_number
    return f"+994 {n[:2]} {n[2:5]} {n[5:7]} {n[7:]}"


def written_request(operator, national_number: str, name: str, *, today: date) -> Draft:
    """The letter to the operator's first written-request address."""
    number = international(national_number)
    values = dict(operator=operator.name, number=number, name=name, day=today.isoformat())
    return Draft(to=operator.written[0].value, subject=_SUBJECT.format(**values),
                 body=_BODY.format(**values))
