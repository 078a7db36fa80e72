"""Bargains first: the cheapest book ranks highest."""


def rank(books: list[dict]) -> list[dict]:
    return sorted(books, key=lambda book: (book["price"], book["id"]))
