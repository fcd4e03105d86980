"""A password hasher that counts its hash computations (the cost a failed check must pay)."""

from django.contrib.auth.hashers import MD5PasswordHasher


class CountingHasher(MD5PasswordHasher):
    """MD5 (fast, as in every test), counting each ``encode``: making a hash and
    verifying one both compute exactly one."""

    algorithm = "counting_md5"
    calls = 0

    def encode(self, password, salt):
        type(self).calls += 1
        return super().encode(password, salt)
