"""Other mentions of a found name: which words link one person, and which stay words."""

from __future__ import annotations

import pytest

from curatune.config import AnonymiseConfig
from curatune.curate.anonymise import Anonymiser, Conversation
from curatune.curate.pii.engine import RecognizerResult, repeated_names
from curatune.curate.pii.operators import EntityBook, Replacer


@pytest.fixture(scope="module")
def anonymiser() -> Anonymiser:
    return Anonymiser(AnonymiseConfig())


def _conversation(turns: list[tuple[str, str]]) -> Conversation:
    return Conversation.from_row({"text": "", "turns": [{"speaker": sp, "text": t} for sp, t in turns]})


def _rewritten(anonymiser: Anonymiser, turns: list[tuple[str, str]]) -> Conversation:
    conv = _conversation(turns)
    anonymiser.rewrite(conv, anonymiser.scan([conv])[0])
    return conv


def _texts(conv: Conversation) -> list[str]:
    return [t["text"] for t in conv.turns()]


def _person(text: str, word: str) -> RecognizerResult:
    start = text.index(word)
    return RecognizerResult("PERSON", start, start + len(word), 0.85)


# 1. A lower-case word NER calls a person once is not a name wherever else it is written.

def test_a_word_ner_takes_for_a_person_is_replaced_only_where_it_was_found(anonymiser, monkeypatch):
    detect = anonymiser.detector.detect

    def card_is_a_person(texts: list[str]) -> list[list[RecognizerResult]]:
        # spaCy has called one lower-case "card" of a long text a person.
        return [[*found, _person(t, "card")] if "card" in t else found
                for t, found in zip(texts, detect(texts), strict=True)]

    monkeypatch.setattr(anonymiser.detector, "detect", card_is_a_person)
    conv = _rewritten(anonymiser, [("customer", "my card was declined at the shop"),
                                   ("agent", "which card did you use?"), ("customer", "the blue card, Card two")])
    assert _texts(conv) == ["my <PERSON_1> was declined at the shop", "which card did you use?",
                            "the blue card, Card two"]
    assert dict(conv.counts) == {"PERSON": 1}


def test_a_name_found_only_in_lower_case_is_looked_for_if_the_gazetteer_knows_it():
    text = "my card is blocked, sanders here. the card says sanders"
    found = repeated_names(text, [_person(text, "card"), _person(text, "sanders")])
    assert [text[r.start:r.end] for r in found] == ["card", "sanders", "sanders"]


def test_a_name_a_cue_found_in_lower_case_is_looked_for_though_the_gazetteer_lacks_it(anonymiser):
    turns = [("customer", "my name is borna jerković, and borna is the name on the card"),
             ("customer", "everyone calls me borna")]
    assert _texts(_rewritten(anonymiser, turns)) == ["my name is <PERSON_1>, and <PERSON_1> is the name on the card",
                                                     "everyone calls me <PERSON_1>"]


# 2. A name found capitalised is replaced in lower case too, unless it is an ordinary word.

def test_a_name_found_capitalised_is_replaced_where_it_is_written_in_lower_case(anonymiser):
    turns = [("customer", "My name is Bartholomew Quackenbush."), ("agent", "Can you confirm your name?"),
             ("customer", "yes, bartholomew."), ("agent", "Ok quackenbush.")]
    # The leak scan reads with the same detection: it finds the lower-case mentions too.
    conv = _conversation(turns)
    assert anonymiser.scan([conv])[0][5::2] == [[(5, 16, "PERSON")], [(3, 14, "PERSON")]]
    conv = _rewritten(anonymiser, turns)
    assert _texts(conv) == ["My name is <PERSON_1>.", "Can you confirm your name?", "yes, <PERSON_1>.",
                            "Ok <PERSON_1>."]
    assert dict(conv.counts) == {"PERSON": 3}
    assert anonymiser.scan([conv]) == [[[]] * 8]


def test_a_surname_that_is_an_ordinary_word_stays_a_word_in_lower_case(anonymiser):
    conv = _rewritten(anonymiser, [("customer", "Hi, I'm Grace Little."),
                                   ("agent", "Thanks Grace, Ms Little. A little wait please."), ("customer", "ok")])
    assert _texts(conv) == ["Hi, I'm <PERSON_1>.", "Thanks <PERSON_1>, Ms <PERSON_1>. A little wait please.", "ok"]
    # A word the text used before the name was given stays that word.
    conv = _rewritten(anonymiser, [("customer", "I asked the baker for a refund. My name is Tom Baker."),
                                   ("agent", "ok, what did the baker say?")])
    assert _texts(conv) == ["I asked the baker for a refund. My name is <PERSON_1>.", "ok, what did the baker say?"]
    assert dict(conv.counts) == {"PERSON": 1}


