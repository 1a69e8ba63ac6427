"""The vocabulary of commitments: what makes a sentence one, and which edits weaken it.

All patterns run on canonical text (casefolded words separated by single spaces, contractions
expanded: "won't" reads "will not"). The lists come from real revisions of AI companies' policies:
xAI "would" -> "may", GDM "updated" -> "reviewed", Anthropic's competitor clause, Meta "match or
exceed" -> "exceed", Microsoft six -> twelve months, OpenAI's "Military and warfare" deleted,
Google's "we may make exceptions". Tune the engine here; the logic lives in locate and judge.
"""

from __future__ import annotations

import re


def _words(*phrases: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(phrases) + r")\b")


COMMITMENT_LANGUAGE = _words(
    "will", "shall", "must", "never", "commit(?:s|ted|ment|ments)?", "pledge[sd]?",
    "promise[sd]?", "guarantee[sd]?", "prohibit(?:s|ed|ion)?", "forbidden",
    "not (?:permitted|allowed)", "disallow(?:ed)?", "may not", "should not",
    "(?:you|users?) (?:cannot|should)", "do not", "does not", "agrees? not to",
    "(?:is|are) required to",
    "only (?:if|after|when|once|with)", "we (?:aim|strive|intend|endeavou?r|seek)", "refrain",
    "in no event", "(?:make|grant) exceptions?", "exceptions? to", "(?:sole|absolute) discretion",
)
"""Language that makes a sentence a commitment (or a carve-out from one)."""
EXCEPTION_CLAUSE = _words("(?:make|grant|allow|permit) exceptions?",
                          "exceptions? to (?:this|these|our|the)")
"""A new sentence that carves exceptions out of the rules weakens them; it is no mere addition."""

# --- what a changed sentence gained or lost ---------------------------------------------------

STRONG_MODALS = _words("will", "shall", "must", "would", "may not", "commit(?:s|ted)? to",
                       "pledge to", "(?:is|are) required to", "guarantee")
WEAK_MODALS = _words("may(?! not)", "might", "could", "should", "aims? to", "intends? to",
                     "strives? to", "seeks? to", "endeavou?rs? to", "expects? to", "expected to",
                     "hopes? to", "try to", "tries to", "plans? to", "consider(?:ing)?",
                     "encouraged to", "recommended")
NEGATION = _words("not", "never", "cannot")
HEDGED_NEGATION = _words("not necessarily", "not always", "no longer", "not be required",
                         "not required")
CONDITIONS = _words(
    "unless", "except", "excepting", "other than", "(?:sole |our |its )?discretion",
    "where (?:feasible|appropriate|practicable|possible|necessary)",
    "if (?:feasible|possible|appropriate|necessary)", "when appropriate", "as appropriate",
    "to the extent", "as needed", "as necessary", "exceptions?", "subject to", "provided that",
    "in (?:some|certain|most) (?:cases|circumstances)", "if we determine", "judgment",
    "competitors?", "another (?:ai |frontier ai )?developer",
    "other (?:ai |frontier ai )?developers",
    "comparable model", "at our option",
)
DISCLAIMER = _words("not (?:be )?(?:responsible|liable)", "no liability", "disclaims?",
                    "not (?:be )?responsible", "exclude[sd]? (?:all )?liability")
"""A sentence that limits the company's own liability: an exception to it protects users."""
HEDGES = _words("not necessarily", "not always", "no longer", "generally", "typically", "usually",
                "(?:commercially )?reasonable efforts", "best efforts", "as far as", "help ensure",
                "where possible", "if possible", "to the extent possible")
QUALIFIERS = _words("at a minimum", "always", "all", "every", "only", "strong",
                    "rigorous(?:ly)?", "substantially", "fully", "promptly", "immediately",
                    "unredacted", "independent", "publicly", "explicitly")
LIST_WORDS = frozenset({"and", "or"})
FUNCTION_WORDS = frozenset({"and", "the", "for", "any", "our", "its", "with", "from", "into",
                            "other", "such", "including"})

