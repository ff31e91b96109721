# ruff: noqa: E501  (phrase banks: one template per line reads better than wrapped strings)
"""A general-domain reference set (text, label) outside the support task, for the forgetting measures.

Short sentences across eight topics, each built from templates with several slots so the rows
are distinct; ``reference_rows`` draws until it has ``per_topic`` unique sentences per topic.
"""

from __future__ import annotations

import random

import polars as pl

from curatune.demo.phrasing import expand

REFERENCE_TOPICS: dict[str, tuple[str, ...]] = {
    "weather": (
        "[heavy rain|thunderstorms|snow|strong winds|fog|a heatwave] [is|are] expected in {city} [tomorrow|this weekend|on {weekday}|tonight]",
        "the forecast for {city} says [sunny skies|clear skies|light showers|cloudy weather] [all week|until {weekday}|for the next few days]",
        "temperatures [will drop|could fall] below freezing [tonight|by {weekday}] in [the north|the hills|{city}]",
        "it was the [hottest|wettest|coldest|driest] [summer|winter|spring|month] on record in {city}",
        "[a storm|a cold front|a tropical storm] [is moving towards|will reach|passed over] the coast [on {weekday}|overnight|this morning]",
        "[bring an umbrella|wear a coat|stay hydrated], [it will be|they say it will be] [wet|cold|very hot] in {city} [today|on {weekday}]",
    ),
    "sports": (
        "the [home team|visitors|champions|underdogs] won the [final|derby|semi-final] [in extra time|on penalties|by two goals]",
        "she ran the {city} marathon in under [three|four] hours",
        "the match in {city} was [postponed|abandoned|delayed] because of [rain|a waterlogged pitch|crowd trouble]",
        "he scored [twice|a hat-trick|the winner] in the [second half|last minute|first ten minutes]",
        "the [coach|manager|captain] [was sacked|resigned|signed a new contract] after [a poor season|the defeat|the final]",
        "[tennis|cricket|basketball|rugby] fans in {city} [queued for hours|celebrated all night|booed the referee]",
    ),
    "cooking": (
        "[simmer|stir|reduce] the [sauce|soup|stock] for [ten|twenty|forty] minutes",
        "add a pinch of [salt|sugar|chilli|nutmeg] to the [dough|batter|sauce]",
        "roast the [vegetables|potatoes|chicken|peppers] until [golden|crispy|tender]",
        "this [soup|pasta|curry|salad] recipe needs [fresh basil|a lemon|garlic|coriander]",
        "bake the [bread|cake|pie|biscuits] at [180|200|220] degrees for [25|40|50] minutes",
        "[whisk|beat|fold] the [eggs|cream|butter] [gently|until smooth|with a fork] before adding the [flour|sugar|cheese]",
    ),
    "travel": (
        "the [flight|train|ferry|bus] to {city} was [delayed|cancelled|packed|on time]",
        "we booked a [small hotel|hostel|guesthouse|flat] near the [old town|beach|station|river] in {city}",
        "pack light for a [weekend|short|week-long] trip to {city}",
        "the [train|road|walk] across the [mountains|valley|coast] [is beautiful|takes six hours|was worth it]",
        "[visa rules|border checks|luggage limits] changed for travellers to {city} [this year|last month|in spring]",
        "[the museum|the market|the cathedral|the harbour] in {city} is [worth a visit|busy on weekends|free on {weekday}]",
    ),
    "music": (
        "the [band|singer|orchestra|duo] released a new [album|single|record] [this week|on {weekday}|last month]",
        "she plays the [violin|cello|piano|flute] in [an orchestra|a jazz trio|a folk band]",
        "the concert in {city} [sold out|was moved|ran late] [in minutes|because of rain|until midnight]",
        "this [song|track|ballad] has a [catchy chorus|slow intro|long guitar solo]",
        "he learned [guitar|drums|the trumpet|to sing] [as a child|at school|from videos]",
        "the [festival|opera|choir] in {city} [opens|closes|returns] on {weekday}",
    ),
    "science": (
        "the [telescope|probe|satellite] [found|photographed|detected] a distant [galaxy|comet|planet]",
        "[cells|bacteria|yeast cells] divide [through mitosis|every twenty minutes|when nutrients are plentiful]",
        "the experiment [confirmed|challenged|refined] the [theory|model|hypothesis]",
        "researchers in {city} [sequenced|mapped|studied] the [genome|brain|coral reef] of [a rare frog|a whale|an ancient plant]",
        "water boils at [lower|higher] temperatures at [high altitude|high pressure]",
        "[physicists|chemists|biologists] in {city} [built|tested|published] a new [sensor|material|method]",
    ),
    "health": (
        "drink [enough water|plenty of fluids] [every day|when it is hot|after exercise]",
        "regular [exercise|walking|swimming] [lowers|can lower] [blood pressure|stress|cholesterol]",
        "the [clinic|pharmacy|hospital] in {city} opens at [eight|nine|ten] on {weekday}",
        "[sleep|rest|a short nap] [affects|improves|helps] [memory|mood|concentration]",
        "a balanced diet includes [fibre|fruit|vegetables|whole grains] [and protein|every day|]",
        "[doctors|nurses|researchers] recommend [stretching|a flu jab|regular check-ups] [in winter|after forty|for everyone]",
    ),
    "finance": (
        "interest rates [rose|fell|were unchanged] [again|for the third time|this quarter]",
        "the stock market [fell sharply|rallied|closed flat] on {weekday}",
        "[save|invest|put aside] a [part|tenth|small share] of every salary",
        "inflation in {city} reached a new [high|low] [this month|last year|in spring]",
        "the central bank [held rates steady|cut rates|raised rates] [on {weekday}|this week|as expected]",
        "[house prices|rents|fuel prices] in {city} [went up|came down|stayed flat] [last year|this quarter]",
    ),
}
CITIES = ("Paris", "Lagos", "Mumbai", "Chicago", "Leeds", "Sydney", "Lima", "Osaka", "Nairobi", "Toronto",
          "Lisbon", "Seoul", "Cairo", "Denver", "Oslo", "Manila")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
SLOTS = {"city": CITIES, "weekday": WEEKDAYS}
PREFIXES = ("I read that ", "apparently ", "did you hear ", "news: ", "they say ", "", "", "", "")


def reference_rows(rng: random.Random, per_topic: int = 100) -> pl.DataFrame:
    rows: list[dict[str, str]] = []
    for topic, templates in sorted(REFERENCE_TOPICS.items()):
        seen: set[str] = set()
        for _ in range(per_topic * 50):  # bounded: the templates give far more than per_topic sentences
            if len(seen) == per_topic:
                break
            text = rng.choice(PREFIXES) + expand(rng.choice(templates), rng, SLOTS)
            if text not in seen:
                seen.add(text)
                rows.append({"text": text, "label": topic})
    return pl.DataFrame(rows, schema={"text": pl.String, "label": pl.String})
