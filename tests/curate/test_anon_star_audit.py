"""Findings of an end-to-end audit on STAR dialogues: each case is a turn or two as the dialogues
wrote them, with what the anonymised text must read."""

from __future__ import annotations

import pytest

from curatune.config import AnonymiseConfig
from curatune.curate.anonymise import Anonymiser, Conversation


@pytest.fixture(scope="module")
def anonymiser() -> Anonymiser:
    return Anonymiser(AnonymiseConfig())


def _texts(anonymiser: Anonymiser, turns: list[tuple[str, str]]) -> list[str]:
    conv = Conversation.from_row({"text": "", "turns": [{"speaker": sp, "text": t} for sp, t in turns]})
    anonymiser.rewrite(conv, anonymiser.scan([conv])[0])
    return [t["text"] for t in conv.turns()]


@pytest.mark.parametrize(("text", "expected"), [
    # A full stop without its space after it: no host, the match would cut "Does" in two.
    ("Expensive.Does not take reservations or deliver.", "Expensive.Does not take reservations or deliver."),
    # An ordinary word joined to a two-letter top-level domain.
    ("darn it..do you know what type of vehicle?", "darn it..do you know what type of vehicle?"),
    ("Go to www.example.com or https://shop.example.de/help", "Go to <URL_1> or <URL_2>"),
    ("Mail us via example.com today", "Mail us via <URL_1> today"),
])
def test_a_sentence_run_into_the_next_is_no_url(anonymiser, text, expected):
    assert _texts(anonymiser, [("agent", text)]) == [expected]


@pytest.mark.parametrize(("question", "answer", "expected"), [
    ("May I have your name, please?", "My name is Alina", "My name is <PERSON_1>"),
    ("Please provide your name.", "My name is Chewie", "My name is <PERSON_1>"),
    ("May I have your name, please?", "Yes its Alina", "Yes its <PERSON_1>"),
])
def test_a_name_after_a_name_cue_is_a_person_not_a_place(anonymiser, question, answer, expected):
    assert _texts(anonymiser, [("agent", question), ("customer", answer)])[1] == expected


@pytest.mark.parametrize(("question", "answer", "expected"), [
    ("Please provide your name.", "Leia", "<PERSON_1>"),
    ("Please provide your name.", "Yoda", "<PERSON_1>"),
    ("Please provide your name.", "Han", "<PERSON_1>"),
    ("Please provide your name.", "Kylo. Please hurry!", "<PERSON_1>. Please hurry!"),
    ("Please provide your name.", "I'm Kylo!!!!", "I'm <PERSON_1>!!!!"),
    ("Please provide your name.", "First Officer Yoda", "First Officer <PERSON_1>"),
    ("Could I have your name, please?", "alexis", "<PERSON_1>"),
    ("May I have your name, please?", "Like you dont know it by now? It's mark !",
     "Like you dont know it by now? It's <PERSON_1> !"),
    ("May I have your name, please?", "Its alexis, im at the corner right now",
     "Its <PERSON_1>, im at the corner right now"),
    ("May I have your name, please?", "This is so dumb. YES ITS ANGELA!", "This is so dumb. YES ITS <PERSON_1>!"),
    ("May I have your name, please?", "Name Angela.", "Name <PERSON_1>."),
    # The words that say an answer follows stay: the name follows them.
    ("What is your name?", "Its Jane Doe", "Its <PERSON_1>"),
    ("What is your name?", "It's Tyler Jones", "It's <PERSON_1>"),
    ("May I have your name, please?", "Alina here.", "<PERSON_1> here."),
    ("Name and flight ID, please?", "Really you need that info, geez..... Alexis 844, please hurry up!!!",
     "Really you need that info, geez..... <PERSON_1> 844, please hurry up!!!"),
    ("May I have your name, departure location and arrival location please?",
     "Alexis from 'Forbes' to 'Main'.", "<PERSON_1> from 'Forbes' to 'Main'."),
    # Ordinary words stay words, in the answer too.
    ("May I have your name, please?", "Why?", "Why?"),
    ("May I have your name, please?", "It's urgent!", "It's urgent!"),
    ("May I have your name, please?", "I'm busy.", "I'm busy."),
    ("May I have your name, please?", "Sure", "Sure"),
    ("Please provide your name.", "Hurry up!", "Hurry up!"),
])
def test_a_name_given_in_answer_to_a_name_question(anonymiser, question, answer, expected):
    assert _texts(anonymiser, [("agent", question), ("customer", answer)])[1] == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Hi! My name is Angela and I'd like to RSVP for Ben's party.",
     "Hi! My name is <PERSON_1> and I'd like to RSVP for <PERSON_2>'s party."),
    ("Unfortunately John is not able to make Sunday @ 2 pm.",
     "Unfortunately <PERSON_1> is not able to make Sunday @ 2 pm."),
    ("Mother's maiden name is Cooper", "Mother's maiden name is <PERSON_1>"),
    # Kin words and a bank's words are no names; nor is a word that only some name is spelt like.
    ("oh man, I don't remember it. Can I give you my Mom's maiden name instead?",
     "oh man, I don't remember it. Can I give you my Mom's maiden name instead?"),
    ("Fraud report is I am losing tons of money from my account",
     "Fraud report is I am losing tons of money from my account"),
    ("My Manager is away today.", "My Manager is away today."),
    ("Hey AI! can you halp me please?", "Hey AI! can you halp me please?"),
    ("Hey ANGELA! can you help me please?", "Hey <PERSON_1>! can you help me please?"),
    # Nor is a bank's word in the plural, nor what follows "call me" when it is no name.
    ("Did you try both Pins?  I had a zoo at my house as a kid.",
     "Did you try both Pins?  I had a zoo at my house as a kid."),
    ("I forgot it. Don't call me dumb", "I forgot it. Don't call me dumb"),
    ("fraud? Please don't call me anymore. I'm old and trying to rest",
     "fraud? Please don't call me anymore. I'm old and trying to rest"),
    # A name in lower case after "call me" still is one: known to the gazetteer, or spelt like no English word.
    ("you can call me mike", "you can call me <PERSON_1>"),
    ("sometimes people call me višeslav", "sometimes people call me <PERSON_1>"),
    ("everyone calls me borna", "everyone calls me <PERSON_1>"),
])
def test_an_acronym_or_ordinary_word_is_no_part_of_a_person(anonymiser, text, expected):
    assert _texts(anonymiser, [("customer", text)]) == [expected]


