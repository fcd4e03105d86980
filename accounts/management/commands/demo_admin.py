import os

from django.core.management.base import BaseCommand

from accounts.models import User


class Command(BaseCommand):
    help = "Create the demo administrator (if missing) and print how to log in."

    def handle(self, *args, **options):
        phone = os.environ.get("DEMO_ADMIN_PHONE", "01700000000")
        email = os.environ.get("DEMO_ADMIN_EMAIL", "admin@example.com")
        password = os.environ.get("DEMO_ADMIN_PASSWORD", "demo-admin-pass")
        user = User.objects.filter(phone=phone).first()
        if user is None:
            User.objects.create_superuser(phone=phone, email=email, password=password)
            state = "created"
        else:
            state = "already there (its password is left as it is)"
        self.stdout.write(
            f"Demo administrator {state}: phone {phone} / email {email} / password {password}"
        )
