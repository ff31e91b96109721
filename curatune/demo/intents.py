"""Phrase banks for the demo transcripts: what customers say per intent, and how agents answer.

Confusable intents share vocabulary on purpose (refund / return / damaged item, billing dispute /
payment failed, password reset / account locked), so the task is not solved by one keyword.
"""

from __future__ import annotations

# intent -> (customer openers, customer follow-ups, agent replies). "{item}" etc. are filled in.
INTENTS: dict[str, tuple[list[str], list[str], list[str]]] = {
    "refund": (
        ["I want my money back for the {item} I bought", "can I get a refund on my {item} order",
         "please refund the {item}, I was charged but I changed my mind", "how long does a refund take for {item}",
         "I'd like a refund, the {item} is not what I expected"],
        ["I already sent it back last week and still no money", "the refund should go to my original card",
         "it has been ten days and the refund is not on my statement"],
        ["I can issue the refund to your original payment method", "refunds take 5 to 7 business days to appear",
         "I have processed the refund for the {item}"],
    ),
    "return": (
        ["how do I return the {item}", "I need a return label for my {item}",
         "can I send the {item} back, it does not fit", "what is your return policy for {item}",
         "I want to exchange the {item} for a different size"],
        ["do I need the original box to send it back", "can I drop it off at a store instead of posting it",
         "the return window is 30 days right"],
        ["I have emailed you a prepaid return label", "you can return it within 30 days in any condition",
         "once the {item} arrives at our warehouse we will process the exchange"],
    ),
    "damaged_item": (
        ["my {item} arrived broken", "the {item} came damaged, the box was crushed",
         "the screen on my {item} is cracked out of the box", "the {item} I received has a big scratch",
         "part of the {item} is missing and the rest is bent"],
        ["I took photos of the damage", "I would like a replacement rather than my money back",
         "the packaging was soaked when it arrived"],
        ["I'm sorry it arrived damaged, could you send a photo", "I have arranged a replacement {item} at no cost",
         "we will collect the damaged {item} when the new one is delivered"],
    ),
    "shipping_delay": (
        ["where is my {item}, it was supposed to arrive on {day}", "my order is late, tracking has not moved",
         "the {item} still has not shipped after a week", "delivery was due {day} and nothing came",
         "why is my parcel stuck in transit"],
        ["the tracking page says in transit for five days", "I need it before the weekend",
         "can you check with the courier"],
        ["I see the courier has a delay in your area", "your {item} is now expected on {day}",
         "I have escalated the delivery with the carrier"],
    ),
    "order_status": (
        ["can you tell me the status of my order", "has my {item} order been dispatched yet",
         "I just want to check my order went through", "is my order for the {item} confirmed",
         "what stage is my order at"],
        ["I didn't get a confirmation email", "I placed it yesterday evening", "I want to know when it leaves"],
        ["your order is confirmed and being packed", "the {item} was dispatched this morning",
         "you will get an email with tracking once it ships"],
    ),
    "billing_dispute": (
        ["I was charged twice for my {item}", "there is a charge on my statement I don't recognise",
         "you billed me the wrong amount for the {item}", "I was overcharged on my last invoice",
         "why did my bill go up this month"],
        ["the second charge is the same amount", "I never agreed to that price", "I want the extra charge reversed"],
        ["I can see the duplicate charge and will reverse it", "the price change was due to the promotion ending",
         "I have raised a billing dispute on your behalf"],
    ),
    "payment_failed": (
        ["my payment keeps getting declined", "I can't pay for the {item}, the card is rejected",
         "checkout fails when I try to pay", "the payment did not go through but my bank shows nothing",
         "why was my card declined at checkout"],
        ["I tried two different cards", "the error says transaction failed", "my bank says the card is fine"],
        ["please try again, our payment provider had an outage", "can you check the billing address matches your bank",
         "the payment failed because of a security check"],
    ),
    "password_reset": (
        ["I forgot my password", "how do I reset my password", "the password reset email never arrives",
         "I need a new password for my account", "the reset link says it has expired"],
        ["I checked my spam folder too", "I want to change it to something new", "it keeps saying invalid link"],
        ["I have sent a new reset link to your email", "the link is valid for one hour",
         "you can also reset it from the app under settings"],
    ),
    "account_locked": (
        ["my account is locked", "I can't log in, it says too many attempts", "my account has been suspended",
         "I am locked out after entering the wrong password", "why was my account blocked"],
        ["I need access today", "I didn't do anything suspicious", "it says contact support to unlock"],
        ["I have unlocked your account after verifying your identity", "the lock lifts automatically after 24 hours",
         "for security we locked it after unusual sign-ins"],
    ),
    "cancellation": (
        ["I want to cancel my order", "please cancel my {item} order before it ships", "how do I cancel my plan",
         "I'd like to cancel my subscription", "cancel everything on my account please"],
        ["I found it cheaper elsewhere", "I don't need it anymore", "make sure I'm not charged again"],
        ["your order has been cancelled and you will not be charged", "the plan will end at the close of this cycle",
         "I have cancelled the subscription"],
    ),
    "subscription_upgrade": (
        ["I want to upgrade my plan", "how do I move to the premium subscription",
         "can I add more users to my plan", "what does the pro plan include", "I'd like to switch to yearly billing"],
        ["will I be charged the difference", "does it start straight away", "can I downgrade later"],
        ["I have upgraded you to premium from today", "you will only pay the prorated difference",
         "the yearly plan saves two months"],
    ),
    "warranty": (
        ["is my {item} still under warranty", "my {item} stopped working after eight months",
         "how do I make a warranty claim for the {item}", "does the warranty cover the battery",
         "the {item} died, it's only a year old"],
        ["I still have the receipt", "it won't turn on at all", "can it be repaired"],
        ["your {item} is covered for two years", "I have opened a warranty claim for you",
         "we will repair or replace it under warranty"],
    ),
    "address_change": (
        ["I need to change my delivery address", "can I update the address on my order",
         "I moved house, how do I change my address", "please send the {item} to a different address",
         "the shipping address on my account is wrong"],
        ["it hasn't shipped yet", "I want it sent to my office", "my old flat is no longer mine"],
        ["I have updated the delivery address", "the new address will be used for future orders",
         "the order had shipped so I asked the courier to redirect it"],
    ),
    "product_question": (
        ["does the {item} work with my phone", "what size is the {item}", "is the {item} waterproof",
         "what colours does the {item} come in", "how long does the {item} battery last"],
        ["I want to buy it as a gift", "is it in stock", "does it come with a charger"],
        ["yes, the {item} works with both android and ios", "the {item} is rated for light rain",
         "it comes in black, white and blue"],
    ),
    "loyalty_points": (
        ["how many points do I have", "my loyalty points are missing", "can I use my points on the {item}",
         "I didn't get points for my last order", "when do my reward points expire"],
        ["I'm a gold member", "the points should have been added last week", "I want to use them today"],
        ["I have added the missing points to your account", "points expire after twelve months",
         "you can redeem points at checkout"],
    ),
    "technical_issue": (
        ["the app keeps crashing", "the website won't load my basket", "I get an error when I open the app",
         "the {item} won't connect to wifi", "the app logs me out every time"],
        ["I already reinstalled it", "it started after the update", "it happens on my laptop too"],
        ["please update to the latest version", "try clearing the app cache and restarting",
         "our engineers are fixing a known issue with the latest update"],
    ),
}