@pytest.mark.parametrize(("question", "answer", "expected"), [
    ("Right, and your PIN as well please.", "I trust you. 1596", "I trust you. <PASSCODE_1>"),
    ("That's ok, how about your pin number?", "I do know that.  7402.  ", "I do know that.  <PASSCODE_1>.  "),
    ("What is the name of your pet?", "His name is Buddy", "His name is <PERSON_1>"),
    ("And what was the name of the pet you had as a child?", "That's easy.  Buddy", "That's easy.  <PERSON_1>"),
    ("And what was the name of the pet you had as a child?", "Nemo of course, I loved that book as a child.",
     "<PERSON_1> of course, I loved that book as a child."),
    # An acknowledgement opening the answer is no name; the name after it is.
    ("And what was the name of the pet you had as a child?", "Awesome question, Snowball.",
     "Awesome question, <PERSON_1>."),
    # Not every number after the question is the code.
    ("Right, and your PIN as well please.", "I have 2 cards", "I have 2 cards"),
])
def test_a_secret_given_after_other_words_in_the_answer(anonymiser, question, answer, expected):
    assert _texts(anonymiser, [("agent", question), ("customer", answer)])[1] == expected


def test_a_name_that_is_a_modal_verb_asking_a_question_is_no_person(anonymiser):
    # Names in the dialogue make NER run over it, and NER reads the "May" of "May I" as a person.
    texts = _texts(anonymiser, [("agent", "Could I get your full name, please?"), ("customer", "Tyler Jones."),
                                ("agent", "That's okay, we can confirm your identity in another way.  May I have "
                                          "your date of birth please?")])
    assert texts[1] == "<PERSON_1>."
    assert texts[2] == ("That's okay, we can confirm your identity in another way.  May I have your date of birth "
                        "please?")


def test_an_account_number_and_a_pin_in_successive_turns_are_two_values_not_one_card(anonymiser):
    texts = _texts(anonymiser, [("agent", "Can you tell me your account number, please?"), ("customer", "93418043810"),
                                ("agent", "Right, and your PIN as well please."),
                                ("customer", "5380 gosh I hope there is enough in there")])
    assert texts[1] == "<ACCOUNT_ID_1>"
    assert texts[3] == "<PASSCODE_1> gosh I hope there is enough in there"


