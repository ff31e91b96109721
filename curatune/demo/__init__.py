"""The embedded demo: a seeded synthetic support-transcript dataset with planted problems."""

from curatune.demo.generator import DEFAULT_CONVERSATIONS, generate_demo

__all__ = ["DEFAULT_CONVERSATIONS", "generate_demo"]