CONFUSABLE: dict[str, list[str]] = {
    "refund": ["return", "damaged_item", "billing_dispute"],
    "return": ["refund", "damaged_item"],
    "damaged_item": ["return", "warranty"],
    "shipping_delay": ["order_status"],
    "order_status": ["shipping_delay"],
    "billing_dispute": ["payment_failed", "refund"],
    "payment_failed": ["billing_dispute"],
    "password_reset": ["account_locked"],
    "account_locked": ["password_reset"],
    "cancellation": ["subscription_upgrade", "refund"],
    "subscription_upgrade": ["cancellation"],
    "warranty": ["damaged_item", "technical_issue"],
    "address_change": ["order_status"],
    "product_question": ["technical_issue"],
    "loyalty_points": ["billing_dispute"],
    "technical_issue": ["product_question", "account_locked"],
}

ITEMS = ["headphones", "laptop bag", "coffee machine", "running shoes", "phone case", "smart watch", "desk lamp",
         "blender", "backpack", "keyboard", "jacket", "tablet", "speaker", "vacuum cleaner", "camera"]
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "the 12th", "last week", "yesterday"]
GREETINGS = ["hi", "hello", "hey there", "good morning", "hi team", ""]
FILLERS = ["thanks", "please help", "this is really frustrating", "appreciate it", "any update?", ""]
AGENT_OPEN = ["Thanks for contacting us.", "Hi, happy to help.", "Sorry to hear that.", "Thanks for waiting."]
AGENT_CLOSE = ["Is there anything else I can help with?", "Have a great day.", "Thanks for your patience."]
GENERIC_CUSTOMER = ["I have a problem with my order", "something is wrong with my account",
                    "I need help with the thing I bought", "it's about my last purchase"]

# General-domain reference set for the forgetting measures: topic -> sentence templates.
REFERENCE_TOPICS: dict[str, list[str]] = {
    "weather": ["it will rain in {city} tomorrow", "the forecast says sunny skies all week", "a storm is coming",
                "temperatures drop below freezing tonight", "it was the hottest summer on record in {city}"],
    "sports": ["the team won the final in extra time", "she ran the marathon in under three hours",
               "the match in {city} was postponed", "he scored twice in the second half", "the coach was sacked"],
    "cooking": ["simmer the sauce for twenty minutes", "add a pinch of salt to the dough",
                "roast the vegetables until golden", "this soup recipe needs fresh basil", "bake the bread at 220"],
    "travel": ["the flight to {city} was delayed", "we booked a small hotel near the old town",
               "pack light for a weekend trip", "the train across the mountains is beautiful", "visa rules changed"],
    "music": ["the band released a new album", "she plays the violin in an orchestra",
              "the concert in {city} sold out", "this song has a catchy chorus", "he learned guitar as a child"],
    "science": ["the telescope found a distant galaxy", "cells divide through mitosis",
                "the experiment confirmed the theory", "researchers in {city} sequenced the genome",
                "water boils at lower temperatures at altitude"],
    "health": ["drink enough water every day", "regular exercise lowers blood pressure",
               "the clinic in {city} opens at nine", "sleep affects memory", "a balanced diet includes fibre"],
    "finance": ["interest rates rose again", "the stock market fell sharply", "save a part of every salary",
                "inflation in {city} reached a new high", "the central bank held rates steady"],
}
CITIES = ["Paris", "Lagos", "Mumbai", "Chicago", "Leeds", "Sydney", "Lima", "Osaka"]
