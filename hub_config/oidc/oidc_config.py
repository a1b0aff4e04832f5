# OIDC login (EOLAB_HUB_AUTHENTICATOR=oidc): GenericOAuthenticator for an EGI Check-in / Keycloak style
# provider, access and admin rights from a group claim.
#
# Run by hub_config/jupyterhub_config.py (exec, with its globals `c`, `S`, `json`, `os`, `sys`, `Path`); every
# value comes from the JSON file named by S.oidc_settings (EOLAB_HUB_OIDC_SETTINGS), which lives
# outside the repository because it holds the client secret. Format and examples:
# hub_config/README.md, section "OIDC login". No remote discovery: the endpoints are in the file (or
# derived from a Keycloak realm's issuer URL).


def _oidc_settings(path):
    if not path:
        sys.exit("EOLAB_HUB_AUTHENTICATOR=oidc needs EOLAB_HUB_OIDC_SETTINGS (a JSON file of provider "
                 "settings, see hub_config/README.md)")
    file = Path(path)
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as err:
        sys.exit(f"cannot read the OIDC settings {file}: {err}")
    known = {"provider_name", "issuer", "authorize_url", "token_url", "userdata_url", "logout_url",
             "client_id", "client_secret", "client_secret_file", "callback_url", "scope", "username_claim",
             "groups_claim", "allowed_groups", "admin_groups", "allowed_users", "admin_users",
             "basic_auth", "enable_pkce", "tls_verify", "extra_authorize_params", "forbidden_message"}
    unknown = sorted(set(data) - known)
    if unknown:
        sys.exit(f"{file}: unknown OIDC settings {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    issuer = (data.get("issuer") or "").rstrip("/")
    # EGI Check-in and Keycloak: endpoints under <issuer>/protocol/openid-connect/ when not given.
    for key, tail in (("authorize_url", "auth"), ("token_url", "token"), ("userdata_url", "userinfo")):
        if not data.get(key):
            if not issuer:
                sys.exit(f"{file}: set {key} (or issuer, for a Keycloak / EGI Check-in realm)")
            data[key] = f"{issuer}/protocol/openid-connect/{tail}"
    if not data.get("client_id"):
        sys.exit(f"{file}: client_id is missing")
    if data.get("client_secret_file"):
        data["client_secret"] = Path(data["client_secret_file"]).read_text().strip()
    elif data.get("client_secret") and file.stat().st_mode & 0o077:
        print(f"WARNING: {file} holds the OIDC client secret and is readable by other users "
              f"(chmod 600 it)", file=sys.stderr)
    if not data.get("client_secret"):
        sys.exit(f"{file}: client_secret (or client_secret_file) is missing")
    if not (data.get("allowed_groups") or data.get("allowed_users")):
        print(f"WARNING: {file} sets neither allowed_groups nor allowed_users: only admins can log in",
              file=sys.stderr)
    return data


O = _oidc_settings(S.oidc_settings)
# GenericOAuthenticator that also renews access tokens before they expire (eolab.hub.oidc)
from eolab.hub.oidc import SCOPE as TOKEN_SCOPE  # noqa: E402
from eolab.hub.oidc import OIDCAuthenticator, OIDCTokenHandler  # noqa: E402

c.JupyterHub.authenticator_class = OIDCAuthenticator
g = c.GenericOAuthenticator
g.login_service = O.get("provider_name") or "OpenID Connect"  # the button: "Sign in with <provider_name>"
g.client_id = O["client_id"]
g.client_secret = O["client_secret"]
g.oauth_callback_url = O.get("callback_url") or f"{S.public_url}/hub/oauth_callback"
g.authorize_url = O["authorize_url"]
g.token_url = O["token_url"]
g.userdata_url = O["userdata_url"]
groups_claim = O.get("groups_claim", "eduperson_entitlement")
scope = O.get("scope") or ["openid", "profile", "email", groups_claim]
g.scope = list(scope)
g.username_claim = O.get("username_claim", "preferred_username")
g.basic_auth = bool(O.get("basic_auth", True))  # client_secret_basic: the default of Keycloak and Check-in
g.enable_pkce = bool(O.get("enable_pkce", True))
g.validate_server_cert = bool(O.get("tls_verify", True))
if O.get("extra_authorize_params"):
    g.extra_authorize_params = dict(O["extra_authorize_params"])
if O.get("logout_url"):
    g.logout_redirect_url = O["logout_url"]
# Group-based access: the claim's values become the user's hub groups at every login.
g.manage_groups = True
g.auth_state_groups_key = f"oauth_user.{groups_claim}"  # the userinfo answer is auth_state["oauth_user"]
g.allowed_groups = set(O.get("allowed_groups") or [])
g.admin_groups = set(O.get("admin_groups") or [])
g.custom_403_message = O.get("forbidden_message") or (
    f"Your {g.login_service} account is not a member of a group allowed to use this hub "
    f"({', '.join(sorted(g.allowed_groups)) or 'none configured'}). Ask the hub's administrators for access.")
# Only names from this file: the demo's admin_users ("admin") must not make an IdP account called
# "admin" a hub admin.
c.Authenticator.admin_users = set(O.get("admin_users") or [])
c.Authenticator.allowed_users = set(O.get("allowed_users") or [])
c.Authenticator.allow_existing_users = False  # removing someone from the group takes effect at next login
# The login's tokens are kept (encrypted with this hub's key) so each server gets the user's OIDC
# access token: providers like CDSE mint S3 keys with it (eolab.data.access, EOLAB_OIDC_ACCESS_TOKEN).
# Only where each user's server runs as that user's own account: when all run as the hub's account,
# every user could read the others' process environments.
c.Authenticator.enable_auth_state = bool(ACCOUNTS)
c.CryptKeeper.keys = [bytes.fromhex(SECRETS["crypt_key"])]
_ISSUER = O.get("issuer") or ""


# Tokens are renewed with the login's refresh token before each server starts and when a server
# asks for a fresh one (GET /hub/eolab-oidc-token, with the scope below) near their end.
c.Authenticator.refresh_pre_spawn = bool(ACCOUNTS)
c.Authenticator.auth_refresh_age = 300
_TOKEN_VARS = ("EOLAB_OIDC_ACCESS_TOKEN", "EOLAB_OIDC_ISSUER", "EOLAB_OIDC_TOKEN_EXPIRES_AT")


def _oidc_token_to_server(spawner, auth_state):
    state = auth_state or {}
    env = {k: v for k, v in spawner.environment.items() if k not in _TOKEN_VARS}
    if state.get("access_token") and ACCOUNTS:  # only into this user's own server, never a log
        env["EOLAB_OIDC_ACCESS_TOKEN"] = state["access_token"]
        env["EOLAB_OIDC_ISSUER"] = _ISSUER  # it is sent only to keys services of this issuer
        if state.get("expires_at"):
            env["EOLAB_OIDC_TOKEN_EXPIRES_AT"] = str(state["expires_at"])
    spawner.environment = env


c.Spawner.auth_state_hook = _oidc_token_to_server
c.JupyterHub.custom_scopes = {TOKEN_SCOPE: {"description": "Get your current OIDC access token from the hub"}}
USER_SCOPES.append(f"{TOKEN_SCOPE}!user")  # users and their servers, each for themselves only
EXTRA_HANDLERS.append((r"/eolab-oidc-token", OIDCTokenHandler, {"issuer": _ISSUER, "enabled": bool(ACCOUNTS)}))
del O, g, groups_claim, scope
