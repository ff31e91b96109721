# ruff: noqa: E501  (phrase banks: one template per line reads better than wrapped strings)
"""Phrase banks for the demo transcripts: what customers say per intent, and how agents answer.

Templates use a small grammar (see ``phrasing.expand``): ``[a|b|c]`` picks one alternative
(nestable, an empty alternative makes a word optional) and ``{slot}`` is filled from ``SLOTS``.

Confusable intents share vocabulary on purpose (refund / return / damaged item / warranty,
billing dispute / payment failed, password reset / account locked, shipping delay / order
status), customers in each cluster often open with the same ambiguous sentence (``SHARED``),
and some details deny a neighbouring intent ("I don't want a refund, just a working one"), so
no single keyword solves the task.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Intent:
    openers: tuple[str, ...]  # the customer's first statement of the problem
    details: tuple[str, ...]  # follow-up facts; some name a neighbouring intent only to deny it
    asks: tuple[str, ...]  # the agent's intent-specific questions
    actions: tuple[str, ...]  # the agent's intent-specific answers
    vague: tuple[str, ...]  # openers with little intent vocabulary


INTENTS: dict[str, Intent] = {
    "refund": Intent(
        openers=(
            "[I want|I'd like|I need|can I get] [my money back|a refund] [for|on] the {item} [I bought|I ordered|from my last order]",
            "[please|can you] refund [the|my] {item}[, I changed my mind| order|, it was not what I expected]",
            "how long does a refund [take|usually take] [to come through|to show up|to reach my account]",
            "I [returned|sent back|posted back] the {item} [{day}|{days} days ago] and [still haven't|have not] [got|received] my [money|refund]",
            "[where is|what happened to] my refund for the {item}",
            "I was promised a refund {day} [but nothing has arrived|and it is still not there]",
            "I'd like to be reimbursed for the {item}[, it was {amount}|]",
        ),
        details=(
            "it [has been|is already] {days} days and the refund [is not|still isn't] on my [statement|bank account]",
            "the refund should go [back|] to my original [card|payment method]",
            "[your tracking shows|you confirmed] you [got|received] the {item} back {day}",
            "I [paid|was charged] {amount} and [I want|would like] the full amount back",
            "I don't want a replacement, I [just|] want [my money|the money] back",
            "the return itself was fine, the courier collected it, I just need [the money|my refund] now",
        ),
        asks=(
            "[Could|Can] you confirm [which payment method you used|the amount you were charged]?",
            "Has the {item} already been sent back to us?",
            "Do you [have|remember] the date you sent it back?",
        ),
        actions=(
            "I [have|'ve] [processed|issued|approved] a [full|] refund of {amount} to your [original payment method|card]",
            "refunds take [3 to 5|5 to 7|up to 10] business days to [appear|show] on your statement",
            "I can see the {item} [arrived|was checked in] at our warehouse, so the refund [has been released|is on its way]",
            "I've escalated the refund to our finance team[ and it will be paid by {day}| as a priority]",
        ),
        vague=(
            "it's about the {item} I sent [back|to you]",
            "I still [haven't|have not] [got|received] anything [back|] for [my order|the {item}]",
            "[what is going on|what's happening] with my money",
        ),
    ),
    "return": Intent(
        openers=(
            "how [do I|can I] return [the|my] {item}",
            "I need a return label for [my|the] {item}",
            "can I send the {item} back[, it doesn't fit|, it's the wrong size|, I don't like the colour|]",
            "what is your return policy [for|on] [the {item}|sale items]",
            "I want to [exchange|swap] the {item} for a different [size|colour|model]",
            "[is it too late|am I still in time] to return [the|a] {item} I bought {day}",
            "I'd like to start a return for [my|an] order",
        ),
        details=(
            "do I need the original box to send it back",
            "can I drop it off at a store instead of posting it",
            "the return window is [30|thirty] days [right|isn't it]",
            "it's not broken or anything, it just [doesn't fit|isn't what I wanted]",
            "I [haven't|have not] [used|opened] it, the tags are still on",
            "I'd rather [swap it|have a different size] than get a refund",
        ),
        asks=(
            "[Would you like|Do you want] [an exchange or a refund|a prepaid label] for the {item}?",
            "Is the {item} unused and in its original packaging?",
            "[When|On what date] did you receive the {item}?",
        ),
        actions=(
            "I [have|'ve] emailed you a prepaid return label[ for the {item}|]",
            "you can return it within [30|thirty] days in [any|its original] condition",
            "once the {item} arrives at our warehouse we will [process the exchange|send the new size]",
            "you can drop the parcel at any [post office|collection point] with the label",
        ),
        vague=(
            "the {item} is not [right|really for me]",
            "I [don't want|do not want] to keep the {item}",
            "[what can I do|what are my options] with [an|the] {item} I don't need",
        ),
    ),
    "damaged_item": Intent(
        openers=(
            "my {item} arrived [broken|damaged|smashed]",
            "the {item} came damaged, the box was [crushed|torn open|soaked]",
            "the [screen|casing|lid|handle] on my {item} is [cracked|broken|dented] [out of the box|on arrival]",
            "the {item} I received has a [big|deep|long] scratch",
            "part of the {item} is missing and the rest is [bent|broken]",
            "[I just opened|I unpacked] the {item} and it's [damaged|in pieces]",
        ),
        details=(
            "I took photos of the damage[ and the box|]",
            "I [would like|want] a replacement rather than my money back",
            "the packaging was [soaked|crushed|ripped] when it arrived",
            "it's not a fit problem, it [arrived|came] [broken|cracked]",
            "I don't want to return it for a refund, I want a working one",
            "it was like that [when I opened it|straight out of the box], I haven't even used it",
        ),
        asks=(
            "I'm sorry it arrived [damaged|like that], could you send [a photo|photos] of the damage?",
            "Was the outer box damaged as well?",
            "Would you prefer a replacement or a refund for the damaged {item}?",
        ),
        actions=(
            "I have arranged a replacement {item} at no [cost|charge][ for you|]",
            "we will collect the damaged {item} when the new one is delivered",
            "I've [logged|reported] the damage with the courier[ and sent a replacement|]",
            "you don't need to send the damaged one back, a new {item} is on its way",
        ),
        vague=(
            "the {item} is [not ok|not good|wrong]",
            "there's a problem with [what I received|the {item} you sent]",
            "the {item} [doesn't look right|is not how it should be]",
        ),
    ),
    "warranty": Intent(
        openers=(
            "is my {item} still under warranty",
            "my {item} stopped working after [eight|ten|eleven] months",
            "how do I make a warranty claim for the {item}",
            "does the warranty cover the [battery|motor|screen]",
            "the {item} [died|broke down|stopped charging], it's only [a year|ten months] old",
            "[can|will] you repair my {item} under [the|its] guarantee",
        ),
        details=(
            "I still have the receipt[ from the store|]",
            "it won't turn on at all[ any more|]",
            "can it be repaired[ or do I get a new one|]",
            "it worked fine for months, it wasn't damaged in delivery",
            "I bought the extended [cover|warranty] too",
            "it just [stopped|died] one day, I didn't drop it",
        ),
        asks=(
            "Could you tell me [when|where] you bought the {item}?",
            "Do you have [the|your] proof of purchase?",
            "What happens when you [switch it on|press the power button]?",
        ),
        actions=(
            "your {item} is covered for [two|three] years",
            "I have opened a warranty claim for you",
            "we will repair or replace it under warranty[ free of charge|]",
            "I've booked a [repair|courier collection] under your warranty for {day}",
        ),
        vague=(
            "my {item} [doesn't work|is not working] [any more|anymore]",
            "something is wrong with the {item} I bought [last year|a while ago]",
            "the {item} has [a fault|an issue]",
        ),
    ),
    "shipping_delay": Intent(
        openers=(
            "where is my {item}, it was [supposed|meant] to arrive [on|] {day}",
            "my [order|parcel|package] is late, [tracking|the tracking] [has not moved|hasn't updated]",
            "the {item} still [has not|hasn't] [arrived|come] after [a week|{days} days]",
            "delivery was due {day} and nothing [came|turned up]",
            "why is my [parcel|package] stuck in transit",
            "[my delivery|the courier] is [late|delayed] again",
        ),
        details=(
            "the tracking page says in transit for [five|{days}] days",
            "I need it before the weekend",
            "can you check with the courier[ please|]",
            "it already shipped, the tracking number works, it just isn't moving",
            "I paid for [express|next day] delivery",
            "the [delivery|arrival] date keeps [changing|moving]",
        ),
        asks=(
            "Could you confirm the delivery address on the order?",
            "Did you receive a [dispatch|shipping] email with a tracking number?",
            "Has the tracking shown any update since {day}?",
        ),
        actions=(
            "I see the courier has a delay in your area",
            "your {item} is now expected [on|by] {day}",
            "I have escalated the delivery with the [carrier|courier]",
            "I've refunded the [express|delivery] fee because of the delay",
        ),
        vague=(
            "[I'm still waiting|still waiting] for my {item}",
            "[nothing has|I haven't] [arrived|got anything] yet",
            "[it's|this is] taking [forever|too long]",
        ),
    ),
    "order_status": Intent(
        openers=(
            "can you tell me the status of my order",
            "has my {item} order been [dispatched|shipped|sent] yet",
            "I just want to check my order went through",
            "is my order for the {item} confirmed",
            "what stage is my order at",
            "[did you get|have you received] my order [from {day}|for the {item}]",
        ),
        details=(
            "I didn't get a confirmation email",
            "I placed it {day}[ evening| morning|]",
            "I want to know when it leaves[ the warehouse|]",
            "it's not late or anything, I just want to know it's [on its way|confirmed]",
            "the website [just|] showed a spinning wheel after I paid",
            "I ordered [two|three] things and only one shows in my account",
        ),
        asks=(
            "Could you [give me|share] the email you placed the order with?",
            "[Was|Is] this order placed on the website or in the app?",
            "Roughly when did you place the order?",
        ),
        actions=(
            "your order is confirmed and being packed",
            "the {item} was dispatched [this morning|{day}]",
            "you will get an email with tracking once it ships",
            "everything went through fine, it should [leave|ship] [today|tomorrow]",
        ),
        vague=(
            "[just checking|quick question] about my order",
            "[I ordered something|I placed an order] and [heard nothing|don't know what's happening]",
            "[what's|what is] happening with my {item}",
        ),
    ),
    "billing_dispute": Intent(
        openers=(
            "I was charged twice for [my|the] {item}",
            "there is a charge on my statement I don't [recognise|recognize]",
            "you billed me the wrong amount for the {item}",
            "I was overcharged [on|for] my last [invoice|order]",
            "why did my bill go up this month",
            "I'm [being|getting] charged {amount} [every month|again] and I don't know why",
        ),
        details=(
            "the second charge is the same amount",
            "I never agreed to that price",
            "I want the extra charge reversed",
            "the payment went through fine, it's the amount that's wrong",
            "the invoice says {amount} but the [price|offer] was lower",
            "I [checked|looked at] my bank app and there are two [payments|transactions]",
        ),
        asks=(
            "Could you tell me the [date|amount] of the charge you don't recognise?",
            "Which card or account was the charge taken from?",
            "Do you have the invoice number for that charge?",
        ),
        actions=(
            "I can see the duplicate charge and [will reverse|have reversed] it",
            "the price change was due to the promotion ending",
            "I have raised a billing dispute on your behalf",
            "I've credited {amount} back to your account",
        ),
        vague=(
            "[something is wrong|there's something odd] with my [bill|statement]",
            "I [don't understand|can't make sense of] this [charge|payment]",
            "my [bank|statement] shows [something|money] I didn't expect",
        ),
    ),
    "payment_failed": Intent(
        openers=(
            "my payment keeps getting declined",
            "I can't pay for the {item}, the card is rejected",
            "checkout fails when I try to pay",
            "the payment [did not|didn't] go through but my bank shows nothing",
            "why was my card declined at checkout",
            "I get an error [every time|each time] I [try to pay|enter my card]",
        ),
        details=(
            "I tried two different cards",
            "the error says transaction failed",
            "my bank says the card is fine",
            "I haven't been charged anything, it just won't take the payment",
            "[it|the page] [asks|asked] for a code and then [fails|failed]",
            "I [also tried|tried] [paypal|apple pay] and that failed too",
        ),
        asks=(
            "Which payment method were you trying to use?",
            "What [exactly|] does the error message say?",
            "Does the billing address match the one your bank has?",
        ),
        actions=(
            "please try again, our payment provider had an outage",
            "can you check the billing address matches your bank",
            "the payment failed because of a [security|fraud] check, I've cleared it now",
            "I've reserved the {item} for you so you can retry the payment [later|today]",
        ),
        vague=(
            "I can't [buy|get] the {item}",
            "[it|your website] [won't|doesn't] let me [finish|complete] my order",
            "something [goes wrong|happens] at the [end|last step]",
        ),
    ),
    "password_reset": Intent(
        openers=(
            "I forgot my password",
            "how do I reset my password",
            "the password reset email never arrives",
            "I need a new password for my account",
            "the reset link says it has expired",
            "I [want|need] to change my password[ please|]",
        ),
        details=(
            "I checked my spam folder too",
            "I want to change it to something new",
            "it keeps saying invalid link",
            "my account isn't locked or anything, I just [forgot|can't remember] the password",
            "I [used|clicked] the forgot password button [twice|three times]",
            "I think someone else [knows|saw] my password",
        ),
        asks=(
            "Could you confirm the email address [on|linked to] the account?",
            "Did you [request|use] the reset link [today|in the last hour]?",
            "Are you resetting it on the app or the website?",
        ),
        actions=(
            "I have sent a new reset link to your email",
            "the link is valid for one hour",
            "you can also reset it from the app under settings",
            "I've cleared the old links, the new one should [work|arrive] now",
        ),
        vague=(
            "I can't [get into|access] my account",
            "[I'm|I am] having trouble [signing|logging] in",
            "[the login|signing in] [doesn't work|isn't working] for me",
        ),
    ),
    "account_locked": Intent(
        openers=(
            "my account is locked",
            "I can't log in, it says too many attempts",
            "my account has been [suspended|blocked|frozen]",
            "I am locked out after entering the wrong password",
            "why was my account blocked",
            "it says my account is [disabled|on hold]",
        ),
        details=(
            "I need access today",
            "I didn't do anything suspicious",
            "it says contact support to unlock",
            "I already reset my password and it's still blocked",
            "the new password is fine, the account itself is locked",
            "I got an email saying [unusual activity|a suspicious sign-in]",
        ),
        asks=(
            "For security, could you confirm your date of birth and [email|postcode]?",
            "When did you last [sign in|log in] successfully?",
            "Did you receive an email about [the lock|unusual activity]?",
        ),
        actions=(
            "I have unlocked your account after verifying your identity",
            "the lock lifts automatically after 24 hours",
            "for security we locked it after unusual sign-ins",
            "your account is active again, please [sign in|log in] now",
        ),
        vague=(
            "I can't [get into|access] my account",
            "[I'm|I am] having trouble [signing|logging] in",
            "my account [isn't working|doesn't work]",
        ),
    ),
    "cancellation": Intent(
        openers=(
            "I want to cancel my order",
            "please cancel my {item} order before it ships",
            "how do I cancel my [plan|membership|subscription]",
            "I'd like to cancel my subscription",
            "cancel [everything|the order] on my account please",
            "[can I|is it possible to] stop my order for the {item}",
        ),
        details=(
            "I found it cheaper elsewhere",
            "I don't need it [any more|anymore]",
            "make sure I'm not charged again",
            "I don't want to upgrade or change plans, just cancel",
            "I ordered it by mistake {day}",
            "please [end|stop] the [renewal|direct debit]",
        ),
        asks=(
            "Can I ask why you'd like to cancel?",
            "Is it the order or the whole subscription you want to cancel?",
            "Would a [discount|free month] change your mind?",
        ),
        actions=(
            "your order has been cancelled and you will not be charged",
            "the plan will end at the close of this [billing cycle|month]",
            "I have cancelled the subscription[ for you|]",
            "the cancellation is confirmed, you'll get an email [shortly|soon]",
        ),
        vague=(
            "I [don't want|no longer want] [this|it] [any more|anymore]",
            "I [want|need] to stop [this|everything]",
            "I [changed my mind|have changed my mind] about [my order|the plan]",
        ),
    ),
    "subscription_upgrade": Intent(
        openers=(
            "I want to upgrade my plan",
            "how do I move to the [premium|pro|family] [subscription|plan]",
            "can I add more users to my plan",
            "what does the [pro|premium] plan include",
            "I'd like to switch to yearly billing",
            "[can I|I want to] get the [bigger|better] plan",
        ),
        details=(
            "will I be charged the difference",
            "does it start straight away",
            "can I downgrade later",
            "I'm not cancelling, I want more [features|storage|users]",
            "my [team|family] needs [two|three|five] more [seats|accounts]",
            "I saw [an offer|a discount] for the yearly plan",
        ),
        asks=(
            "Which plan are you on at the moment?",
            "How many users would you like on the new plan?",
            "Would you like monthly or yearly billing?",
        ),
        actions=(
            "I have upgraded you to [premium|pro] from today",
            "you will only pay the prorated difference",
            "the yearly plan saves two months",
            "the new features are [active|available] on your account now",
        ),
        vague=(
            "I want [more|to change] my [plan|subscription]",
            "[question|a question] about [my plan|the plans]",
            "I [need|want] something [bigger|different] than what I have",
        ),
    ),
    "address_change": Intent(
        openers=(
            "I need to change my delivery address",
            "can I update the address on my order",
            "I moved house, how do I change my address",
            "please send the {item} to a different address",
            "the shipping address on my account is wrong",
            "[can you|I need you to] [redirect|reroute] my parcel",
        ),
        details=(
            "it hasn't shipped yet",
            "I want it sent to my [office|work] instead",
            "my old [flat|place] is no longer mine",
            "the order isn't late, it's just going to the wrong place",
            "I [typed|entered] the wrong [house number|postcode|street]",
            "I'll be away, please send it to my [parents|sister]",
        ),
        asks=(
            "Could you give me the new address?",
            "Is the change for this order only or for your account too?",
            "Has the order been dispatched already?",
        ),
        actions=(
            "I have updated the delivery address",
            "the new address will be used for future orders",
            "the order had shipped so I asked the courier to redirect it",
            "the {item} will now go to the new address",
        ),
        vague=(
            "[my details are|something on my account is] wrong",
            "I [need|want] to [change|fix] something on my order",
            "the {item} [can't|won't be able to] go where I said",
        ),
    ),
    "product_question": Intent(
        openers=(
            "does the {item} work with my [phone|laptop|car]",
            "what size is the {item}",
            "is the {item} waterproof",
            "what [colours|colors] does the {item} come in",
            "how long does the {item} battery last",
            "[before I buy|I'm thinking of buying], is the {item} [any good for travel|easy to clean|heavy]",
        ),
        details=(
            "I want to buy it as a gift",
            "is it in stock",
            "does it come with a charger",
            "I haven't ordered yet, I just want to know before I buy",
            "the description on the website is not clear",
            "is there a bigger [size|version]",
        ),
        asks=(
            "Which model of the {item} are you looking at?",
            "What [will you mainly use it for|device do you have]?",
            "Would you like me to check stock near you?",
        ),
        actions=(
            "yes, the {item} works with both android and ios",
            "the {item} is rated for light rain",
            "it comes in black, white and blue",
            "the battery lasts about [ten|twelve|twenty] hours",
        ),
        vague=(
            "[quick question|a question] about the {item}",
            "I [want to know|was wondering] about the {item}",
            "[can you tell me|tell me] more about the {item}",
        ),
    ),
    "loyalty_points": Intent(
        openers=(
            "how many [loyalty|reward|] points do I have",
            "my loyalty points are missing",
            "can I use my points on the {item}",
            "I didn't get points for my last order",
            "when do my reward points expire",
            "my [rewards|points] balance [is wrong|went down]",
        ),
        details=(
            "I'm a [gold|silver] member",
            "the points should have been added [last week|{day}]",
            "I want to use them today",
            "I wasn't charged wrongly, it's just the points that are missing",
            "the app shows [zero|0] points",
            "I [scanned|showed] my card at the till",
        ),
        asks=(
            "Could you tell me which order the points are missing from?",
            "Is the [loyalty|rewards] card linked to your online account?",
            "When did you last use your points?",
        ),
        actions=(
            "I have added the missing points to your account",
            "points expire after twelve months",
            "you can redeem points at checkout",
            "you have [1,250|820|3,400|95] points available",
        ),
        vague=(
            "something is [missing|not right] on my account",
            "[my|the] [balance|total] [looks wrong|isn't right]",
            "I [should have|expected] [more|something] after my last order",
        ),
    ),
    "technical_issue": Intent(
        openers=(
            "the app keeps crashing",
            "the website won't load my basket",
            "I get an error when I open the app",
            "the {item} won't connect to [wifi|bluetooth|the app]",
            "the app logs me out every time",
            "[the page|your site] [freezes|goes blank] when I [search|scroll]",
        ),
        details=(
            "I already reinstalled it",
            "it started after the [update|latest update]",
            "it happens on my laptop too",
            "I can log in fine, the app just crashes after that",
            "I [restarted|rebooted] my phone [twice|already]",
            "I'm on the latest version [I think|]",
        ),
        asks=(
            "Which device and app version are you using?",
            "Does it happen on the website as well as the app?",
            "Could you try clearing the app cache for me?",
        ),
        actions=(
            "please update to the latest version",
            "try clearing the app cache and restarting",
            "our engineers are fixing a known issue with the latest update",
            "I've reset your app session, please try again now",
        ),
        vague=(
            "[it|the app] [doesn't work|is not working] [properly|]",
            "[I'm|I am] having [problems|issues] with [the app|your website]",
            "[something is broken|it's broken] [again|]",
        ),
    ),
}

# Where an annotator goes wrong: the first entry is the usual mistake (label flips of kind
# "confusable" pick it most of the time, so the noise is systematic, as real annotation noise is).
CONFUSABLE: dict[str, tuple[str, ...]] = {
    "refund": ("return", "billing_dispute", "damaged_item"),
    "return": ("refund", "damaged_item"),
    "damaged_item": ("return", "warranty", "refund"),
    "warranty": ("damaged_item", "technical_issue"),
    "shipping_delay": ("order_status", "address_change"),
    "order_status": ("shipping_delay",),
    "billing_dispute": ("payment_failed", "refund"),
    "payment_failed": ("billing_dispute",),
    "password_reset": ("account_locked",),
    "account_locked": ("password_reset", "technical_issue"),
    "cancellation": ("refund", "subscription_upgrade"),
    "subscription_upgrade": ("cancellation",),
    "address_change": ("shipping_delay", "order_status"),
    "product_question": ("technical_issue",),
    "loyalty_points": ("billing_dispute",),
    "technical_issue": ("account_locked", "product_question"),
}

# Ambiguous openers shared by a cluster of confusable intents: the intent shows only later.
SHARED: dict[str, tuple[str, ...]] = {
    "after_sale": (
        "I have a problem with the {item} I [bought|ordered] {day}",
        "I [want|need] to send the {item} back",
        "the {item} [is not|isn't] [ok|right], what can you do",
    ),
    "money": (
        "there's a problem with [my payment|paying]",
        "[question|a question] about a payment [for the {item}|on my account]",
        "I [need|want] [help|some help] with a payment",
    ),
    "access": (
        "I can't [log in|sign in|get into my account]",
        "[the|my] login [is not|isn't] working",
        "I'm [stuck|locked] [on|at] the [sign in|login] page",
    ),
    "delivery": (
        "[question|a question] about my delivery",
        "[where is|what's happening with] my [parcel|package|order]",
        "I'm [waiting for|expecting] [a parcel|my {item}]",
    ),
    "plan": (
        "I [want|need] to change my [subscription|plan|membership]",
        "[question|a question] about my [membership|subscription]",
    ),
}
# Details that fit every intent of a cluster (or any intent): they carry no label signal of their own.
SHARED_DETAILS: dict[str, tuple[str, ...]] = {
    "after_sale": ("I [bought|ordered] it {day}", "it was a [present|gift] for my [sister|dad|partner]",
                   "I still have the box and the receipt", "it's the {item} from my last order",
                   "I [paid|spent] {amount} on it"),
    "money": ("it's about {amount}", "I checked with my bank [already|this morning]",
              "it's the card I always use", "I [need|want] this sorted before [payday|the weekend]"),
    "access": ("I tried on my phone and my laptop", "I need it for work today",
               "I've had this account for years", "it worked fine [yesterday|last week]"),
    "delivery": ("I've been waiting at home all day", "I need it for a birthday on {day}",
                 "it's the {item} I ordered {day}", "I [got|had] a text from the courier"),
    "plan": ("I've been a member for [two|three|five] years", "I pay monthly at the moment",
             "it's the account in my name"),
}
GENERIC_DETAILS = (
    "this is the second time I'm contacting you", "I'm [really|quite] disappointed", "I've been a customer for years",
    "I [tried|called] [yesterday|last week] too", "nobody [replied|answered] to my last message",
    "I don't have much time today", "[I read|I looked at] the help page but it didn't help",
)
# Openers that say nothing about the intent (the harder group uses them most).
GENERIC_OPENERS = (
    "I have a problem with my order", "something is wrong with my account", "I need help [please|]",
    "it's about my last purchase", "I have [an issue|a problem], can you help", "I need to talk to someone",
    "please help me with [my order|my account]", "I [wrote|called] [before|yesterday] about this",
)
# Customers raise a second topic on the way ("also, ..."); the label stays the main intent.
SIDE_LEADS = ("also", "and another thing", "oh and", "while I'm here", "btw", "one more thing")

CLUSTER: dict[str, str] = {
    "refund": "after_sale", "return": "after_sale", "damaged_item": "after_sale", "warranty": "after_sale",
    "billing_dispute": "money", "payment_failed": "money",
    "password_reset": "access", "account_locked": "access", "technical_issue": "access",
    "shipping_delay": "delivery", "order_status": "delivery", "address_change": "delivery",
    "cancellation": "plan", "subscription_upgrade": "plan",
}

# Slot values filled into the templates.
SLOTS: dict[str, tuple[str, ...]] = {
    "item": ("headphones", "laptop bag", "coffee machine", "running shoes", "phone case", "smart watch", "desk lamp",
             "blender", "backpack", "keyboard", "jacket", "tablet", "speaker", "vacuum cleaner", "camera",
             "air fryer", "kettle", "monitor", "office chair", "earbuds", "router", "toaster", "sofa cover",
             "baby monitor", "electric toothbrush", "hair dryer", "printer", "suitcase", "yoga mat", "drone"),
    "day": ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "the 12th", "the 3rd",
            "last week", "yesterday", "two days ago", "the weekend"),
    "days": ("two", "three", "four", "five", "six", "seven", "ten", "twelve", "fourteen", "twenty"),
    "amount": ("$19.99", "$24.50", "$39", "$49.99", "$59", "$89.95", "$120", "$149", "$12.40", "$230"),
}

# Pieces every intent shares: agents' generic moves and customers' small talk.
AGENT_GREET = (
    "Thanks for contacting us.", "Hi, thanks for reaching out.", "Hello, happy to help with that.",
    "Sorry to hear about this.", "Thanks for your patience.", "Hi there, I can help with that.",
    "Good [morning|afternoon], thanks for getting in touch.", "Thank you for waiting.",
)
AGENT_GENERIC_ASK = (
    "Could you [give me|share] your order number?", "Can you confirm the email address on the account?",
    "Could you tell me a bit more about what happened?", "When did this [start|happen]?",
    "Can you confirm your full name and postcode for security?", "Which order is this about?",
    "Let me look into that. Could you confirm a few details first?",
)
AGENT_GENERIC_ACTION = (
    "I've [added a note to|updated] your case and you'll get an email [shortly|within 24 hours]",
    "I've passed this to the [right|relevant] team[ and they will contact you| who will follow up]",
    "that's all sorted on our side now", "I've made the change on your account",
    "I've looked into it and [everything is|it's all] in order now", "I've [raised|opened] a ticket for this",
)
AGENT_HOLD = ("Let me check that for you.", "One moment while I check.", "Thanks, let me pull that up.",
              "Bear with me a second.", "I'm looking at it now.")
AGENT_CLOSE = (
    "Is there anything else I can help with[ today|]?", "Have a [great|lovely|nice] day.",
    "Thanks for your patience[ and sorry again for the trouble|].", "Glad I could help.",
    "Feel free to reach out if anything else comes up.",
)
CUSTOMER_EXTRA = (
    "how long will that take", "will I get an email to confirm", "do I need to do anything else",
    "can you make sure this doesn't happen again", "ok and what if it [still|] doesn't work",
    "is there a reference [number|] for this", "can you put that in writing", "ok, and when will I hear back",
)
CUSTOMER_THANKS = (
    "ok thanks", "great, thank you[ so much|]", "perfect", "that works", "fine", "thanks for your help",
    "ok that's fine", "brilliant, thanks", "alright, thank you",
)
FILLERS = (
    "thanks", "please help", "this is really frustrating", "appreciate it", "any update?", "thanks in advance",
    "I'm quite annoyed", "hope you can help", "it's urgent", "first time this happens",
)
