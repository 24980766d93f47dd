"""A small deterministic multilingual corpus to train the fixture tokenizers on.

Profile-like sentences in several scripts, so that tokenization of Latin, Cyrillic, CJK, Arabic,
Greek and Devanagari text exercises real subwords rather than only <unk>.
"""

from __future__ import annotations

import random

ROLES = ["software engineer", "data scientist", "product designer", "nurse", "teacher", "chef",
         "lawyer", "photographer", "architect", "marketing manager", "electrician", "researcher"]
CITIES = ["Berlin", "Paris", "Lagos", "Tokyo", "São Paulo", "Montréal", "Zürich", "Kraków",
          "Mumbai", "Nairobi", "Seoul", "Lisbon"]
SKILLS = ["Rust", "Python", "machine learning", "distributed systems", "user research", "pastry",
          "contract law", "portrait lighting", "timber frames", "brand strategy", "solar wiring",
          "protein folding", "search ranking", "vector databases"]
OTHER_SCRIPTS = [
    "Инженер-программист из Москвы, опыт работы с распределёнными системами.",
    "Привет, мир! Ищу работу в области машинного обучения.",
    "東京在住のソフトウェアエンジニアです。検索と機械学習が専門です。",
    "我是一名数据科学家，住在上海，擅长自然语言处理。",
    "서울에 사는 제품 디자이너입니다.",
    "مهندس برمجيات من القاهرة يعمل في تعلم الآلة.",
    "Μηχανικός λογισμικού από την Αθήνα με εμπειρία στην αναζήτηση.",
    "मैं दिल्ली से एक शिक्षक हूँ और मुझे गणित पढ़ाना पसंद है।",
    "Je suis architecte à Lyon et j'aime le bois et la lumière.",
    "Ich bin Krankenpfleger in Hamburg und spreche Deutsch, Englisch und Türkisch.",
    "Soy fotógrafa en Barcelona, especializada en retratos.",
    "Sou chef de cozinha em Lisboa, apaixonado por pastelaria.",
]


def training_corpus(seed: int = 7, n: int = 4000) -> list[str]:
    rng = random.Random(seed)
    lines = list(OTHER_SCRIPTS) * 20
    for _ in range(n):
        lines.append(
            f"{rng.choice(ROLES).capitalize()} based in {rng.choice(CITIES)} with "
            f"{rng.randint(1, 25)} years of experience in {rng.choice(SKILLS)} and {rng.choice(SKILLS)}."
        )
    rng.shuffle(lines)
    return lines
