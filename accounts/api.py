from uuid import UUID

from ninja import Query, Router, Status
from ninja.pagination import paginate

from accounts import selectors, services
from accounts.schemas import (
    AccessToken,
    ErrorDetail,
    LoginError,
    LoginIn,
    Me,
    MeUpdate,
    PasswordChangeIn,
    RefreshIn,
    RegisterIn,
    TokenPair,
    UserDetail,
    UserList,
    UserWrite,
)
from core.enums import Status as RecordStatus
from core.enums import UserKind
from core.listing import ListParams, filters_apply, ordering_apply, search_filter
from core.permissions import require
from core.throttling import AddressRateThrottle, client_address

router = Router(tags=["users"])

USER_FILTERS = {"kind": "kind", "status": "status"}
USER_SEARCH_FIELDS = ("first_name", "last_name", "phone", "email")
USER_ORDERING = {
    "created_at": "created_at",
    "updated_at": "updated_at",
    "first_name": "first_name",
    "last_name": "last_name",
    "phone": "phone",
    "kind": "kind",
}


class UserFilters(ListParams):
    kind: UserKind | None = None
    status: RecordStatus | None = None


@router.post(
    "/login",
    auth=None,
    throttle=AddressRateThrottle("login"),
    response={200: TokenPair, 401: LoginError, 429: ErrorDetail},
)
def login(request, payload: LoginIn):
    user, access, refresh = services.auth_login(
        login=payload.phone, password=payload.password, address=client_address(request)
    )
    return {
        "access_token": access.token,
        "refresh_token": refresh.token,
        "access_token_exp": access.expires_at,
        "refresh_token_exp": refresh.expires_at,
        "user": user,
    }


@router.post(
    "/login/refresh",
    auth=None,
    throttle=AddressRateThrottle("refresh"),
    response={200: AccessToken, 401: ErrorDetail, 429: ErrorDetail},
)
def login_refresh(request, payload: RefreshIn):
    access = services.auth_refresh(refresh_token=payload.refresh_token)
    return {"access_token": access.token, "access_token_exp": access.expires_at}


@router.post(
    "/register",
    auth=None,
    throttle=AddressRateThrottle("register"),
    response={201: UserDetail, 429: ErrorDetail},
)
def register(request, payload: RegisterIn):
    return Status(201, services.user_register(data=payload.dict()))


@router.get("/me", response=Me)
def me(request):
    return request.auth


@router.put("/me", response=Me)
def me_update(request, payload: MeUpdate):
    return services.user_update(
        actor=request.auth, user=request.auth, data=payload.dict(exclude_unset=True)
    )


@router.post("/me/password", response={204: None})
def me_password(request, payload: PasswordChangeIn):
    services.password_change(
        user=request.auth,
        old_password=payload.old_password,
        new_password=payload.new_password,
        address=client_address(request),
    )
    return Status(204, None)


@router.get("", response=list[UserList])
@paginate
def user_list(request, filters: Query[UserFilters]):
    require(request.auth, "users.read")
    users = filters_apply(selectors.user_list(), filters, USER_FILTERS)
    users = search_filter(users, filters.search, USER_SEARCH_FIELDS)
    return ordering_apply(users, filters.ordering, USER_ORDERING)


@router.post("", response={201: UserDetail})
def user_create(request, payload: UserWrite):
    require(request.auth, "users.write")
    return Status(201, services.user_create(actor=request.auth, data=payload.dict()))


@router.get("/{uid}", response=UserDetail)
def user_detail(request, uid: UUID):
    require(request.auth, "users.read")
    return selectors.user_get(uid)


@router.put("/{uid}", response=UserDetail)
def user_update(request, uid: UUID, payload: UserWrite):
    require(request.auth, "users.write")
    user = selectors.user_get(uid)
    return services.user_update(
        actor=request.auth, user=user, data=payload.dict(exclude_unset=True)
    )


@router.delete("/{uid}", response={204: None})
def user_delete(request, uid: UUID):
    require(request.auth, "users.delete")
    services.user_remove(actor=request.auth, user=selectors.user_get(uid))
    return Status(204, None)
