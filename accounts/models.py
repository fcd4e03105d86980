import uuid

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models.functions import Lower

from core.enums import Gender, Status, UserKind
from core.listing import ordered_by


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, phone: str, email: str, password: str | None, **extra):
        if not phone:
            raise ValueError("A user needs a phone number.")
        user = self.model(phone=phone, email=self.normalize_email(email or ""), **extra)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save(using=self._db)
        return user

    def create_user(self, phone: str, email: str = "", password: str | None = None, **extra):
        extra.setdefault("kind", UserKind.OTHER)
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(phone, email, password, **extra)

    def create_superuser(self, phone: str, email: str = "", password: str | None = None, **extra):
        extra.update(kind=UserKind.SUPER_ADMIN, is_staff=True, is_superuser=True)
        extra.setdefault("status", Status.ACTIVE)
        return self._create_user(phone, email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    phone = models.CharField(max_length=20, unique=True)
    email = models.EmailField(blank=True, default="")
    first_name = models.CharField(max_length=150, blank=True, default="")
    last_name = models.CharField(max_length=150, blank=True, default="")
    gender = models.CharField(max_length=10, choices=Gender.choices, default=Gender.UNKNOWN)
    kind = models.CharField(
        max_length=20, choices=UserKind.choices, default=UserKind.OTHER, db_index=True
    )
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.ACTIVE, db_index=True
    )
    is_staff = models.BooleanField(
        default=False, help_text="Can log in to the Django admin (the back office)."
    )
    image = models.ImageField(upload_to="users/", blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    # Indexed: cached list counts are keyed by the latest change (core.pagination).
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    objects = UserManager()

    USERNAME_FIELD = "phone"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["email"]

    class Meta:
        ordering = ["-created_at", "-id"]
        # The list's default order and each ?ordering= field (accounts.api.USER_ORDERING).
        indexes = [
            ordered_by("created_at", name="user_created_idx"),
            ordered_by("updated_at", name="user_updated_order_idx"),
            ordered_by("first_name", name="user_first_name_order_idx"),
            ordered_by("last_name", name="user_last_name_order_idx"),
            ordered_by("phone", name="user_phone_order_idx"),
            ordered_by("kind", name="user_kind_order_idx"),
        ]
        constraints = [
            # Email is optional, but two users never share one (in any case).
            models.UniqueConstraint(
                Lower("email"), condition=~models.Q(email=""), name="user_email_unique_ci"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_full_name() or self.phone} ({self.kind})"

    @property
    def is_active(self) -> bool:
        """Only ACTIVE users may log in, with any credential."""
        return self.status == Status.ACTIVE

    def get_full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    def get_short_name(self) -> str:
        return self.first_name
