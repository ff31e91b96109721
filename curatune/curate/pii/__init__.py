"""Personal-data detection (Presidio + our recognizers) and replacement."""
