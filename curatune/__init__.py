"""curatune: curate support-transcript datasets, fine-tune on them, and audit the result."""

__version__ = "0.1.0"
