import factory
from factory.django import DjangoModelFactory

from accounts.models import User
from core.enums import Status, UserKind

PASSWORD = "Correct-Horse-42"


class UserFactory(DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    phone = factory.Sequence(lambda n: f"+88017{n:08d}")
    email = factory.Sequence(lambda n: f"user{n}@example.com")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    kind = UserKind.OTHER
    status = Status.ACTIVE

    @factory.post_generation
    def password(user, create, value, **kwargs):
        user.set_password(value or PASSWORD)
        if create:
            user.save(update_fields=["password"])