def test_a_contraction_ner_takes_for_a_name_is_not_looked_for():
    text = "It's the speaker from my order.\nI checked and it's fine."
    found = repeated_names(text, [_person(text, "It's")])
    assert [text[r.start:r.end] for r in found] == ["It's"]


# 3. A title is no part of a name: it stays before the placeholder and one person keeps one number.

def test_a_title_stays_before_the_placeholder_and_links_one_person(anonymiser):
    conv = _rewritten(anonymiser, [("customer", "My name is Maria Gonzalez"),
                                   ("agent", "Sorry Ms Gonzalez, and thanks Mrs. Gonzalez"),
                                   ("customer", "Bye Gonzalez")])
    assert _texts(conv) == ["My name is <PERSON_1>", "Sorry Ms <PERSON_1>, and thanks Mrs. <PERSON_1>",
                            "Bye <PERSON_1>"]
    assert dict(conv.counts) == {"PERSON": 4}
    assert anonymiser.scan([conv]) == [[[]] * 6]


def test_a_title_alone_is_no_person_and_a_first_name_in_lower_case_is_replaced(anonymiser):
    conv = _rewritten(anonymiser, [("customer", "This is Dr. John Smith."), ("agent", "Can I call you John?"),
                                   ("customer", "yes john.")])
    assert _texts(conv) == ["This is Dr. <PERSON_1>.", "Can I call you <PERSON_1>?", "yes <PERSON_1>."]
    assert dict(conv.counts) == {"PERSON": 3}


def test_a_surname_after_a_title_gets_the_surrogate_of_the_full_name(anonymiser, monkeypatch):
    monkeypatch.setattr(anonymiser, "replacer", Replacer("surrogate", {}, b"s3cret"))
    conv = _rewritten(anonymiser, [("customer", "My name is Maria Gonzalez"),
                                   ("agent", "Sorry Ms Gonzalez, and thanks Mrs. Gonzalez"), ("customer", "Bye Maria")])
    first, last = _texts(conv)[0].removeprefix("My name is ").split()
    assert _texts(conv)[1:] == [f"Sorry Ms {last}, and thanks Mrs. {last}", f"Bye {first}"]
    assert "Gonzalez" not in last and "Maria" not in first


def test_a_name_in_capitals_is_a_person_and_shouted_words_are_not(anonymiser):
    """NER does not read "MARIA GONZALEZ" as a name: it went out with a leak scan of 0."""
    conv = _rewritten(anonymiser, [("customer", "Contact: MARIA GONZALEZ, phone on file"),
                                   ("agent", "CARD DECLINED AGAIN? PLEASE HOLD, WHERE IS MY REFUND MARK")])
    assert _texts(conv) == ["Contact: <PERSON_1>, phone on file",
                            "CARD DECLINED AGAIN? PLEASE HOLD, WHERE IS MY REFUND MARK"]
    assert dict(conv.counts) == {"PERSON": 1}


def test_values_written_with_html_character_references_are_found_and_replaced_whole(anonymiser):
    """Help-desk exports write "&nbsp;" and "&#64;": "07700&nbsp;900123" and "Maria&nbsp;Gonzalez"
    went out as they came, and of "maria.gonzalez&#64;example.com" only the host was replaced."""
    conv = _rewritten(anonymiser, [
        ("customer", "Maria&nbsp;Gonzalez here, call me on 07700&nbsp;900123 or +44&#160;7700&#160;900124"),
        ("agent", "I&#39;ll e-mail maria.gonzalez&#64;example.com &amp; &lt;maria.g@example.org&gt;")])
    assert _texts(conv) == [
        "<PERSON_1> here, call me on <PHONE_NUMBER_1> or <PHONE_NUMBER_2>",
        "I&#39;ll e-mail <EMAIL_ADDRESS_1> &amp; &lt;<EMAIL_ADDRESS_2>&gt;"]
    assert anonymiser.scan([conv]) == [[[]] * 4]  # and the leak scan reads them the same way


