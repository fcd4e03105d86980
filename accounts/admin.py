from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import BaseUserCreationForm
from django.contrib.auth.forms import UserChangeForm as DjangoUserChangeForm

from accounts.models import User


class UserCreationForm(BaseUserCreationForm):
    class Meta:
        model = User
        fields = ["phone", "email", "kind"]


class UserChangeForm(DjangoUserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    ordering = ["-created_at"]
    list_display = ["phone", "email", "first_name", "last_name", "kind", "status", "is_staff"]
    list_filter = ["kind", "status", "is_staff", "gender"]
    search_fields = ["phone", "email", "first_name", "last_name"]
    readonly_fields = ["uid", "created_at", "updated_at", "last_login"]
    fieldsets = [
        (None, {"fields": ["uid", "phone", "email", "password"]}),
        ("Person", {"fields": ["first_name", "last_name", "gender", "image"]}),
        ("Access", {"fields": ["kind", "status", "is_staff", "is_superuser", "groups"]}),
        ("Dates", {"fields": ["last_login", "created_at", "updated_at"]}),
    ]
    add_fieldsets = [
        (
            None,
            {"classes": ["wide"], "fields": ["phone", "email", "kind", "password1", "password2"]},
        ),
    ]
    filter_horizontal = ["groups"]

    def has_delete_permission(self, request, obj=None):
        return False  # soft delete: set the status to REMOVED
