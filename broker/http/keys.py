"""Typed application keys shared by handlers."""

from __future__ import annotations

from aiohttp import web

from broker.clock import Clock
from broker.config import Settings
from broker.crypto.purpose_keys import PurposeKeys
from broker.federation.cosigning import CheckpointSubmitter
from broker.federation.receive import Receiver
from broker.federation.reporter import StatusReporter
from broker.federation.reports_in import ReportIntake
from broker.federation.witnessing import PeerWitness
from broker.service.audit import AuditService
from broker.service.enrolment import Enrolment
from broker.service.escalation import EscalationWorker
from broker.service.health import Listening
from broker.service.intake import Intake
from broker.service.outbox import Outbox
from broker.service.recipients import Recipients
from broker.service.refusals import Refusals
from broker.service.rekey import Rekeyer
from broker.service.release import Release
from broker.service.retention import Shredder
from broker.service.startup import Startup
from broker.service.tokens import TokenService
from broker.state import BrokerState

STATE = web.AppKey("state", BrokerState)
SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
INTAKE = web.AppKey("intake", Intake)
RECIPIENTS = web.AppKey("recipients", Recipients)
TOKENS = web.AppKey("tokens", TokenService)
ESCALATION = web.AppKey("escalation", EscalationWorker)
AUDIT = web.AppKey("audit", AuditService)
SHREDDER = web.AppKey("shredder", Shredder)
OUTBOX = web.AppKey("outbox", Outbox)
LISTENER = web.AppKey("listener", Listening)
REFUSALS = web.AppKey("refusals", Refusals)
STARTUP = web.AppKey("startup", Startup)
REKEY = web.AppKey("rekey", Rekeyer)
PURPOSE_KEYS = web.AppKey("purpose_keys", PurposeKeys)
ENROLMENT = web.AppKey("enrolment", Enrolment)
FEDERATION = web.AppKey("federation", Receiver)
FEDERATION_STATUS = web.AppKey("federation_status", ReportIntake)
REPORTER = web.AppKey("reporter", StatusReporter)
RELEASE = web.AppKey("release", Release)
WITNESS = web.AppKey("witness", PeerWitness)
COSIGNING = web.AppKey("cosigning", CheckpointSubmitter)
