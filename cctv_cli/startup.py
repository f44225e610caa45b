"""What every command does first: load the settings, once, and log the way they say."""

from __future__ import annotations

from cctv import logs
from cctv.context import Context
from cctv.settings import Settings


def load_settings() -> Settings:
    settings = Settings.load()
    logs.configure(settings.log_level)
    return settings


def load_context() -> Context:
    return Context.load(load_settings())
