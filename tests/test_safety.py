"""Off-platform contact warnings: a table of texts in several languages, each with the kinds
it must be flagged with, and ordinary texts (prices, dates, order numbers) that must not be."""

from __future__ import annotations

import pytest

from parley.safety import KINDS, SafetyRules

RULES = SafetyRules(region="DE", safe_hosts=("marketplace.example",))

TABLE: list[tuple[str, list[str]]] = [
    # Phone numbers, in national and international formats.
    ("Ruf mich an: 0151 23456789", ["phone"]),
    ("Call me on +44 7911 123456 tonight", ["phone"]),
    ("mon numéro: +33 6 12 34 56 78", ["phone"]),
    ("llámame al +34 612 34 56 78", ["phone"]),
    ("WhatsApp +49 (0)30 1234567 please", ["phone"]),
    ("text me at (212) 555-0198, I'm in NYC: +1 212 555 0198", ["phone"]),
    ("scrivimi al +39 347 123 4567", ["phone"]),
    # E-mail addresses, plain and obfuscated.
    ("write to anna.schmidt@gmail.com", ["email"]),
    ("my mail is anna at gmail dot com", ["email"]),
    ("contact: jan [at] wp [dot] pl", ["email"]),
    ("schreib mir: max(at)web.de", ["email"]),
    ("email @ me: bob.smith @ outlook . com", ["email"]),
    # Links, outside the safe hosts; the marketplace's own are fine.
    ("see the photos at https://imgur.com/a/xyz", ["link"]),
    ("better price on www.cheap-phones.shop", ["link"]),
    ("pay here: secure-pay.ru/checkout", ["link"]),
    ("it's listed at https://marketplace.example/item/7010", []),
    ("also on shop.marketplace.example/u/mary", []),
    # IBANs: only a valid checksum counts.
    ("IBAN DE89 3704 0044 0532 0130 00, bitte", ["iban"]),
    ("send it to GB82WEST12345698765432", ["iban"]),
    ("FR14 2004 1010 0505 0001 3M02 606 merci", ["iban"]),
    ("DE89 3704 0044 0532 0130 01 (a typo)", []),
    ("GB82WEST12345698765433", []),
    # Payment outside the platform, in several languages.
    ("I only accept Western Union", ["payment"]),
    ("pay with PayPal friends and family please", ["payment"]),
    ("Zahlung nur per Vorkasse oder Überweisung", ["payment"]),
    ("paiement par virement bancaire uniquement", ["payment"]),
    ("te lo mando por Bizum", ["payment"]),
    ("pagamento con bonifico o Postepay", ["payment"]),
    # Several at once, in KINDS order.
    (
        "Western Union to DE89370400440532013000 or call +49 151 23456789",
        ["phone", "iban", "payment"],
    ),
    ("mail anna@gmx.de, photos on https://imgur.com/x", ["email", "link"]),
    # Ordinary texts: prices, dates, sizes, order numbers, times.
    ("Would you take 420?", []),
    ("Is it still available? I can pay 1.250,00 € in cash at pickup.", []),
    ("Pickup on 12.03.2026 at 14:30 works for me", []),
    ("Order 4471-2291 arrived, thanks!", []),
    ("Frame 56 cm, 21 speeds, 9.8 kg, bought 2019", []),
    ("iPhone 13, 128 GB, battery 91%, €450", []),
    ("Das Paket wiegt 2,5 kg, Maße 30x20x10 cm", []),
    ("Le prix est 35 € pour les deux lampes.", []),
    ("e.g. the charger and the box, i.e. everything", []),
    ("Meet at 10.30 near the station? Version 2.0.1 of the app", []),
]


@pytest.mark.parametrize(("text", "kinds"), TABLE)
def test_each_text_gets_exactly_its_kinds(text: str, kinds: list[str]) -> None:
    assert RULES.scan(text) == kinds


def test_the_table_covers_every_kind_and_enough_ordinary_texts() -> None:
    assert len(TABLE) >= 30
    assert {kind for _, kinds in TABLE for kind in kinds} == set(KINDS)
    assert sum(1 for _, kinds in TABLE if not kinds) >= 10


def test_payment_phrases_are_configurable_and_whole_words() -> None:
    rules = SafetyRules(payment_phrases=("sofortüberweisung", "crypto"))
    assert rules.scan("nur Sofortüberweisung!") == ["payment"]
    assert rules.scan("pay in Crypto") == ["payment"]
    assert rules.scan("cryptography book, like new") == []
    assert rules.scan("I only accept Western Union") == []  # not on this list
    assert SafetyRules(payment_phrases=()).scan("western union") == []


def test_a_national_number_is_read_in_the_configured_region() -> None:
    assert SafetyRules(region="GB").scan("ring 07911 123456") == ["phone"]
    assert SafetyRules(region="US").scan("ring 07911 123456") == []
