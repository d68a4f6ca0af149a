"""`make demo`: the seed attack replayed, fixed through the real triggers, and proved closed."""
