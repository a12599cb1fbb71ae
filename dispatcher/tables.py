"""Every table: coso's own and each installed channel's, for migrations and `coso init`."""

from channels.endpoints import Endpoint, EndpointGroup, GroupMember
from channels.registry import load_tables
from content.models import ContentItem, ContentVersion, MediaAsset
from coso.units import AdminUnit, Organisation, UnitMapping
from coso.users import User
from dispatcher.cap.models import ReceivedAlert
from dispatcher.inbound import EarlyOutcome
from dispatcher.models import (
    ActivityEntry,
    Delivery,
    DispatcherWorker,
    OutcomeCount,
    OutcomePieceCount,
)
from schedules.emergencies import Emergency
from schedules.models import Occurrence, Plan, PlanTarget, Schedule
from schedules.running_order import RunningOrder
from schedules.sessions import BroadcastSession, SessionException, SessionPlacement

load_tables()

__all__ = [
    "ActivityEntry",
    "AdminUnit",
    "BroadcastSession",
    "ContentItem",
    "ContentVersion",
    "Delivery",
    "DispatcherWorker",
    "EarlyOutcome",
    "Emergency",
    "Endpoint",
    "EndpointGroup",
    "GroupMember",
    "MediaAsset",
    "Occurrence",
    "Organisation",
    "OutcomeCount",
    "OutcomePieceCount",
    "Plan",
    "PlanTarget",
    "ReceivedAlert",
    "RunningOrder",
    "Schedule",
    "SessionException",
    "SessionPlacement",
    "UnitMapping",
    "User",
]
