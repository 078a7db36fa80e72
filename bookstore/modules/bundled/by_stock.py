"""Clear the shelves: the book with the most copies left ranks highest."""


def rank(books: list[dict]) -> list[dict]:
    return sorted(books, key=lambda book: (-book["stock"], book["id"]))
