"""Hard-coded credentials in a flow (Logic Apps workflow) definition: literal secrets in step inputs
(headers, query strings, authentication blocks, secret-named fields, high-entropy tokens) and defaults of
secure parameters.

Pure: no I/O. Each credential is reported by action path and field, with only a kind and a length. The
value is never copied into the analysis: a finding must be safe to print, log and store.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any, Literal
from urllib.parse import unquote

from remediations.core.model import Frozen

CredentialKind = Literal[
    "basic_auth_header",
    "bearer_token_header",
    "authorization_header",
    "api_key_header",
    "oauth_client_secret",
    "basic_auth_password",
    "client_certificate_password",
    "client_certificate_pfx",
    "raw_authentication",
    "query_string_secret",
    "connection_string_key",
    "secret_field",
    "secure_parameter_default",
    "jwt",
    "high_entropy_token",
]


class HardcodedCredential(Frozen):
    """A literal credential in a step's inputs (or a secure parameter's default). No value, ever."""

    path: str  # action (or parameter) path
    field: str  # dotted field inside it, e.g. inputs.headers.Authorization, inputs.authentication.password
    kind: CredentialKind
    length: int  # length of the literal part, a redacted hint


_API_KEY_HEADERS = frozenset(
    {
        "x-api-key",
        "api-key",
        "apikey",
        "x-apikey",
        "ocp-apim-subscription-key",
        "x-functions-key",
        "x-auth-token",
        "x-access-token",
        "private-token",
    }
)
_AUTH_HEADERS = frozenset({"authorization", "proxy-authorization"})
_SECRET_QUERY_NAMES = frozenset(
    {
        "sig",
        "code",
        "key",
        "apikey",
        "api_key",
        "api-key",
        "password",
        "pwd",
        "passwd",
        "client_secret",
        "access_token",
        "token",
        "subscription-key",
    }
)
_SECRET_FIELD_NAMES = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "secret",
        "clientsecret",
        "client_secret",
        "apikey",
        "api_key",
        "accesstoken",
        "access_token",
        "refresh_token",
        "sharedaccesskey",
        "accountkey",
        "subscriptionkey",
        "privatekey",
        "private_key",
    }
)
_QUERY_PAIR = re.compile(r"(?:^|[?&])([A-Za-z0-9_.\-]+)=([^&#\s]*)")
_CONN_STRING = re.compile(
    r"(?:^|;)\s*(AccountKey|Password|Pwd|SharedAccessKey|SharedAccessSignature|SharedSecretValue)\s*=\s*([^;]*)",
    re.IGNORECASE,
)
_JWT = re.compile(r"^eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}$")
_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9+/=_\-.~]+$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_PLACEHOLDER = re.compile(r"^(?:<[^>]*>|\{\{.*\}\}|\$\{.*\}|#\{.*\}#|%[A-Za-z0-9_]+%|\*+|x+|X+)$")


def is_expression(value: str) -> bool:
    """A workflow expression (`@...`, `@{...}` interpolation) or an ARM template expression (`[...]`):
    a reference to a value kept elsewhere, not a literal."""
    text = value.strip()
    if text.startswith("@@"):
        return False  # an escaped literal "@"
    return text.startswith("@") or (text.startswith("[") and text.endswith("]"))


def _literal(value: str) -> str | None:
    """The literal part of a credential value, None when it is an expression, a placeholder or empty."""
    text = value.strip()
    if not text or is_expression(text) or "@{" in text or _PLACEHOLDER.match(text):
        return None
    return text


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(c / len(text) * math.log2(c / len(text)) for c in counts.values())


def _looks_random(text: str) -> CredentialKind | None:
    if _JWT.match(text):
        return "jwt"
    # Over 256 characters it is more likely content (an embedded image, a document) than a credential.
    if not 32 <= len(text) <= 256 or not _TOKEN_CHARS.match(text) or _GUID.match(text):
        return None
    if not (re.search(r"[A-Za-z]", text) and re.search(r"[0-9]", text)):
        return None
    # Random hex carries 4 bits per character at most; random base64 about 6.
    threshold = 3.5 if re.fullmatch(r"[0-9a-fA-F]+", text) else 4.0
    return "high_entropy_token" if _entropy(text) >= threshold else None


def _walk_strings(value: Any, field: str) -> Iterator[tuple[str, str, str]]:
    """(field path, last key, string) for every string under `value`."""
    if isinstance(value, str):
        yield field, field.rsplit(".", 1)[-1], value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _walk_strings(item, f"{field}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk_strings(item, f"{field}[{index}]")


def _authentication(auth: Any, field: str) -> Iterator[tuple[str, CredentialKind, int]]:
    if not isinstance(auth, Mapping):
        return
    kind = str(auth.get("type", "")).lower()
    checks: list[tuple[str, CredentialKind]] = []
    if kind == "activedirectoryoauth":
        checks = [("secret", "oauth_client_secret"), ("password", "client_certificate_password")]
        checks.append(("pfx", "client_certificate_pfx"))
    elif kind == "basic":
        checks = [("password", "basic_auth_password")]
    elif kind == "clientcertificate":
        checks = [("password", "client_certificate_password"), ("pfx", "client_certificate_pfx")]
    elif kind == "raw":
        checks = [("value", "raw_authentication")]
    for key, credential_kind in checks:
        raw = auth.get(key)
        literal = _literal(raw) if isinstance(raw, str) else None
        if literal:
            yield f"{field}.{key}", credential_kind, len(literal)


def _parent(field: str) -> str:
    """The key holding a field: `headers` for `inputs.headers.Authorization`."""
    parts = field.split(".")
    return parts[-2].lower() if len(parts) >= 2 else ""


def _string_credential(field: str, key: str, value: str) -> tuple[CredentialKind, int] | None:
    """The credential kind of one string field, by its header/field name, then by its content."""
    lowered = key.lower()
    parent = _parent(field)
    in_headers = parent == "headers"
    if in_headers and lowered in _AUTH_HEADERS:
        literal = _literal(value)
        if literal is None:
            return None
        scheme, _, credential = literal.partition(" ")
        if credential:
            credential_literal = _literal(credential)
            if credential_literal is None:
                return None
            if scheme.lower() == "basic":
                return "basic_auth_header", len(credential_literal)
            if scheme.lower() == "bearer":
                return "bearer_token_header", len(credential_literal)
        return "authorization_header", len(literal)
    if in_headers and lowered in _API_KEY_HEADERS:
        literal = _literal(value)
        return ("api_key_header", len(literal)) if literal else None
    if parent == "queries" and lowered in _SECRET_QUERY_NAMES:
        literal = _literal(value)
        return ("query_string_secret", len(literal)) if literal else None
    if lowered.replace("-", "_") in _SECRET_FIELD_NAMES or lowered in _SECRET_FIELD_NAMES:
        literal = _literal(value)
        if literal:
            return "secret_field", len(literal)
    for match in _CONN_STRING.finditer(value):
        literal = _literal(match.group(2))
        if literal:
            return "connection_string_key", len(literal)
    if "=" in value:
        for name, raw in _QUERY_PAIR.findall(value):
            literal = _literal(unquote(raw))
            if name.lower() in _SECRET_QUERY_NAMES and literal:
                return "query_string_secret", len(literal)
    literal = _literal(value)
    if literal:
        random_kind = _looks_random(literal)
        if random_kind:
            return random_kind, len(literal)
    return None


def credentials_in(path: str, action: Mapping[str, Any]) -> Iterator[HardcodedCredential]:
    inputs = action.get("inputs")
    if not isinstance(inputs, Mapping):
        return
    seen: set[str] = set()
    for field, kind, length in _authentication(inputs.get("authentication"), "inputs.authentication"):
        seen.add(field)
        yield HardcodedCredential(path=path, field=field, kind=kind, length=length)
    for field, key, value in _walk_strings(inputs, "inputs"):
        # Key Vault step parameters hold names, and host blocks hold connector ids: not credentials.
        if field in seen or field.startswith(("inputs.host.", "inputs.serviceProviderConfiguration.")):
            continue
        found = _string_credential(field, key, value)
        if found:
            yield HardcodedCredential(path=path, field=field, kind=found[0], length=found[1])


def secure_parameter_defaults(definition: Mapping[str, Any]) -> Iterator[HardcodedCredential]:
    parameters = definition.get("parameters")
    if not isinstance(parameters, Mapping):
        return
    for name, spec in parameters.items():
        if not isinstance(spec, Mapping) or str(name).startswith("$"):
            continue
        if str(spec.get("type", "")).lower() not in {"securestring", "secureobject"}:
            continue
        for field, _, value in _walk_strings(spec.get("defaultValue"), "defaultValue"):
            literal = _literal(value)
            if literal:
                yield HardcodedCredential(
                    path=f"parameters.{name}",
                    field=field,
                    kind="secure_parameter_default",
                    length=len(literal),
                )
