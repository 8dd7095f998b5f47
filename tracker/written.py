"""Draft a written termination request, in Azerbaijani and English, from what was typed.

Pure: nothing here stores or logs what it is given (a full number and a name).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from urllib.parse import quote

# The operator reads Azerbaijani; English follows so the traveller knows what they send.
# It asks for the contract to be terminated ("müqaviləyə xitam"), not the line closed
# ("bağlanma", which Azercell re-opens on request), and for a written confirmation: the
# only evidence that proves termination (policy.PROOF).
_BODY = """Hörmətli {operator},

Xahiş edirəm, {number} nömrəsi üzrə abunə müqaviləsinə xitam verəsiniz və nömrəni ləğv \
edəsiniz. Nömrənin müvəqqəti bağlanmasını və ya dayandırılmasını istəmirəm. Pasportumun \
surəti əlavə olunur. Müqaviləyə xitam verildiyini yazılı şəkildə təsdiq etməyinizi və \
balansda qalan vəsaitin qaytarılıb-qaytarılmayacağını bildirməyinizi xahiş edirəm.

Ad, soyad (pasportda olduğu kimi): {name}
Tarix: {day}

---

Dear {operator},

Please terminate the subscription contract for the number {number} and cancel the \
number. I do not want it closed or suspended for a while. A copy of my passport is \
attached. Please confirm in writing that the contract is terminated, and tell me whether \
the remaining balance can be refunded.

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
