"""Which secrets must be rotated, and why (pure). Assume breach: once a path to a secret existed, the
secret is burnt.

Four inputs become `exposed_secret` / `secret_near_expiry` findings:
  (a) findings of the detectors the policy names as exposing (`rotation.exposingDetectors`, e.g. leaking
      flow definitions). Read with its detector's evidence model, a finding names a vault and maybe
      secret names (no names: every secret of the vault), or names a principal (a revoked person) or a
      flow, whose readable secrets the exposure graph gives. Only secrets someone can actually read are
      proposed, through the finding's flow when it is about one;
  (b) explicit ticket targets `(vault_uri, secret_name)` (`ticket_findings`);
  (c) the vault named by a Defender alert (`alert_findings`; `rotation.onAlert` decides rotate/report);
  (d) secrets whose expiry is within `rotation.nearExpiryDays` (the SecretNearExpiry case).
`rotation_followup_due` finds earlier rotations whose pending step (remove the old client secret after
the overlap, regenerate the old storage key) is due.

The tag vocabulary on secret versions lives here too; rotators and `rotate_secret` use it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from remediations.core.detect import ROTATION_HELP, Detector, DetectorBody, DetectorInfo, detect, detector
from remediations.core.evidence import (
    AccessPolicyEvidence,
    ConnectionUserEvidence,
    Evidence,
    FlowStepEvidence,
    OversizedVaultEvidence,
    RoleGrantEvidence,
    SecretEvidence,
    SecretSource,
    VaultWritersEvidence,
)
from remediations.core.graph import ExposureGraph, Path, secret_node
from remediations.core.model import Finding, SecretMeta, Severity, Snapshot, Vault
from remediations.core.policy import Policy
from remediations.core.pp_detect import flow_resource_id

# -- tags ------------------------------------------------------------------------------------------
TAG_ROTATOR = "rotator"  # random | app-credential | storage-key | manual
TAG_LENGTH = "rotationLength"  # random: value length
TAG_CHARSET = "rotationCharset"  # random: alphanumeric | urlsafe | hex | ascii
TAG_APP_OBJECT_ID = "appObjectId"  # app-credential: the application object id (Graph /applications/{id})
TAG_KEY_ID = "keyId"  # app-credential: keyId of the client secret this version holds
TAG_STORAGE_ACCOUNT = "storageAccountId"  # storage-key: ARM id of the storage account
TAG_KEY_NAME = "keyName"  # storage-key: key1 | key2, the key this version holds
TAG_OWNER = "owner"  # who is asked to act on a manual rotation
TAG_ROTATED_BY = "rotatedBy"
TAG_ROTATED_AT = "rotatedAt"
TAG_REASON = "reason"
TAG_TICKET = "ticketId"
TAG_ROTATION_ID = "rotationId"  # the action id: a re-run of the same action resumes, never rotates twice
TAG_PENDING_REMOVE = "pendingRemoveKeyId"  # app-credential follow-up: remove this client secret...
TAG_REMOVE_AFTER = "removeAfter"  # ...at or after this time (ISO 8601 UTC)
TAG_PENDING_REGENERATE = "pendingRegenerateKey"  # storage-key follow-up: regenerate this (exposed) key
TAG_COMPROMISED = "compromised"
TAG_SUPERSEDED_BY = "supersededBy"
ROTATED_BY = "vaultguard"
ROTATION_TAGS = frozenset(
    {
        TAG_ROTATED_BY,
        TAG_ROTATED_AT,
        TAG_REASON,
        TAG_TICKET,
        TAG_ROTATION_ID,
        TAG_PENDING_REMOVE,
        TAG_REMOVE_AFTER,
        TAG_PENDING_REGENERATE,
        TAG_COMPROMISED,
        TAG_SUPERSEDED_BY,
    }
)
MAX_TAGS = 15  # Key Vault's limit per secret version
MAX_TAG_VALUE = 256

EXPOSED_SECRET = "exposed_secret"  # noqa: S105 - a detector id, not a password
NEAR_EXPIRY = "secret_near_expiry"
FOLLOWUP_DUE = "rotation_followup_due"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def tag_value(text: str) -> str:
    return text if len(text) <= MAX_TAG_VALUE else text[: MAX_TAG_VALUE - 3] + "..."


def secret_resource_id(vault: Vault | str, name: str) -> str:
    """`<vault id>/secrets/<name>`; `vault` is a Vault or a vault resource id."""
    return f"{vault if isinstance(vault, str) else vault.id}/secrets/{name}"


def _secret_finding(
    rule: DetectorInfo,
    vault_id: str,
    vault_uri: str,
    name: str,
    message: str,
    source: SecretSource,
    **extra: Any,
) -> Finding:
    """A finding on one secret. Every rotation finding carries the same evidence keys (`rotate_secret`
    reads `vault_id`, `vault_uri`, `secret_name`); `extra` is what its source adds."""
    return rule.finding(
        resource_id=secret_resource_id(vault_id, name),
        principal=None,
        message=message,
        evidence=SecretEvidence(
            vault_id=vault_id, vault_uri=vault_uri, secret_name=name, source=source, **extra
        ),
    )


def _listed_secret_finding(
    rule: DetectorInfo,
    vault: Vault,
    secret: SecretMeta,
    message: str,
    source: SecretSource,
    now: datetime,
    **extra: Any,
) -> Finding:
    """A finding on a secret of the vault's list; one planned from the stored deep inventory says how
    old that list is (its evidence and message)."""
    return _secret_finding(
        rule,
        vault.id,
        vault.vault_uri,
        secret.name,
        message + vault.secrets_age_note(now),
        source,
        **vault.secrets_provenance(),
        **extra,
    )


def find_vault(snapshot: Snapshot, reference: str) -> Vault | None:
    """A vault by ARM id, name or vault URI (case-insensitive)."""
    ref = reference.strip().rstrip("/").lower()
    for vault in snapshot.vaults:
        uri = vault.vault_uri.rstrip("/").lower()
        if ref in {vault.id.lower(), vault.name.lower(), uri} or (uri and ref == uri.split("://", 1)[-1]):
            return vault
    return None


def find_secret(vault: Vault, name: str) -> SecretMeta | None:
    return next((s for s in vault.secrets if s.name.lower() == name.lower()), None)


def _readable(secret: SecretMeta) -> bool:
    # A disabled current version cannot be read through any path now; someone already acted on it.
    return secret.enabled is not False


def _revealed(finding: Finding) -> tuple[str | None, frozenset[str]]:
    """The vault (a reference `find_vault` resolves) and the secret names (lower case; none: every secret
    of the vault) an exposing finding reveals, read with the evidence model its detector registered."""
    evidence: Evidence = Evidence.of(finding)
    match evidence:
        case SecretEvidence():
            return evidence.vault_id, frozenset({evidence.secret_name.lower()})
        case FlowStepEvidence():
            named = {n.lower() for n in evidence.secret_names if n not in {"", "*"}}
            return evidence.vault, frozenset(named)
        case (
            AccessPolicyEvidence()
            | RoleGrantEvidence()
            | VaultWritersEvidence()
            | OversizedVaultEvidence()
            | ConnectionUserEvidence()
        ):
            return evidence.vault, frozenset()
    return None, frozenset()  # about a principal or a flow, not a vault


def _readers(paths: Iterable[Path]) -> list[str]:
    return sorted({p[0].source.removeprefix("principal:") for p in paths if p})


class _Exposure:
    def __init__(self) -> None:
        self.by: set[str] = set()  # exposing finding ids
        self.detectors: set[str] = set()
        self.readers: set[str] = set()


def exposed_secrets(snapshot: Snapshot, policy: Policy, exposing: Sequence[Finding]) -> list[Finding]:
    """`exposed_secret` findings for the secrets the exposing findings reveal and someone can read (the
    detector's body, also used on findings a caller already has)."""
    if not exposing:
        return []  # nothing revealed: no graph to build (a tenant-wide one, at 5,000 vaults)
    graph = ExposureGraph.build(snapshot)
    nodes: dict[str, tuple[Vault, SecretMeta]] = {
        secret_node(v.id, s.name): (v, s) for v in snapshot.vaults for s in v.secrets
    }
    # A finding about a flow names it by resource id; the graph's node is `flow:<id>`. Only a flow whose
    # connections were all read can show its paths; for another, every reader counts (assume breach).
    read = {c.id.lower() for c in snapshot.connections}
    flow_nodes = {
        flow_resource_id(f).lower(): f"flow:{f.id}"
        for f in snapshot.flows
        if all(c.lower() in read for c in f.connection_references)
    }
    found: dict[str, _Exposure] = {}

    def add(node: str, finding: Finding, readers: list[str]) -> None:
        entry = found.setdefault(node, _Exposure())
        entry.by.add(finding.id)
        entry.detectors.add(finding.detector_id)
        entry.readers.update(readers)

    for finding in exposing:
        vault_ref, wanted = _revealed(finding)
        flow_node = flow_nodes.get(finding.resource_id.lower())
        if vault_ref:
            vault = find_vault(snapshot, vault_ref)
            if vault is None:
                continue
            for secret in vault.secrets:
                if wanted and secret.name.lower() not in wanted:
                    continue
                node = secret_node(vault.id, secret.name)
                paths = graph.who_can_read(node)
                if flow_node is not None:  # the flow is inventoried: the path must run through it
                    paths = [p for p in paths if any(e.target == flow_node for e in p)]
                if paths:
                    add(node, finding, _readers(paths))
        elif finding.principal:
            for path in graph.what_can_read(finding.principal):
                add(path[-1].target, finding, [finding.principal.lower()])
        elif flow_node is not None:
            for path in graph.secrets_reachable_from(flow_node):
                target = path[-1].target
                via = [p for p in graph.who_can_read(target) if any(e.target == flow_node for e in p)]
                add(target, finding, _readers(via))

    findings: list[Finding] = []
    for node, exposure in sorted(found.items()):
        if node not in nodes:
            continue  # a per-secret role assignment to a secret the snapshot does not list
        vault, secret = nodes[node]
        if policy.excludes_vault(vault) or not _readable(secret):
            continue
        findings.append(
            _listed_secret_finding(
                exposed_secret.info,
                vault,
                secret,
                f"secret {secret.name} in vault {vault.name} was reachable through a leaking path "
                f"({', '.join(sorted(exposure.detectors))})",
                "finding",
                snapshot.taken_at,
                exposedBy=sorted(exposure.by),
                detectors=sorted(exposure.detectors),
                readers=sorted(exposure.readers),
            )
        )
    return findings


def _rotation_detector(
    detector_id: str, *, severity: Severity, title: str, per_vault: bool = False
) -> Callable[[DetectorBody], Detector]:
    """A rotation detector: its findings are each on one secret, its help the rotation tutorial."""
    return detector(
        detector_id,
        severity=severity,
        title=title,
        evidence=SecretEvidence,
        help_url=ROTATION_HELP,
        per_vault=per_vault,
    )


def _listed_secrets(snapshot: Snapshot, policy: Policy) -> Iterator[tuple[Vault, SecretMeta]]:
    """Every listed secret of the vaults the policy does not exclude."""
    for vault in snapshot.vaults:
        if not policy.excludes_vault(vault):
            yield from ((vault, secret) for secret in vault.secrets)


@_rotation_detector(
    EXPOSED_SECRET, severity="high", title="A secret was reachable through a leaking path: rotate it"
)
def exposed_secret(snapshot: Snapshot, policy: Policy, rule: DetectorInfo) -> list[Finding]:
    exposing = {d for d in policy.rotation.exposing_detectors if d != EXPOSED_SECRET}
    if not exposing:
        return []
    return exposed_secrets(snapshot, policy, detect(snapshot, policy, only=exposing))


@_rotation_detector(
    NEAR_EXPIRY,
    severity="medium",
    title="A secret expires within the rotation window (or has expired)",
    per_vault=True,  # each vault's own secrets against the snapshot's time
)
def secret_near_expiry(snapshot: Snapshot, policy: Policy, rule: DetectorInfo) -> list[Finding]:
    """Secrets whose expiry is within the window (expired ones included): rotate before they break."""
    days = policy.rotation.near_expiry_days
    if days == 0:
        return []
    horizon = snapshot.taken_at + timedelta(days=days)
    findings = []
    for vault, secret in _listed_secrets(snapshot, policy):
        if secret.expires is not None and _readable(secret) and secret.expires <= horizon:
            findings.append(
                _listed_secret_finding(
                    rule,
                    vault,
                    secret,
                    f"secret {secret.name} in vault {vault.name} expires {iso(secret.expires)}, "
                    f"within {days} days",
                    "near-expiry",
                    snapshot.taken_at,
                    expires=iso(secret.expires),
                )
            )
    return findings


def followup_due(tags: Mapping[str, str], now: datetime) -> bool:
    if tags.get(TAG_PENDING_REGENERATE):
        return True
    if tags.get(TAG_PENDING_REMOVE):
        after = parse_iso(tags.get(TAG_REMOVE_AFTER, ""))
        return after is None or after <= now  # an unreadable time is not a reason to keep a credential
    return False


@_rotation_detector(
    FOLLOWUP_DUE, severity="medium", title="A secret rotation has a pending step due", per_vault=True
)
def rotation_followup_due(snapshot: Snapshot, policy: Policy, rule: DetectorInfo) -> list[Finding]:
    findings = []
    for vault, secret in _listed_secrets(snapshot, policy):
        if followup_due(secret.tags, snapshot.taken_at):
            findings.append(
                _listed_secret_finding(
                    rule,
                    vault,
                    secret,
                    f"the last rotation of {secret.name} in vault {vault.name} has a pending step due",
                    "follow-up",
                    snapshot.taken_at,
                    pending=sorted(
                        k for k in (TAG_PENDING_REMOVE, TAG_PENDING_REGENERATE) if secret.tags.get(k)
                    ),
                )
            )
    return findings


def ticket_findings(
    snapshot: Snapshot, targets: Sequence[tuple[str, str]], reason: str, ticket_id: str | None = None
) -> list[Finding]:
    """(b) Explicit targets from a ticket: the person who filed it says these secrets leaked."""
    findings = []
    for vault_ref, name in targets:
        vault = find_vault(snapshot, vault_ref)
        findings.append(
            _secret_finding(
                exposed_secret.info,
                vault.id if vault is not None else vault_ref,
                vault.vault_uri if vault is not None else vault_ref,
                name,
                f"ticket {ticket_id or '(none)'} names secret {name}: {reason}",
                "ticket",
                ticketId=ticket_id,
                reason=reason,
            )
        )
    return findings


def alert_findings(
    snapshot: Snapshot, vault_ref: str, reason: str, alert_id: str | None = None
) -> list[Finding]:
    """(c) A Defender alert on a vault (unusual listing, get after list): every readable secret in it."""
    vault = find_vault(snapshot, vault_ref)
    if vault is None:
        return []
    return [
        _secret_finding(
            exposed_secret.info,
            vault.id,
            vault.vault_uri,
            secret.name,
            f"alert {alert_id or '(none)'} on vault {vault.name}: {reason}",
            "alert",
            alertId=alert_id,
            reason=reason,
        )
        for secret in vault.secrets
        if _readable(secret)
    ]
