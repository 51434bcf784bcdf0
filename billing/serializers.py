"""Input and output shapes of the storefront API (catalogue, names, checkout, order status)."""

from __future__ import annotations

import uuid
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.checkout import (
    CheckoutRequest,
    beacon_name_reason,
    offer_price,
    offer_problem,
    region_problem,
)
from billing.models import Bundle, Order, OrderStatus, Period, Tier
from billing.validation import (
    EMAIL_MAX_LENGTH,
    custom_domain_normalised,
    email_problem,
    hostname_problem,
)
from provisioning.models import Beacon, Job, JobKind
from provisioning.serializers import (
    BeaconProgressSerializer,
    InstallProgressSerializer,
    JobProgressSerializer,
    install_progress,
)

# --- catalogue -------------------------------------------------------------------------------


class PriceSerializer(serializers.Serializer):
    tier = serializers.CharField()
    period = serializers.ChoiceField(choices=Period.choices)
    amount = serializers.IntegerField(
        min_value=0, help_text="In the currency's smallest unit (cents); 0 when not sellable."
    )
    currency = serializers.CharField(help_text="ISO 4217, lower case (`usd`).")
    sellable = serializers.BooleanField(help_text="False: custom pricing, not sold by checkout.")


class BundleSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    kind = serializers.CharField(help_text="`micro` or `sovereign`.")
    apps = serializers.ListField(child=serializers.CharField(), help_text="The bundle's apps.")
    available_regions = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Tier slug -> the regions where this bundle at that tier can be bought now "
        "(empty: off sale, e.g. no healthy provider has the server size it needs).",
    )
    prices = PriceSerializer(many=True, help_text="Prices in the active Stripe mode.")


class TierSerializer(serializers.Serializer):
    slug = serializers.CharField()
    number = serializers.IntegerField()
    storage_gb = serializers.IntegerField()
    ram_gb = serializers.IntegerField()
    max_users = serializers.IntegerField()
    backup_days = serializers.IntegerField()


class RegionSerializer(serializers.Serializer):
    slug = serializers.CharField()
    available = serializers.BooleanField(help_text="A healthy provider can take a Beacon there.")


class CatalogSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=["test", "live"], help_text="Active Stripe mode.")
    bundles = BundleSerializer(many=True)
    tiers = TierSerializer(many=True)
    regions = RegionSerializer(many=True)


# --- beacon names ----------------------------------------------------------------------------


class BeaconNameSerializer(serializers.Serializer):
    name = serializers.CharField()
    available = serializers.BooleanField()
    reason = serializers.ChoiceField(
        choices=["invalid", "reserved", "taken"], allow_null=True, help_text="null when available."
    )


NAME_MESSAGES = {
    "invalid": "Use 3 to 32 lower-case letters, digits and hyphens, starting and ending with a "
    "letter or digit.",
    "reserved": "This name is reserved.",
    "taken": "This name is taken.",
    "held": "This name is your Beacon's, in its grace period after cancellation: choose the "
    "same bundle to take it back.",
}

# --- checkout --------------------------------------------------------------------------------


def _initial_text(data: Any, key: str) -> str:
    try:
        return str(data.get(key) or "")
    except AttributeError:
        return ""


def _uuid_or_none(data: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(data.get("order_id")))
    except (AttributeError, ValueError):
        return None