def test_a_name_between_tags_is_found_and_the_tags_stay_whole(anonymiser):
    """spaCy read "Okonkwo</p>" as one token: the name took the closing tag with it, and between two
    tags ("<b>Zebulon Okonkwo</b>") a name was not found at all."""
    conv = _rewritten(anonymiser, [("customer", "<p>My name is Zebulon Okonkwo</p>"),
                                   ("agent", "<p>Hi,</p><p><b>Zebulon Okonkwo</b></p><br/> see <maria@example.com>")])
    assert _texts(conv) == ["<p>My name is <PERSON_1></p>",
                            "<p>Hi,</p><p><b><PERSON_1></b></p><br/> see <<EMAIL_ADDRESS_1>>"]


def test_a_value_in_angle_brackets_that_is_no_html_element_is_read(anonymiser):
    """Every word in angle brackets was blanked as a tag, in the first pass and the leak scan alike: a
    chat log's "<Maria>" and a reference "<ACCT12345678>" went out unread. A word the text closes
    ("<message>...</message>") is still a tag."""
    conv = _rewritten(anonymiser, [("customer", "<Maria> my card is blocked, ref <ACCT12345678>"),
                                   ("agent", "<message>my name is Zebulon Okonkwo</message>")])
    assert _texts(conv) == ["<<PERSON_1>> my card is blocked, ref <<ACCOUNT_ID_1>>",
                            "<message>my name is <PERSON_2></message>"]


# 3. A name typed over two messages of one speaker.

@pytest.mark.parametrize(("turns", "rewritten"), [
    ([("agent", "Can I have your full name please?"), ("customer", "John"), ("customer", "Smith.")],
     ["Can I have your full name please?", "<PERSON_1>", "<PERSON_1>."]),
    ([("agent", "What is your name?"), ("customer", "my name is maria"), ("customer", "gonzalez")],
     ["What is your name?", "my name is <PERSON_1>", "<PERSON_1>"]),
    # Not a name: an ordinary word, a word the gazetteer does not know, or another speaker's message.
    ([("customer", "my name is maria"), ("customer", "Thanks")], ["my name is <PERSON_1>", "Thanks"]),
    ([("customer", "my name is maria"), ("customer", "refund please")], ["my name is <PERSON_1>", "refund please"]),
    ([("customer", "my name is Maria"), ("agent", "Smith")], ["my name is <PERSON_1>", "Smith"]),
    # The found name must end its message.
    ([("customer", "my name is Maria, hi"), ("customer", "Smith")], ["my name is <PERSON_1>, hi", "Smith"]),
])
def test_a_surname_sent_as_the_next_message_is_the_same_person(anonymiser, turns, rewritten):
    """Chat users split what they type: "John" / "Smith" went out with "Smith" as it was."""
    conv = _rewritten(anonymiser, turns)
    assert _texts(conv) == rewritten
    assert dict(conv.counts)["PERSON"] == sum(t.count("<PERSON_1>") for t in rewritten)


def test_a_name_over_two_messages_takes_the_surrogate_of_the_full_name(anonymiser, monkeypatch):
    """With surrogates, the two pieces read as one person's first name and surname."""
    replacer = Replacer("surrogate", {}, b"s3cret")
    monkeypatch.setattr(anonymiser, "replacer", replacer)
    conv = _rewritten(anonymiser, [("customer", "It's John"), ("customer", "Smith")])
    first, last = replacer("PERSON", "John Smith", EntityBook()).split()
    assert _texts(conv) == [f"It's {first}", last]


@pytest.mark.parametrize(("question", "answer", "rewritten"), [
    ("What's your last name?", "it's gonzalez", "it's <PERSON_1>"),
    ("And your surname, please?", "nguyen", "<PERSON_1>"),
    ("What's your family name?", "brown", "<PERSON_1>"),
    # A lower-case surname alone answering "your name?" stays: "your name?" asks for a first name.
    ("What is your name?", "it's gonzalez", "it's gonzalez"),
    ("What's your last name?", "why do you need it", "why do you need it"),
])
def test_a_surname_in_lower_case_answering_a_surname_question_is_replaced(anonymiser, question, answer, rewritten):
    conv = _rewritten(anonymiser, [("agent", question), ("customer", answer)])
    assert _texts(conv)[1] == rewritten
