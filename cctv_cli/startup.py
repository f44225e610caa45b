"""What every command does first: load the settings, once."""

from __future__ import annotations

from cctv.context import Context
from cctv.settings import Settings


def load_settings() -> Settings:
    return Settings.load()


def load_context() -> Context:
    return Context.load(load_settings())
