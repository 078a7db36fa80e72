"""``python -m bookstore.monolith``: serve the monolith (settings from the environment)."""

from bookstore.monolith.app import create_app
from bookstore.serve import main

if __name__ == "__main__":
    main("monolith", create_app)