class CheckoutInputSerializer(serializers.Serializer):
    bundle = serializers.CharField(max_length=64, help_text="A bundle slug from the catalogue.")
    tier = serializers.CharField(max_length=8, help_text="`t1`, `t2` or `t3`.")
    period = serializers.ChoiceField(choices=Period.choices, default=Period.MONTHLY)
    beacon_name = serializers.CharField(
        max_length=63, help_text="DNS label `^[a-z0-9][a-z0-9-]{1,30}[a-z0-9]$`, free to take."
    )
    region = serializers.CharField(max_length=32, help_text="A region slug from the catalogue.")
    email = serializers.EmailField(max_length=EMAIL_MAX_LENGTH)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    custom_domain = serializers.CharField(
        max_length=253, required=False, allow_blank=True, default=""
    )
    order_id = serializers.UUIDField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Repeat a checkout: the same id and details return the same order and "
        "session. A new id (generate a random UUID) names the order to create.",
    )

    def validate_bundle(self, value: str) -> Bundle:
        bundle = Bundle.objects.filter(slug=value, active=True).first()
        if bundle is None:
            raise serializers.ValidationError("Unknown bundle.")
        return bundle

    def validate_tier(self, value: str) -> Tier:
        tier = Tier.objects.filter(slug=value).first()
        if tier is None:
            raise serializers.ValidationError("Unknown tier; choose t1, t2 or t3.")
        return tier

    def validate_region(self, value: str) -> str:
        problem = region_problem(value)
        if problem == "unknown":
            raise serializers.ValidationError("Unknown region.")
        if problem == "unavailable":
            raise serializers.ValidationError("No capacity in this region right now.")
        return value

    def validate_email(self, value: str) -> str:
        problem = email_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value

    def validate_custom_domain(self, value: str) -> str:
        value = custom_domain_normalised(value)
        problem = value and hostname_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value

    def validate_beacon_name(self, value: str) -> str:
        reason = beacon_name_reason(
            value,
            order_id=_uuid_or_none(self.initial_data),
            email=_initial_text(self.initial_data, "email"),
            bundle=_initial_text(self.initial_data, "bundle"),
        )
        if reason:
            raise serializers.ValidationError(NAME_MESSAGES[reason])
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        price = offer_price(bundle=attrs["bundle"], tier=attrs["tier"], period=attrs["period"])
        if price is None or not price.sellable:
            raise serializers.ValidationError(
                {"tier": ["Not sold through checkout; please contact us for this offer."]}
            )
        problem = offer_problem(bundle=attrs["bundle"], tier=attrs["tier"], region=attrs["region"])
        if problem == "unavailable":
            raise serializers.ValidationError(
                {
                    "tier": [
                        "This bundle at this tier cannot be bought in this region right now "
                        "(no server of the size it needs); choose another tier or region."
                    ]
                }
            )
        attrs["price"] = price
        return attrs

    def to_request(self) -> CheckoutRequest:
        return CheckoutRequest(**self.validated_data)


class CheckoutOutputSerializer(serializers.Serializer):
    order_id = serializers.UUIDField(source="order.pk")
    checkout_url = serializers.URLField(help_text="Stripe's hosted checkout page.")
    session_id = serializers.CharField(help_text="The Stripe Checkout Session id.")


# --- order status ----------------------------------------------------------------------------


class OrderStatusSerializer(serializers.Serializer):
    """What the success page polls: no e-mail, no addresses, no internal errors.

    Expects an Order loaded with `select_related("beacon")`; reads its latest job (one query)
    and, once its server runs, that job's install stages (one more).
    """

    order_id = serializers.UUIDField(source="pk")
    status = serializers.ChoiceField(choices=OrderStatus.choices)
    beacon = serializers.SerializerMethodField()
    job = serializers.SerializerMethodField()
    install = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    @extend_schema_field(BeaconProgressSerializer(allow_null=True))
    def get_beacon(self, order: Order) -> dict[str, Any] | None:
        beacon = _beacon_of(order)
        return BeaconProgressSerializer(beacon).data if beacon else None

    @extend_schema_field(JobProgressSerializer(allow_null=True))
    def get_job(self, order: Order) -> dict[str, Any] | None:
        job = _latest_job(order)
        return JobProgressSerializer(job).data if job else None

    @extend_schema_field(InstallProgressSerializer(allow_null=True))
    def get_install(self, order: Order) -> dict[str, Any] | None:
        """The Beacon's install as it reports it (null until its server runs)."""
        progress = install_progress(_latest_job(order))
        return InstallProgressSerializer(progress).data if progress else None


def _latest_job(order: Order) -> Job | None:
    """The Beacon's latest job that changes what the buyer has (not a daily snapshot), read once
    per serialised order (two fields use it)."""
    if not hasattr(order, "_latest_job"):
        beacon = _beacon_of(order)
        jobs = beacon.jobs.exclude(kind=JobKind.SNAPSHOT) if beacon else None
        order._latest_job = jobs.order_by("-created_at").first() if jobs is not None else None  # type: ignore[attr-defined]
    return order._latest_job  # type: ignore[attr-defined]


def _beacon_of(order: Order) -> Beacon | None:
    try:
        return order.beacon
    except Beacon.DoesNotExist:
        return None
