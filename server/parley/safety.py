"""Off-platform contact warnings: what in a text message would take a buyer off the platform,
where the marketplace cannot protect them. The message is still delivered; it carries the
kinds found (``safety``), and the recipient's app warns under it.

Kinds, in this order: ``phone`` (phonenumbers, Google's libphonenumber, in the configured
default region), ``email`` (obfuscated too: "anna at mail dot com"), ``link`` (to a host
outside the safe ones), ``iban`` (only with a valid checksum) and ``payment`` (phrases such
as "Western Union" or "PayPal friends", from a configurable list). No I/O: text in, kinds out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

import phonenumbers
from phonenumbers import Leniency, PhoneNumberMatcher

KINDS: Final = ("phone", "email", "link", "iban", "payment")

# Payment outside the platform, in a few languages: services, and the phrases scammers use.
DEFAULT_PAYMENT_PHRASES: Final = (
    "western union",
    "moneygram",
    "paypal friends",
    "friends and family",
    "friends & family",
    "paypal f&f",
    "zelle",
    "venmo",
    "cash app",
    "gift card",
    "bank transfer",
    "wire transfer",
    "bitcoin",
    "paypal freunde",
    "freunde und familie",
    "vorkasse",
    "überweisung",
    "virement bancaire",
    "mandat cash",
    "transferencia bancaria",
    "bizum",
    "bonifico",
    "postepay",
    "przelew",
    "blik",
)

# A phone number needs at least this many digits; anything with fewer is not scanned for one
# (prices, dates and sizes), which keeps phonenumbers off nearly every message.
_MIN_PHONE_DIGITS: Final = 7
# The fewest digits an IBAN has (a Dutch one: NL, 2 check digits, 4 letters, 10 digits).
_MIN_IBAN_DIGITS: Final = 12
_DIGIT = re.compile(r"\d")
# E-mail addresses: with an "@" (spaces around it and the dots allowed: "bob @ mail . com"),
# or spelled out ("anna at mail dot com", "jan [at] wp [dot] pl", "max(at)web.de"), where the
# address must end in a known top-level domain so that "meet at noon.Then" is not one.
_TLDS: Final = (
    "com|net|org|info|biz|io|co|me|ly|app|link|page|site|online|shop|store|xyz|eu|de|at|ch|"
    "fr|es|it|nl|be|pl|pt|uk|ie|se|no|dk|fi|ru|ua|tr|us|ca|br|mx|in"
)
_LOCAL = r"[a-z0-9][a-z0-9._%+-]*"
_EMAIL = re.compile(
    rf"{_LOCAL}\s*@\s*[a-z0-9-]+(?:\s*\.\s*[a-z0-9-]+)*\s*\.\s*[a-z]{{2,24}}\b", re.IGNORECASE
)
_SPELLED_AT = r"(?:\s*[\[(]\s*at\s*[\])]\s*|\s+at\s+)"
_SPELLED_DOT = r"(?:\.|\s*[\[(]\s*dot\s*[\])]\s*|\s+dot\s+)"
_SPELLED_EMAIL = re.compile(
    rf"{_LOCAL}{_SPELLED_AT}[a-z0-9-]+(?:{_SPELLED_DOT}[a-z0-9-]+)*{_SPELLED_DOT}(?:{_TLDS})\b",
    re.IGNORECASE,
)
# Links: a scheme or "www.", or a bare host with a common top-level domain.
_LINK = re.compile(
    rf"(?:https?://|www\.)[^\s<>\"']+|\b(?:[a-z0-9-]+\.)+(?:{_TLDS})\b(?:/[^\s<>\"']*)?",
    re.IGNORECASE,
)
_HOST = re.compile(r"^(?:https?://)?([^/:?#\s]+)", re.IGNORECASE)
# What a link or an address cannot lack, found without trying every position of the text.
_HOST_HINT = re.compile(rf"\.(?:{_TLDS})\b|://|www\.|[\[(]\s*dot\s*[\])]")
_AT_HINT = re.compile(r"\sat\s|[\[(]\s*at\s*[\])]")
# An IBAN as people write it: a country, check digits, then letters and digits, in groups of
# four or not. The country fixes the length (ISO 13616's registry), so the text after it
# ("… 606 merci") is never read as part of it.
_IBAN = re.compile(r"\b([A-Z]{2})(\d{2}(?:\s?[A-Z0-9]){11,30})", re.IGNORECASE)
_IBAN_LENGTHS: Final = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20,
    "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18,
    "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "JO": 30,
    "KW": 30, "KZ": 20, "LB": 28, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24,
    "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24,
    "SM": 27, "TN": 24, "TR": 26, "UA": 29, "VG": 24, "XK": 20,
}  # fmt: skip


@dataclass(frozen=True)
class SafetyRules:
    """What to look for: the default region for phone numbers written nationally, hosts whose
    links are fine (and their subdomains), and payment phrases (lower case)."""

    region: str = "DE"
    safe_hosts: tuple[str, ...] = ()
    payment_phrases: tuple[str, ...] = DEFAULT_PAYMENT_PHRASES
    _phrases: re.Pattern[str] | None = field(default=None, init=False, compare=False)
    _words: tuple[str, ...] = field(default=(), init=False, compare=False)

    def __post_init__(self) -> None:
        words = sorted({p.strip().lower() for p in self.payment_phrases if p.strip()}, key=len)
        object.__setattr__(self, "_words", tuple(words))
        if words:
            alternatives = "|".join(re.escape(word) for word in reversed(words))
            pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
            object.__setattr__(self, "_phrases", pattern)

    def scan(self, text: str) -> list[str]:
        """The kinds of off-platform contact in ``text``, in KINDS order; [] for none.

        It runs on every text message before it is written, so each kind first asks what
        its matches cannot lack (digits, an "@" or "at", a dot, a phrase as a substring) and
        most messages never reach a regular expression or phonenumbers."""
        found = []
        lowered = text.lower()
        digits = len(_DIGIT.findall(text))
        if digits >= _MIN_PHONE_DIGITS and self._has_phone(text):
            found.append("phone")
        # A host: a dot and a top-level domain, spelled ("dot com") or not, or a scheme.
        host = _HOST_HINT.search(lowered) is not None
        emails: list[re.Match[str]] = []
        if "@" in text:
            emails += _EMAIL.finditer(text)
        if (host or " dot " in lowered) and _AT_HINT.search(lowered):
            emails += _SPELLED_EMAIL.finditer(text)
        if emails:
            found.append("email")
        if host and self._has_link(text, [m.span() for m in emails]):
            found.append("link")
        if digits >= _MIN_IBAN_DIGITS and any(
            _valid_iban(m.group(1), m.group(2)) for m in _IBAN.finditer(text)
        ):
            found.append("iban")
        phrase = self._phrases is not None and any(p in lowered for p in self._words)
        if phrase and self._phrases is not None and self._phrases.search(text):
            found.append("payment")
        return found

    def _has_phone(self, text: str) -> bool:
        matches = PhoneNumberMatcher(text, self.region, leniency=Leniency.VALID)
        return any(True for _ in matches)

    def _has_link(self, text: str, emails: list[tuple[int, int]]) -> bool:
        for match in _LINK.finditer(text):
            start, end = match.span()
            if any(a <= start and end <= b for a, b in emails):
                continue  # the domain of an e-mail address: that is the e-mail's flag
            host = _HOST.match(match.group(0))
            if host is None or not self._safe(host.group(1).lower().removeprefix("www.")):
                return True
        return False

    def _safe(self, host: str) -> bool:
        return any(host == safe or host.endswith("." + safe) for safe in self.safe_hosts)


def _valid_iban(country: str, rest: str) -> bool:
    """ISO 13616: as long as the country's IBANs are; then, with the country and check
    digits moved to the end and letters read as numbers (A = 10), the number modulo 97 is 1."""
    length = _IBAN_LENGTHS.get(country.upper())
    iban = (country + re.sub(r"\s", "", rest)).upper()
    if length is None or len(iban) < length:
        return False
    iban = iban[:length]
    digits = "".join(str(int(c, 36)) for c in iban[4:] + iban[:4])
    return int(digits) % 97 == 1


def kinds_in(rules: SafetyRules | None, message_type: str, content: str) -> tuple[str, ...]:
    """What to store with a message: found in text messages only, nothing when it is off."""
    return tuple(rules.scan(content)) if rules is not None and message_type == "text" else ()


def region_known(region: str) -> bool:
    """Whether phonenumbers knows ``region`` (a two-letter country code)."""
    return region.upper() in phonenumbers.SUPPORTED_REGIONS
