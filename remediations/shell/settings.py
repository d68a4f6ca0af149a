"""App settings: the names Azure (infra/) sets and the code reads, in one place.

Values are read from the environment (Functions app settings, local.settings.json, or a shell).
`check()` reports problems by setting *name* only, so health output never leaks a value.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

SWEEP_SCHEDULE = "VAULTGUARD_SWEEP_SCHEDULE"
# The deep sweep's timer (every vault's secret list, stored for the quick sweeps); slower than the above.
DEEP_SWEEP_SCHEDULE = "VAULTGUARD_DEEP_SWEEP_SCHEDULE"
DRY_RUN = "VAULTGUARD_DRY_RUN"
MAX_ACTIONS_PER_RUN = "VAULTGUARD_MAX_ACTIONS_PER_RUN"
SUBSCRIPTION_IDS = "VAULTGUARD_SUBSCRIPTION_IDS"
# Seconds after which a ticket/alert record still `running`/`received` is a run whose worker died.
STALE_RUN_SECONDS = "VAULTGUARD_STALE_RUN_SECONDS"
POLICY_FILE = "VAULTGUARD_POLICY_FILE"
POLICY_JSON = "VAULTGUARD_POLICY_JSON"
QUEUE_NAME = "VAULTGUARD_QUEUE_NAME"
AUDIT_TABLE = "VAULTGUARD_AUDIT_TABLE"
# Table of ticket and alert runs (idempotency records); read by remediations/triggers/runs.py.
RUNS_TABLE = "VAULTGUARD_RUNS_TABLE"
# Optional: the function key the local runner (remediations/serve.py) requires; never set in Azure.
LOCAL_FUNCTION_KEY = "VAULTGUARD_LOCAL_FUNCTION_KEY"
# Optional: the master key of the local runner's admin API (`POST /admin/functions/{name}`, which runs
# a timer or queue function as the Functions host's admin API does); unset, that API is not served.
LOCAL_MASTER_KEY = "VAULTGUARD_LOCAL_MASTER_KEY"
# Tickets that may change things (dryRun false) need a caller App Service Authentication (Easy Auth)
# authenticated: 401 without one. infra sets it true with enableEntraAuth. Read by triggers/caller.py.
REQUIRE_AUTHENTICATED_CALLER = "VAULTGUARD_REQUIRE_AUTHENTICATED_CALLER"
# Comma-separated app role values (the principal's role claims); when set, such tickets also need one of
# them (403 otherwise) and an authenticated caller (401).
ALLOWED_CALLER_ROLES = "VAULTGUARD_ALLOWED_CALLER_ROLES"
# Comma-separated app role values an approver of a pinned plan (`POST .../{ticketId}/approve`) must hold
# one of (403 otherwise); unset, any authenticated caller other than the requester may approve.
APPROVER_ROLES = "VAULTGUARD_APPROVER_ROLES"
# Optional https URL (a Teams incoming webhook or any receiver): dry-run plans awaiting approval are
# posted there as an adaptive card (the diff and an approve link; never a secret value).
APPROVAL_WEBHOOK_URL = "VAULTGUARD_APPROVAL_WEBHOOK_URL"
# Set by the platform: the app's default host name, for the approve link in that card.
PLATFORM_HOSTNAME = "WEBSITE_HOSTNAME"
# Set by the platform (not by infra) when App Service Authentication is on for the app.
PLATFORM_AUTH_ENABLED = "WEBSITE_AUTH_ENABLED"
STORAGE_CONNECTION = "AzureWebJobsStorage"
STORAGE_QUEUE_URI = "AzureWebJobsStorage__queueServiceUri"
STORAGE_TABLE_URI = "AzureWebJobsStorage__tableServiceUri"

# Every app setting the code reads. infra tests cross-check this list against the Bicep.
ALL_SETTINGS: tuple[str, ...] = (
    SWEEP_SCHEDULE,
    DEEP_SWEEP_SCHEDULE,
    DRY_RUN,
    MAX_ACTIONS_PER_RUN,
    SUBSCRIPTION_IDS,
    POLICY_FILE,
    POLICY_JSON,
    QUEUE_NAME,
    AUDIT_TABLE,
    RUNS_TABLE,
    REQUIRE_AUTHENTICATED_CALLER,
    ALLOWED_CALLER_ROLES,
)

DEFAULT_QUEUE_NAME = "vaultguard-scopes"
DEFAULT_AUDIT_TABLE = "vaultguardaudit"
DEFAULT_RUNS_TABLE = "vaultguardruns"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
# Six-field NCRONTAB as the Functions timer trigger expects it.
_NCRONTAB = re.compile(r"^\s*(\S+\s+){5}\S+\s*$")
_QUEUE_NAME = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
# An Entra app role value: no spaces; printable ASCII (what the manifest allows), up to 120 characters.
_ROLE_VALUE = re.compile(r"^[\x21-\x7e]{1,120}$")
# Plans go out in clear to this URL: TLS, except to a receiver on this machine.
_WEBHOOK = re.compile(r"^(https://[^\s/]+|http://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?)(/\S*)?$")


@dataclass(frozen=True)
class AppSettings:
    dry_run: bool = True
    max_actions_per_run: int = 50
    subscription_ids: tuple[str, ...] = ()
    policy_file: str | None = None
    policy_json: str | None = None
    queue_name: str = DEFAULT_QUEUE_NAME
    audit_table: str = DEFAULT_AUDIT_TABLE
    storage_connection: str | None = None
    storage_queue_uri: str | None = None
    storage_table_uri: str | None = None
    require_authenticated_caller: bool = False
    allowed_caller_roles: tuple[str, ...] = ()
    platform_auth_enabled: bool = False
    approver_roles: tuple[str, ...] = ()
    approval_webhook_url: str | None = None
    hostname: str | None = None
    problems: tuple[str, ...] = field(default=(), compare=False)

    @property
    def callers_required(self) -> bool:
        """Whether tickets that may change things need an authenticated caller (roles imply one)."""
        return self.require_authenticated_caller or bool(self.allowed_caller_roles)

    @property
    def trusts_principal_headers(self) -> bool:
        """Whether X-MS-CLIENT-PRINCIPAL* headers prove who called. Only App Service Authentication
        strips client-sent copies; without it in front anyone can send them, so they are read only when
        the platform says it is on."""
        return self.platform_auth_enabled

    @property
    def cannot_check_callers(self) -> str | None:
        """Why tickets that apply are refused: callers are required but nothing proves who called."""
        if self.callers_required and not self.platform_auth_enabled:
            return (
                f"{REQUIRE_AUTHENTICATED_CALLER} or {ALLOWED_CALLER_ROLES} requires App Service "
                f"Authentication, which is off ({PLATFORM_AUTH_ENABLED} is not true): tickets that apply "
                "changes are refused until it is on"
            )
        return None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AppSettings:
        source = os.environ if env is None else env
        problems: list[str] = []

        def text(name: str) -> str | None:
            value = source.get(name, "").strip()
            return value or None

        def flag(name: str, *, default: bool, unreadable: bool) -> bool:
            raw = text(name)
            if raw is None:
                return default
            if raw.lower() in _TRUE:
                return True
            if raw.lower() in _FALSE:
                return False
            problems.append(f"{name} must be true or false")
            return unreadable

        # An unreadable value is the safe one: no writes.
        dry_run = flag(DRY_RUN, default=True, unreadable=True)

        cap = 50
        raw_cap = text(MAX_ACTIONS_PER_RUN)
        if raw_cap is not None:
            if raw_cap.isdigit() and int(raw_cap) > 0:
                cap = int(raw_cap)
            else:
                problems.append(f"{MAX_ACTIONS_PER_RUN} must be a positive integer")

        # A typo must not open the write endpoints: an unreadable value requires callers.
        require_caller = flag(REQUIRE_AUTHENTICATED_CALLER, default=False, unreadable=True)

        def role_list(name: str) -> tuple[str, ...]:
            values = tuple(dict.fromkeys(r.strip() for r in (text(name) or "").split(",") if r.strip()))
            if any(not _ROLE_VALUE.match(r) for r in values):
                problems.append(f"{name} holds a value that is not an app role value")
            return values

        roles = role_list(ALLOWED_CALLER_ROLES)
        approver_roles = role_list(APPROVER_ROLES)
        webhook = text(APPROVAL_WEBHOOK_URL)
        if webhook is not None and not _WEBHOOK.match(webhook):
            problems.append(f"{APPROVAL_WEBHOOK_URL} must be an https URL (http only for localhost)")
            webhook = None

        subscriptions: list[str] = []
        for raw_part in (text(SUBSCRIPTION_IDS) or "").split(","):
            part = raw_part.strip()
            if not part:
                continue
            try:
                subscriptions.append(str(uuid.UUID(part)))
            except ValueError:
                problems.append(f"{SUBSCRIPTION_IDS} holds a value that is not a subscription GUID")
        if not (text(SUBSCRIPTION_IDS) or "").strip(" ,"):
            # The scope guard admits only these subscriptions: with none, nothing is ever in scope.
            problems.append(
                f"{SUBSCRIPTION_IDS} is not set: sweeps scan nothing and every ticket, alert and event "
                "is out of scope"
            )

        for name in (SWEEP_SCHEDULE, DEEP_SWEEP_SCHEDULE):
            schedule = text(name)
            if schedule is not None and not _NCRONTAB.match(schedule):
                problems.append(f"{name} must be a six-field NCRONTAB expression")

        queue_name = text(QUEUE_NAME) or DEFAULT_QUEUE_NAME
        if not _QUEUE_NAME.match(queue_name):
            problems.append(f"{QUEUE_NAME} is not a valid Storage queue name")
        audit_table = text(AUDIT_TABLE) or DEFAULT_AUDIT_TABLE
        if not _TABLE_NAME.match(audit_table):
            problems.append(f"{AUDIT_TABLE} is not a valid Storage table name")

        storage_connection = text(STORAGE_CONNECTION)
        queue_uri = text(STORAGE_QUEUE_URI)
        table_uri = text(STORAGE_TABLE_URI)
        if storage_connection is None and (queue_uri is None or table_uri is None):
            problems.append(
                f"storage is not configured: set {STORAGE_CONNECTION} or both "
                f"{STORAGE_QUEUE_URI} and {STORAGE_TABLE_URI}"
            )

        platform_auth = (text(PLATFORM_AUTH_ENABLED) or "").lower() in _TRUE
        if (require_caller or roles) and not platform_auth:
            problems.append(
                f"{REQUIRE_AUTHENTICATED_CALLER} or {ALLOWED_CALLER_ROLES} is set but App Service "
                f"Authentication is off ({PLATFORM_AUTH_ENABLED}): tickets that apply changes are refused"
            )

        policy_file = text(POLICY_FILE)
        if policy_file is not None and not os.path.isfile(policy_file):
            problems.append(f"{POLICY_FILE} names a file that does not exist")

        return cls(
            dry_run=dry_run,
            max_actions_per_run=cap,
            subscription_ids=tuple(subscriptions),
            policy_file=policy_file,
            policy_json=text(POLICY_JSON),
            queue_name=queue_name,
            audit_table=audit_table,
            storage_connection=storage_connection,
            storage_queue_uri=queue_uri,
            storage_table_uri=table_uri,
            require_authenticated_caller=require_caller,
            allowed_caller_roles=roles,
            platform_auth_enabled=platform_auth,
            approver_roles=approver_roles,
            approval_webhook_url=webhook,
            hostname=text(PLATFORM_HOSTNAME),
            problems=tuple(problems),
        )
