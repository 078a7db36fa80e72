"""Best sellers first: the most copies sold ranks highest (the original SOFAStack workshop's ranking)."""


def rank(books: list[dict]) -> list[dict]:
    return sorted(books, key=lambda book: (-book["sold"], book["id"]))
