"""Import a router's PPPoE secrets and static DHCP leases as customers (see
``billing.router_import``). A dry run unless ``--confirm``."""

import json
import uuid

from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError
from django.db.models import Q

from billing.models import Router
from billing.router_import import router_import_now
from core.enums import Status


class Command(BaseCommand):
    help = "Import customers from a router: a dry run, or the import with --confirm."

    def add_arguments(self, parser):
        parser.add_argument("router", help="The router's name or uid.")
        parser.add_argument("--confirm", action="store_true", help="Write what the plan says.")

    def handle(self, *args, router, confirm, **options):
        found = Router.objects.exclude(status=Status.REMOVED).filter(
            Q(name__iexact=router) | Q(uid=router) if _is_uuid(router)
            else Q(name__iexact=router)
        ).first()
        if found is None:
            raise CommandError(f"No router named {router!r}.")
        try:
            run = router_import_now(router=found, dry_run=not confirm)
        except IntegrityError as error:
            raise CommandError(f"An import of {found.name} is running already.") from error
        self.stdout.write(json.dumps({"state": run.state, **run.result, "error": run.error},
                                     indent=2))
        if run.state != run.State.SUCCESS:
            raise CommandError(run.error or "The import did not finish.")


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
