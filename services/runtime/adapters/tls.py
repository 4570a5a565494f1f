"""TLS and mutual TLS from the certificate files named in the settings.

Servers: ``TLS_CERT_FILE`` and ``TLS_KEY_FILE`` turn TLS on for every gRPC server and
the bureau's web server; ``TLS_CLIENT_CA_FILE`` makes them require a client certificate
signed by that CA (mutual TLS). Clients: ``TLS_CA_FILE`` is what a service trusts when
it calls another one; ``TLS_CLIENT_CERT_FILE`` and ``TLS_CLIENT_KEY_FILE`` are the
certificate it presents under mutual TLS. With none set everything stays plaintext, as
on the embedded rung.

Files are read once, when a process starts: a rotated certificate takes effect at the
next restart.

/metrics stays plain HTTP on purpose: Prometheus scrapes it inside the cluster's network,
it carries counters only (no tokens, no business data), and it has its own
``METRICS_HOST`` to keep it off public interfaces."""

from __future__ import annotations

import ssl
from pathlib import Path

import grpc

from runtime.adapters.settings import Settings


class TlsConfigurationError(ValueError):
    """The TLS settings are incomplete or name a file that cannot be read."""


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """Credentials for a gRPC server's port; None: plaintext."""
    check_tls_settings(settings)
    if not settings.tls_cert_file:
        return None
    client_ca = _read(settings, "tls_client_ca_file") if settings.tls_client_ca_file else None
    return grpc.ssl_server_credentials(
        [(_read(settings, "tls_key_file"), _read(settings, "tls_cert_file"))],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def channel_credentials(settings: Settings) -> grpc.ChannelCredentials | None:
    """Credentials for calling another service; None: plaintext. A certificate whose name
    is not the target's host needs ``TLS_SERVER_NAME_OVERRIDE`` too (see
    grpc_client.service_channel)."""
    check_tls_settings(settings)
    if not settings.tls_ca_file:
        return None
    with_client_cert = bool(settings.tls_client_cert_file)
    return grpc.ssl_channel_credentials(
        root_certificates=_read(settings, "tls_ca_file"),
        private_key=_read(settings, "tls_client_key_file") if with_client_cert else None,
        certificate_chain=_read(settings, "tls_client_cert_file") if with_client_cert else None,
    )


def web_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """An SSL context for aiohttp's web server (web.TCPSite(ssl_context=...)); None:
    plain HTTP. Under mutual TLS it requires a client certificate from the client CA."""
    check_tls_settings(settings)
    if not settings.tls_cert_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
        if settings.tls_client_ca_file:
            context.load_verify_locations(cafile=settings.tls_client_ca_file)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as error:
        raise TlsConfigurationError(
            f"cannot load the web server's TLS files (TLS_CERT_FILE={settings.tls_cert_file}, "
            f"TLS_KEY_FILE={settings.tls_key_file}, "
            f"TLS_CLIENT_CA_FILE={settings.tls_client_ca_file or '(empty)'}): {error}"
        ) from error
    return context


def check_tls_settings(settings: Settings) -> None:
    """Refuse a half-configured TLS, which would otherwise fall back to plaintext or fail
    at the first call rather than at startup."""
    _require_pair(settings, "tls_cert_file", "tls_key_file")
    _require_pair(settings, "tls_client_cert_file", "tls_client_key_file")
    if settings.tls_client_ca_file and not settings.tls_cert_file:
        raise TlsConfigurationError(
            "TLS_CLIENT_CA_FILE (mutual TLS) needs TLS_CERT_FILE and TLS_KEY_FILE: "
            "servers cannot ask for client certificates without TLS"
        )
    if settings.tls_client_cert_file and not settings.tls_ca_file:
        raise TlsConfigurationError(
            "TLS_CLIENT_CERT_FILE and TLS_CLIENT_KEY_FILE need TLS_CA_FILE: "
            "a client certificate is only presented over TLS"
        )
    if settings.tls_server_name_override and not settings.tls_ca_file:
        raise TlsConfigurationError("TLS_SERVER_NAME_OVERRIDE needs TLS_CA_FILE (TLS to services)")


def _require_pair(settings: Settings, first: str, second: str) -> None:
    if bool(getattr(settings, first)) != bool(getattr(settings, second)):
        present, missing = (first, second) if getattr(settings, first) else (second, first)
        raise TlsConfigurationError(
            f"{first.upper()} and {second.upper()} must be set together: "
            f"{present.upper()} is set, {missing.upper()} is not"
        )


def _read(settings: Settings, field: str) -> bytes:
    path = getattr(settings, field)
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise TlsConfigurationError(f"cannot read {field.upper()}={path}: {error}") from error
