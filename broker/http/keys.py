"""Typed application keys shared by handlers."""

from __future__ import annotations

from aiohttp import web

from broker.clock import Clock
from broker.config import Settings
from broker.service.intake import Intake
from broker.state import BrokerState

STATE = web.AppKey("state", BrokerState)
SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
INTAKE = web.AppKey("intake", Intake)
