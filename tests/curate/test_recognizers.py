"""The recognizers curatune adds to Presidio: each finds what it is for and only the value itself."""

from __future__ import annotations

import pytest

from curatune.curate.pii.places import PlaceRecognizer
from curatune.curate.pii.recognizers import ContextNameRecognizer, cued_phone_recognizer, cued_postcode_recognizer


def _found(recognizer, text: str) -> list[str]:
    return [text[r.start:r.end] for r in recognizer.analyze(text, [])]


@pytest.mark.parametrize(("text", "places"), [
    ("Snellmaninkatu 55\nApt. 022\nESPOO\nFinland 23221", ["ESPOO", "Finland"]),
    ("we moved from belgium to New York last year", ["belgium", "New York"]),
    ("shipped to Los Angeles, United States", ["Los Angeles", "United States"]),
    ("Reading the manual on my Mobile in the Centre", []),  # city names that are ordinary words
    ("my order went to the wrong address", []),
])
def test_places(text, places):
    assert _found(PlaceRecognizer(), text) == places


@pytest.mark.parametrize(("text", "codes"), [
    ("Apt. 022\nESPOO\nFinland 23221", ["23221"]),  # the postcode, not "Finland 23221"
    ("my zip code is 610", ["610"]),
    ("ZIP: 75534-030", ["75534-030"]),
    ("postcode: SW1A 1AA", ["SW1A 1AA"]),
    ("I paid 12000 dollars", []),
])
def test_cued_postcodes(text, codes):
    assert sorted(set(_found(cued_postcode_recognizer(), text))) == codes


@pytest.mark.parametrize(("text", "numbers"), [
    ("Phone:\n780 6326\n\nE-mail: x", ["780 6326"]),
    ("655 437 108 office\n+46 (0)179 459 33 fax", ["655 437 108", "+46 (0)179 459 33"]),
    ("my mobile number is 51 516 33 75", ["51 516 33 75"]),
    ("the phone arrived broken on 12 May", []),
])
def test_cued_phone_numbers(text, numbers):
    assert _found(cued_phone_recognizer(), text) == numbers


@pytest.mark.parametrize(("text", "names"), [
    ("my name is vitoria", ["vitoria"]),
    ("hello, my name is john smith and I need help", ["john smith"]),
    ("my name is not important", []),
    ("Nora is very reliable.", ["Nora"]),
    ("Maybe the parcel is lost.", []),
])
def test_names_in_lower_case_and_at_sentence_start(text, names):
    assert _found(ContextNameRecognizer(), text) == names


@pytest.mark.parametrize(("text", "names"), [
    ("Name: Kamila Červinková\nPhone: 451 5986", ["Kamila Červinková"]),
    ("File name: report final", []),
    ("aksel kristensen\nstillwater supercomputing inc", ["aksel kristensen"]),  # a line that is only a name
    ("Apple Pay is not working", []),
])
def test_names_in_fields_and_on_their_own_line(text, names):
    assert _found(ContextNameRecognizer(), text) == names


@pytest.mark.parametrize(("text", "addresses"), [
    ("He lives on the north side of Rua Diadema 1903.", ["Rua Diadema 1903"]),
    ("772 ul. Narewska 94\nApt. 478\nPoznań", ["ul. Narewska 94\nApt. 478"]),  # the unit joins its street
    ("it is the corner of Dalbraut 99 and Frederikke Coves", ["Dalbraut 99 and Frederikke Coves"]),
    ("I need 2 units of 3 items", []),
])
def test_street_addresses(text, addresses):
    from curatune.curate.pii.recognizers import address_recognizer, cued_address_recognizer

    found = [text[r.start:r.end] for rec in (address_recognizer(), cued_address_recognizer())
             for r in rec.analyze(text, ["STREET_ADDRESS"])]
    assert sorted(set(found)) == sorted(addresses)


@pytest.mark.parametrize(("text", "places"), [
    ("I live at 12 Oak Street, New Monique 14748", ["New Monique"]),
    ("Lake Michelle, 65953", ["Lake Michelle"]),
    ("Order 12345 arrived late", []),
])
def test_town_before_a_postcode(text, places):
    from curatune.curate.pii.recognizers import cued_place_recognizer

    assert _found(cued_place_recognizer(), text) == places