# (stronger wording, weaker wording, what the swap is called)
REPLACEMENTS: tuple[tuple[str, str, str], ...] = (
    ("updated", "reviewed", "verb downgrade"), ("update", "review", "verb downgrade"),
    ("halt", "review", "verb downgrade"), ("halt", "pause", "verb downgrade"),
    ("stop", "pause", "verb downgrade"), ("stop", "develop with mitigations", "verb downgrade"),
    ("require", "recommend", "verb downgrade"), ("requires", "recommends", "verb downgrade"),
    ("required", "recommended", "verb downgrade"), ("prohibit", "discourage", "verb downgrade"),
    ("prohibits", "discourages", "verb downgrade"), ("prohibited", "discouraged", "verb downgrade"),
    ("prohibited", "restricted", "verb downgrade"), ("ensure", "help", "verb downgrade"),
    ("commitment", "goal", "binding -> aspirational"),
    ("commitments", "goals", "binding -> aspirational"),
    ("commitments", "aspirations", "binding -> aspirational"),
    ("commitments", "objectives", "binding -> aspirational"),
    ("commit", "aim", "binding -> aspirational"),
    ("commit to", "aim to", "binding -> aspirational"),
    ("requirements", "recommendations", "binding -> aspirational"),
    ("requirements", "guidelines", "binding -> aspirational"),
    ("rules", "guidelines", "binding -> aspirational"),
    ("consent", "manage", "consent -> opt-out"), ("consent", "opt out", "consent -> opt-out"),
    ("all", "some", "scope narrowed"), ("all", "certain", "scope narrowed"),
    ("all", "most", "scope narrowed"), ("all", "many", "scope narrowed"),
    ("every", "some", "scope narrowed"), ("any", "some", "scope narrowed"),
    ("any", "certain", "scope narrowed"), ("always", "generally", "scope narrowed"),
    ("always", "usually", "scope narrowed"), ("always", "often", "scope narrowed"),
    ("match or exceed", "exceed", "scope narrowed"), ("meet or exceed", "exceed", "scope narrowed"),
    ("meet or exceed", "approach", "scope narrowed"), ("meet or exceed", "match", "scope narrowed"),
    ("before", "at or after", "scope narrowed"), ("prior to", "after", "scope narrowed"),
)

OPPOSITE = {"verb downgrade": "verb upgrade", "binding -> aspirational": "aspirational -> binding",
            "scope narrowed": "scope widened", "consent -> opt-out": "opt-out -> consent"}
"""What each swap is called when it runs the other way."""

NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "eighteen": 18,
    "twenty": 20, "thirty": 30, "forty": 40, "forty five": 45, "fifty": 50, "sixty": 60,
    "ninety": 90, "hundred": 100,
}
UNIT_DAYS = {"hour": 1 / 24, "day": 1, "week": 7, "month": 30, "quarter": 91, "year": 365}
CADENCES = {"daily": 1, "weekly": 7, "monthly": 30, "quarterly": 91, "annually": 365,
            "yearly": 365, "biannually": 182}
_NUMBER = r"\d+(?:\.\d+)?|" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True))
DURATION = re.compile(
    rf"\b(?P<low>{_NUMBER})(?:\s*(?:-|to|or)\s*(?P<high>{_NUMBER}))?\s*-?\s*"
    r"(?:calendar |business |working )?(?P<unit>hour|day|week|month|quarter|year)s?\b"
    r"(?!\s+(?:old|of age))"                  # an age is not a deadline
    rf"|\b(?P<cadence>{'|'.join(CADENCES)})\b"
)
REFERENCE = re.compile(r"\b(?:section|sections|sec|article|clause|paragraph|appendix|annex|part|"
                       r"table|figure|schedule|chapter|step|tier|level|footnote)\s+"
                       r"(?:[a-z]\.?)?\d+(?:\.\d+)*[a-z]?\b"
                       r"(?:\s*(?:-|to|through|and)\s*(?:[a-z]\.?)?\d+(?:\.\d+)*[a-z]?\b)*")
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
          "october", "november", "december")
_MONTH = "|".join(MONTHS)
DATE = re.compile(rf"\b(?P<month>{_MONTH})\s+(?P<day>\d{{1,2}})\s*,?\s*(?P<year>\d{{4}})\b"
                  rf"|\b(?P<day_first>\d{{1,2}})\s+(?P<month_second>{_MONTH})\s*,?\s*"
                  r"(?P<year_second>\d{4})\b|\b(?P<iso>\d{4}-\d{2}-\d{2})\b")
"""A calendar date: "March 3, 2025", "3 March 2025" or "2025-03-03" (casefolded text)."""
DEADLINE = re.compile(r"\b(?:by|before|until|no later than|prior to)\s+$")
EFFECTIVE = re.compile(r"\b(?:effective|take[sn]? effect|in effect|come into force|"
                       r"comes into force|apply from|applies from|last (?:updated|modified))\b")
"""A sentence that dates the document itself ("These terms take effect on 5 January 2022"):
its date is a stamp, not a deadline."""


EMAIL = re.compile(r"\[email(?:&#160;|\s)protected\]|[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
"""An address, or Cloudflare's "[email protected]" stand-in for one, which flaps between fetches."""


