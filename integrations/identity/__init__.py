"""Identity adapters: the interface (`base`), Authentik, and the builder (`registry`).

Like the rest of `integrations/`, it imports no app: accounts.services builds the adapter from
settings with `registry.identity_build(AuthentikConfig(...))` (None without AUTHENTIK_URL).
"""

from integrations.identity.base import (
    IdentityError,
    IdentityGroup,
    IdentityProvider,
    IdentityUser,
    NewUser,
)

__all__ = ["IdentityError", "IdentityGroup", "IdentityProvider", "IdentityUser", "NewUser"]
