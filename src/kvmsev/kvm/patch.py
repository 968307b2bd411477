"""One commit as the model sees it: what it changed, and the behaviour switch that represents it.

``kind`` says what the commit does to behaviour: ``behaviour`` (observable change), ``refactor``
(the code moved; the model implements both shapes and the tests show they agree) or ``cosmetic``
(nothing for a model to represent). A patch with a ``field`` can be applied to or reverted from
any preset on its own: applying sets the field to ``applied``, reverting to ``reverted``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Patch:
    name: str
    number: str
    commit: str
    subject: str
    kind: str
    field: str | None
    change: str
    applied: object = True
    reverted: object = False
    #: "series" (merged as part of it), "v4" (posted, not merged), "5.13" (other SEV fixes merged
    #: in the same window, part of the v5.13 preset), or the release that brought a later change
    #: ("5.14" ... "7.1": part of that preset and every later one), or "stable" (merged after the
    #: newest preset and backported to stable trees: in no preset, available to ``--apply``)
    group: str = "series"

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "number": self.number,
            "commit": self.commit,
            "subject": self.subject,
            "kind": self.kind,
            "changes_behaviour": self.kind == "behaviour",
            "switch": self.field,
            "group": self.group,
            "change": self.change,
        }
