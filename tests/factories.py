"""factory-boy factories for the models the tests build. The catalogue (Bundle, Tier) comes from
the data migration, so factories look those rows up rather than creating them."""

from __future__ import annotations

import factory
from django.conf import settings
from factory.django import DjangoModelFactory

from billing.models import Bundle, Customer, Order, OrderStatus, Tier
from provisioning.models import Beacon, BeaconStatus


class CustomerFactory(DjangoModelFactory):
    """A buyer with a unique e-mail address."""

    class Meta:
        model = Customer

    email = factory.Sequence(lambda n: f"customer{n}@example.com")
    name = "Ada Lovelace"


class OrderFactory(DjangoModelFactory):
    """A paid order for the starter bundle on tier t1."""

    class Meta:
        model = Order

    customer = factory.SubFactory(CustomerFactory)
    bundle = factory.LazyFunction(lambda: Bundle.objects.get(slug="starter"))
    tier = factory.LazyFunction(lambda: Tier.objects.get(slug="t1"))
    beacon_name = factory.Sequence(lambda n: f"beacon{n:03d}")
    region = "eu-central"
    email = factory.SelfAttribute("customer.email")
    name = factory.SelfAttribute("customer.name")
    status = OrderStatus.PAID
    stripe_checkout_session_id = factory.Sequence(lambda n: f"cs_test_factory_{n}")


class BeaconFactory(DjangoModelFactory):
    """An active Beacon for its order, with documentation-range IP addresses."""

    class Meta:
        model = Beacon

    order = factory.SubFactory(OrderFactory)
    owner = factory.SelfAttribute("order.customer")
    name = factory.SelfAttribute("order.beacon_name")
    fqdn = factory.LazyAttribute(lambda o: f"{o.name}.{settings.WOPR_BASE_DOMAIN}")
    bundle = factory.SelfAttribute("order.bundle")
    tier = factory.SelfAttribute("order.tier")
    modules = factory.LazyAttribute(lambda o: list(o.bundle.modules))
    region = factory.SelfAttribute("order.region")
    ipv4 = factory.Sequence(lambda n: f"203.0.113.{n % 250 + 1}")
    ipv6 = factory.Sequence(lambda n: f"2001:db8::{n + 1:x}")
    status = BeaconStatus.ACTIVE
