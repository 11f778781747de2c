"""Typed application state keys."""

from __future__ import annotations

from aiohttp import web

from hatchway.config.model import Config
from hatchway.registry.service import Registry

CONFIG = web.AppKey("config", Config)
REGISTRY = web.AppKey("registry", Registry)
