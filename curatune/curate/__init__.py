"""Curation steps: dedup, anonymisation, label issues, human review; see base.py for the step shape."""
