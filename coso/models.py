"""Every table, imported in one place for migrations and `coso init`."""

from channels.devices import PlayerStatus
from channels.endpoints import Endpoint, EndpointGroup, GroupMember
from channels.recipients import SmsOptOut
from channels.web import BulletinPost
from content.models import ContentItem, MediaAsset
from coso.units import AdminUnit, Organisation, UnitMapping
from dispatcher.models import ActivityEntry, Delivery, DispatcherWorker
from dispatcher.sms_status import SmsEarlyStatus
from schedules.models import Occurrence, Plan, PlanTarget, Schedule

__all__ = [
    "ActivityEntry",
    "AdminUnit",
    "BulletinPost",
    "ContentItem",
    "Delivery",
    "DispatcherWorker",
    "Endpoint",
    "EndpointGroup",
    "GroupMember",
    "MediaAsset",
    "Occurrence",
    "Organisation",
    "Plan",
    "PlanTarget",
    "PlayerStatus",
    "Schedule",
    "SmsEarlyStatus",
    "SmsOptOut",
    "UnitMapping",
]
