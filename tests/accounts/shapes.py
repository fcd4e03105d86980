"""The contract's response shapes (api-contract.md, Users and Authentication)."""

USER_LITE_KEYS = {"id", "uid", "first_name", "last_name", "phone", "email"}
USER_LIST_KEYS = USER_LITE_KEYS | {"gender", "kind", "image"}
USER_DETAIL_KEYS = USER_LIST_KEYS | {"status", "is_staff", "created_at", "updated_at"}
ME_KEYS = USER_DETAIL_KEYS | {"customer_uid"}
TOKEN_PAIR_KEYS = {"access_token", "refresh_token", "access_token_exp", "refresh_token_exp", "user"}
ACCESS_TOKEN_KEYS = {"access_token", "access_token_exp"}
PAGE_KEYS = {"count", "next", "previous", "results"}
