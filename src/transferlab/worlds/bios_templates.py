"""Sentence and question templates of the `bios` world (our own wording).

Every biography sentence starts with ``{subject}`` (the full name, or "He"/"She") or
``{possessive}`` (the full name + "'s", or "His"/"Her"), so a sentence can switch between the
full name and a pronoun without rewording, and a name always opens its sentence. Each sentence
states exactly one attribute, named by its placeholder. Questions always use the full ``{name}``.
"""

from __future__ import annotations

SENTENCE_TEMPLATES: dict[str, tuple[str, ...]] = {
    "birth_date": (
        "{subject} was born on {birth_date}.",
        "{subject} came into this world on {birth_date}.",
        "{possessive} birthday is {birth_date}.",
        "{possessive} date of birth is {birth_date}.",
        "{subject} entered life on {birth_date}.",
        "{subject} was welcomed into the world on {birth_date}.",
    ),
    "birth_city": (
        "{subject} was born in {birth_city}.",
        "{possessive} birthplace is {birth_city}.",
        "{subject} came from {birth_city}.",
        "{subject} is a native of {birth_city}.",
        "{possessive} hometown is {birth_city}.",
        "{subject} spent the first years of life in {birth_city}.",
    ),
    "university": (
        "{subject} studied at {university}.",
        "{subject} attended {university}.",
        "{subject} graduated from {university}.",
        "{possessive} alma mater is {university}.",
        "{subject} received a degree from {university}.",
        "{subject} was a student at {university}.",
    ),
    "major": (
        "{subject} majored in {major}.",
        "{possessive} field of study was {major}.",
        "{subject} specialized in {major}.",
        "{subject} earned a degree in {major}.",
        "{possessive} major was {major}.",
        "{subject} focused on {major} in college.",
    ),
    "employer": (
        "{subject} worked for {employer}.",
        "{subject} was employed by {employer}.",
        "{possessive} employer was {employer}.",
        "{subject} held a job at {employer}.",
        "{subject} joined the staff of {employer}.",
        "{subject} built a career at {employer}.",
    ),
    "employer_city": (
        "{subject} worked in {employer_city}.",
        "{possessive} workplace was in {employer_city}.",
        "{subject} had a job in {employer_city}.",
        "{subject} commuted to an office in {employer_city}.",
        "{subject} was based in {employer_city} for work.",
        "{possessive} office was located in {employer_city}.",
    ),
}

QUESTION_TEMPLATES: dict[str, tuple[str, ...]] = {
    "birth_date": (
        "When was {name} born?",
        "What is the birth date of {name}?",
        "On what date was {name} born?",
    ),
    "birth_city": (
        "Where was {name} born?",
        "What is the birth city of {name}?",
        "In which city was {name} born?",
    ),
    "university": (
        "Which university did {name} attend?",
        "Where did {name} go to university?",
        "From which university did {name} graduate?",
    ),
    "major": (
        "What was the major of {name}?",
        "What field did {name} study?",
        "Which subject did {name} major in?",
    ),
    "employer": (
        "Which company did {name} work for?",
        "Who employed {name}?",
        "What was the employer of {name}?",
    ),
    "employer_city": (
        "In which city did {name} work?",
        "What is the city where {name} worked?",
        "Which city was the workplace of {name} in?",
    ),
}