@pytest.mark.parametrize(("turns", "expected"), [
    # The answer comes turns after the question, a turn of one word.
    ([("agent", "What was your mother's maiden name?"),
      ("customer", "thank goodness I checked my account before I went shopping."),
      ("agent", "I am sorry, I don't quite understand what you mean."), ("customer", "Sanchez")], "<PERSON_1>"),
    ([("customer", "Do you need my childhood pet name?"), ("agent", "we can try. Can you remember it?"),
      ("customer", "Poppy")], "<PERSON_1>"),
    # Up to the fourth turn after it.
    ([("agent", "What was your mother's maiden name?"), ("customer", "hmm"), ("agent", "Anything else?"),
      ("customer", "no"), ("customer", "Sanchez")], "<PERSON_1>"),
    # A word no name is spelt like, or the fifth turn on, answers nothing.
    ([("agent", "What was your mother's maiden name?"), ("customer", "hmm"), ("agent", "Anything else?"),
      ("customer", "Thanks.")], "Thanks."),
    ([("agent", "What was your mother's maiden name?"), ("customer", "hmm"), ("agent", "Anything else?"),
      ("customer", "no"), ("agent", "ok?"), ("customer", "Sanchez")], "Sanchez"),
    # Nor an acknowledgement, though it is no common English word to Faker's list.
    ([("agent", "What was your mother's maiden name?"), ("customer", "hmm"), ("agent", "ok"),
      ("customer", "Perfect.")], "Perfect."),
    ([("agent", "What was your pet's name?"), ("customer", "hmm"), ("agent", "ok"), ("customer", "Cool")], "Cool"),
])
def test_a_security_answer_given_turns_after_its_question(anonymiser, turns, expected):
    assert _texts(anonymiser, turns)[-1] == expected


@pytest.mark.parametrize(("text", "expected"), [
    # After "PIN:", any one word before the number: a hedge misspelt.
    ("Just remembered my PIN: eitehr 3941 or 0314", "Just remembered my PIN: eitehr <PASSCODE_1> or <PASSCODE_2>"),
    # Not two words: "blocked since" says what the number is.
    ("my PIN: blocked since 2019", "my PIN: blocked since 2019"),
])
def test_a_pin_after_a_colon_and_a_word(anonymiser, text, expected):
    assert _texts(anonymiser, [("customer", text)]) == [expected]


@pytest.mark.parametrize(("text", "expected"), [
    ("Ah yes, I remember now.  I have a pin - is that useful for you? 0314",
     "Ah yes, I remember now.  I have a pin - is that useful for you? <PASSCODE_1>"),
    # Not a number that goes on into the sentence, nor an amount.
    ("can I reset my pin? 2019 was when I set it", "can I reset my pin? 2019 was when I set it"),
    ("is my pin blocked? 3000 dollars are gone", "is my pin blocked? 3000 dollars are gone"),
])
def test_a_pin_closing_the_turn_that_names_it_after_a_question(anonymiser, text, expected):
    assert _texts(anonymiser, [("customer", text)]) == [expected]


@pytest.mark.parametrize(("turns", "expected"), [
    # A birth date told in parts: the rest opens a turn a few turns after the question.
    ([("agent", "That's nice, do you remember your birthday?"), ("customer", "I think it starts with an 18"),
      ("agent", "Can you tell me the rest?"), ("customer", "9431, does that sound right?")],
     "<DATE_OF_BIRTH_1>, does that sound right?"),
    # A number asked for by its name in between is that number; an amount is none; the fifth turn on, nothing.
    ([("agent", "Could you provide your date of birth, please?"), ("customer", "I don't recall it."),
      ("agent", "Can you tell me your account number, please?"), ("customer", "68318931")], "<ACCOUNT_ID_1>"),
    ([("agent", "Could you provide your date of birth, please?"), ("customer", "I don't recall it."),
      ("agent", "What happened?"), ("customer", "2500 dollars were taken")], "2500 dollars were taken"),
    ([("agent", "Could you provide your date of birth, please?"), ("customer", "hmm"), ("agent", "ok"),
      ("customer", "no"), ("agent", "So?"), ("customer", "1956, I think")], "1956, I think"),
])
def test_a_birth_date_told_in_parts_turns_after_its_question(anonymiser, turns, expected):
    assert _texts(anonymiser, turns)[-1] == expected
