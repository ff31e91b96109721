"""One support conversation: 2-8 turns, customer first, with the personal values it holds.

Turn plan (chat and phone; emails are fewer, longer messages):

    customer  opener (clear, vague, or shared with the confusable intents), maybe their name
    agent     greeting, maybe their own name, a question (intent-specific or generic)
    customer  details, personal values (order id, email, card...)
    agent     an answer (intent-specific or generic)
    customer  a further question or detail          (6+ turns)
    agent     a second answer                       (6+ turns)
    customer  thanks                                (odd counts end here)
    agent     closing, often using the customer's first name
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from curatune.demo.intents import (
    AGENT_CLOSE,
    AGENT_GENERIC_ACTION,
    AGENT_GENERIC_ASK,
    AGENT_GREET,
    AGENT_HOLD,
    CLUSTER,
    CUSTOMER_EXTRA,
    CUSTOMER_THANKS,
    FILLERS,
    GENERIC_DETAILS,
    GENERIC_OPENERS,
    INTENTS,
    SHARED,
    SHARED_DETAILS,
    SIDE_LEADS,
    SLOTS,
)
from curatune.demo.phrasing import STYLES, Style, capitalise, customer_voice, expand
from curatune.demo.pii import PiiSource

# Turn counts per channel (weights for 2..8 turns): emails are short threads, calls run longer.
TURN_WEIGHTS = {
    "email": (40, 20, 30, 4, 6, 0, 0),
    "chat": (4, 3, 24, 10, 28, 9, 22),
    "phone": (2, 2, 20, 10, 30, 10, 26),
}
# Intents whose conversations usually carry a given personal value (else a small base rate).
PII_INTENTS = {
    "order": {"refund", "return", "damaged_item", "shipping_delay", "order_status", "cancellation",
              "address_change", "warranty"},
    "email": {"password_reset", "account_locked", "order_status", "loyalty_points", "subscription_upgrade"},
    "card": {"billing_dispute", "payment_failed", "refund"},
    "iban": {"refund", "billing_dispute"},
    "address": {"address_change", "shipping_delay", "return", "warranty"},
    "account": {"account_locked", "password_reset", "loyalty_points", "subscription_upgrade", "cancellation"},
}

SIDE_TOPIC_RATE = 0.15
# Openers shared by a cluster of confusable intents (after the group's vague openers).
SHARED_OPENER_RATE = 0.35
# How often the agent's question / answer / second answer is specific to the intent (else generic).
AGENT_SPECIFIC = {"ask": 0.3, "action": 0.45, "second": 0.35}


@dataclass
class Conversation:
    turns: list[tuple[str, str]]
    label: str
    split: str
    channel: str
    region: str
    variety: str
    # (entity type, value) of every planted personal value, in order of first appearance.
    pii: list[tuple[str, str]] = field(default_factory=list)
    clean_label: str = ""
    flip_kind: str | None = None
    # The opener was vague or shared with confusable intents (annotators err more on these).
    ambiguous: bool = False

    def __post_init__(self) -> None:
        self.clean_label = self.clean_label or self.label

    def copy(self) -> Conversation:
        return Conversation(list(self.turns), self.label, self.split, self.channel, self.region, self.variety,
                            list(self.pii), self.clean_label, self.flip_kind, self.ambiguous)

    def text(self) -> str:
        return "\n".join(t for _, t in self.turns)


class ConversationWriter:
    def __init__(self, rng: random.Random, source: PiiSource) -> None:
        self.rng = rng
        self.source = source

    # -- pieces ---------------------------------------------------------------------------
    def _c(self, template: str) -> str:
        return customer_voice(expand(template, self.rng, self._slots), self._style, self._channel, self.rng)

    def _a(self, template: str) -> str:
        text = capitalise(expand(template, self.rng, self._slots))
        return text if text[-1:] in ".?!" else text + "."

    def _plant(self, kind: str, value: str) -> str:
        if (kind, value) not in self._pii:
            self._pii.append((kind, value))
        return value

    def _customer_turn(self, sentences: list[str], *, signoff: str = "") -> str:
        parts = [s for s in sentences if s]
        if self._channel == "email":
            body = ". ".join(capitalise(p) for p in parts) + "."
            greeting = self.rng.choice(("Hello,", "Hi,", "Dear support team,", "Hi team,", "Good morning,"))
            return f"{greeting}\n{body}" + (f"\n{signoff}" if signoff else "")
        seps = (". ", ", ", " ") if self._channel == "chat" else (" ", ", ", " ")
        out = parts[0]
        for p in parts[1:]:
            out += self.rng.choice(seps) + p
        return out

    def _agent_turn(self, sentences: list[str], *, signoff: str = "") -> str:
        text = " ".join(s for s in sentences if s)
        if self._channel == "email" and signoff:
            text += f"\n{signoff}"
        return text

    def _opener(self, intent: str) -> str:
        spec, rng = INTENTS[intent], self.rng
        roll = rng.random()
        if roll < self._style.vague_rate:
            self._ambiguous = True
            return self._c(rng.choice(spec.vague if rng.random() < 0.5 else GENERIC_OPENERS))
        if intent in CLUSTER and roll < self._style.vague_rate + SHARED_OPENER_RATE:
            self._ambiguous = True
            return self._c(rng.choice(SHARED[CLUSTER[intent]]))
        return self._c(rng.choice(spec.openers))

    def _detail(self, intent: str) -> str:
        rng = self.rng
        if rng.random() < self._style.specific_detail:
            return self._c(rng.choice(INTENTS[intent].details))
        shared = SHARED_DETAILS.get(CLUSTER.get(intent, ""), ())
        return self._c(rng.choice(shared if shared and rng.random() < 0.6 else GENERIC_DETAILS))

    def _side_topic(self, intent: str) -> str:
        """A second, unrelated topic raised in passing ("also, ..."); the label stays the main intent."""
        rng = self.rng
        cluster = CLUSTER.get(intent)
        others = [i for i in sorted(INTENTS) if i != intent and (cluster is None or CLUSTER.get(i) != cluster)]
        return self._c(f"{rng.choice(SIDE_LEADS)} {rng.choice(INTENTS[rng.choice(others)].openers)}")

    def _wants(self, kind: str, intent: str, likely: float, base: float) -> bool:
        return self.rng.random() < (likely if intent in PII_INTENTS[kind] else base)

    def _details_pii(self, intent: str, region: str, name: tuple[str, str]) -> list[str]:
        """Sentences carrying personal values, planted as they go."""
        rng, src, phone = self.rng, self.source, self._channel == "phone"
        out: list[str] = []
        if self._wants("order", intent, 0.25, 0.04):
            if phone and rng.random() < 0.5:
                digits = src.order_id()[4:]
                out.append(self._c("the order number is") + " " + self._plant("SPOKEN_DIGITS", src.spoken(digits)))
            else:
                out.append(self._c("[my order number is|the order is|it's order|order number]") + " "
                           + self._plant("ORDER_ID", src.order_id()))
        if self._wants("email", intent, 0.2, 0.03):
            out.append(self._c("[you can reach me at|my email is|the account email is|email me at]") + " "
                       + self._plant("EMAIL_ADDRESS", src.email(*name)))
        if rng.random() < (0.2 if phone else 0.05):
            if phone:
                out.append(self._c("[my number is|you can call me back on|my phone number is]") + " "
                           + self._plant("SPOKEN_DIGITS", src.spoken(src.phone_digits())))
            else:
                out.append(self._c("[call me on|my number is|you can call me at]") + " "
                           + self._plant("PHONE_NUMBER", src.phone(region)))
        if self._wants("card", intent, 0.3, 0.02):
            if phone:
                out.append(self._c("the card ends in") + " "
                           + self._plant("SPOKEN_DIGITS", src.spoken(src.card()[-4:])))
            else:
                out.append(self._c("[the card was|I paid with card|the card number is|card]") + " "
                           + self._plant("CREDIT_CARD", src.card()))
        if self._wants("iban", intent, 0.15, 0.01):
            out.append(self._c("[please refund it to|my bank account is|send it to]") + " IBAN "
                       + self._plant("IBAN_CODE", src.iban(region)))
        if self._wants("address", intent, 0.4, 0.02):
            street, city, post = src.address(region)
            out.append(self._c("[the address is|my address is|it should go to|I live at]") + " "
                       + f"{self._plant('STREET_ADDRESS', street)}, {city} {self._plant('ZIP_CODE', post)}")
        if self._wants("account", intent, 0.18, 0.03):
            out.append(self._c("[my account number is|account|the account is]") + " "
                       + self._plant("ACCOUNT_ID", src.account_id()))
        if rng.random() < 0.03:
            out.append(self._c("[I also messaged you from|my handle is|I tweeted you from]") + " "
                       + self._plant("HANDLE", src.handle(*name)))
        rng.shuffle(out)
        return out

    # -- the conversation -----------------------------------------------------------------
    def write(self, intent: str, channel: str, region: str, variety: str, split: str) -> Conversation:
        rng, spec = self.rng, INTENTS[intent]
        self._style: Style = STYLES[variety]
        self._channel = channel
        self._pii: list[tuple[str, str]] = []
        self._ambiguous = False  # set when the opener does not name the intent
        # One item and one amount per conversation, so every turn talks about the same purchase.
        self._slots = {**SLOTS, "item": (rng.choice(SLOTS["item"]),), "amount": (rng.choice(SLOTS["amount"]),)}
        n_turns = rng.choices(range(2, 9), weights=TURN_WEIGHTS[channel])[0]
        email = channel == "email"
        name = self.source.person(variety, region)
        named = rng.random() < (0.35 if email else 0.15)
        agent = self.source.agent()
        agent_named = rng.random() < (0.3 if email else 0.14)

        greet = self._c(rng.choice(self._style.greetings)) if not email else ""
        opener = self._opener(intent)
        intro = ""
        signoff = ""
        if named:
            full = self._plant("PERSON", f"{name[0]} {name[1]}")
            if email:
                signoff = f"{rng.choice(self._style.signoffs)},\n{full}"
            else:
                intro = rng.choice((self._c("my name is") + f" {full}", self._c("this is") + f" {full}",
                                    f"{full} here", self._c("I'm") + f" {full}"))
        detail = self._detail(intent)
        side = self._side_topic(intent) if rng.random() < SIDE_TOPIC_RATE else ""
        pii = self._details_pii(intent, region, name)
        filler = self._c(rng.choice(self._style.fillers + FILLERS)) if rng.random() < 0.4 else ""

        ask = self._a(rng.choice(spec.asks if rng.random() < AGENT_SPECIFIC["ask"] else AGENT_GENERIC_ASK))
        action = self._a(rng.choice(spec.actions if rng.random() < AGENT_SPECIFIC["action"] else AGENT_GENERIC_ACTION))
        agent_intro, agent_sign = "", ""
        if agent_named:
            if email:
                agent_sign = f"Kind regards,\n{self._plant('PERSON', f'{agent[0]} {agent[1]}')}"
            else:
                first = self._plant("PERSON", agent[0])
                agent_intro = rng.choice((f"My name is {first}.", f"This is {first} speaking.",
                                          f"I'm {first}, happy to help.", f"You're speaking with {first}."))
        hello = self._a(rng.choice(AGENT_GREET))
        close_text = self._a(rng.choice(AGENT_CLOSE))
        by_name = named and rng.random() < 0.75  # the agent comes back to the customer's first name
        name_form = rng.randrange(3)

        def close() -> str:
            if not by_name:
                return close_text
            first = self._plant("PERSON", name[0])
            return (f"Thanks {first}, {close_text[0].lower()}{close_text[1:]}",
                    f"You're welcome, {first}. {close_text}", f"Thank you, {first}. {close_text}")[name_form]

        if email or n_turns == 2:
            first_msg = [greet, opener, intro, detail, *pii, side, filler]
            turns = [("customer", self._customer_turn(first_msg, signoff=signoff))]
            if n_turns == 2:
                turns.append(("agent", self._agent_turn([hello, agent_intro, action, close()], signoff=agent_sign)))
            else:
                turns.append(("agent", self._agent_turn([hello, agent_intro, ask], signoff=agent_sign)))
                extra = self._detail(intent) if rng.random() < 0.5 else self._c(rng.choice(CUSTOMER_EXTRA))
                turns.append(("customer", self._customer_turn([extra], signoff=signoff)))
                if n_turns >= 4:
                    turns.append(("agent", self._agent_turn([action, close()], signoff=agent_sign)))
                if n_turns >= 5:
                    turns.append(("customer", self._customer_turn([self._c(rng.choice(CUSTOMER_THANKS))])))
                if n_turns >= 6:
                    turns.append(("agent", self._agent_turn([self._a(rng.choice(AGENT_CLOSE))],
                                                            signoff=agent_sign)))
        else:
            turns = [("customer", self._customer_turn([greet, opener, intro, filler])),
                     ("agent", self._agent_turn([hello, agent_intro, ask])),
                     ("customer", self._customer_turn([detail, *pii] + ([side] if n_turns < 6 else [])))]
            if n_turns >= 4:
                hold = self._a(rng.choice(AGENT_HOLD)) if rng.random() < 0.4 else ""
                turns.append(("agent", self._agent_turn([hold, action] + ([close()] if n_turns in (4, 5) else []))))
            if n_turns >= 6:
                extra = self._detail(intent) if rng.random() < 0.4 else self._c(rng.choice(CUSTOMER_EXTRA))
                turns.append(("customer", self._customer_turn([side or extra])))
                pool = spec.actions if rng.random() < AGENT_SPECIFIC["second"] else AGENT_GENERIC_ACTION
                second = self._a(rng.choice(pool))
                while second == action:  # the agent does not repeat the same answer
                    second = self._a(rng.choice(pool + AGENT_GENERIC_ACTION))
                turns.append(("agent", self._agent_turn([second] + ([close()] if n_turns in (6, 7) else []))))
            if n_turns in (5, 7, 8):
                turns.append(("customer", self._customer_turn([self._c(rng.choice(CUSTOMER_THANKS))])))
            if n_turns == 8:
                turns.append(("agent", self._agent_turn([close()])))
        turns = [(s, t) for s, t in turns if t.strip()]
        text = "\n".join(t for _, t in turns)
        pii_found = [(k, v) for k, v in self._pii if v in text]
        return Conversation(turns, intent, split, channel, region, variety, pii_found, ambiguous=self._ambiguous)
