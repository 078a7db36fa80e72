"""Ranking modules shipped with the bookstore; each file is installed from its source like any other."""
