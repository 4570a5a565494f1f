"""Settings from the environment. Only the infrastructure addresses (and secrets)
change between the embedded, compose and cluster rungs."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

EMBEDDED_KAFKA_BOOTSTRAP = "127.0.0.1:9092"
# retryWrites=false: on SecantusDB every retryable write prunes the server's
# retryable-write records under one lock all writes share (64 insert_one/s instead of
# 978/s once 10,000 were recorded). Safe here: the embedded server is one local process
# (no failover for a retry to ride out), the services write inside transactions (whose
# commit the driver retries whatever this option says, and run_in_transaction retries
# as a whole) or idempotently (a request id's first answer, a relay's published mark).
# Production URIs (compose, Kubernetes) keep the driver's default.
EMBEDDED_MONGODB_URI = "mongodb://127.0.0.1:27017/?directConnection=true&retryWrites=false"


class Settings(BaseSettings):
    """Everything a Chuhai process reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    kafka_bootstrap_servers: str = EMBEDDED_KAFKA_BOOTSTRAP
    mongodb_uri: str = EMBEDDED_MONGODB_URI
    # Lets tests and parallel deployments share one MongoDB without sharing data.
    mongodb_database_prefix: str = ""

    grpc_host: str = "127.0.0.1"
    booth_grpc_port: int = Field(default=50051, ge=0, le=65535)
    expo_grpc_port: int = Field(default=50052, ge=0, le=65535)
    warehouse_grpc_port: int = Field(default=50053, ge=0, le=65535)
    bureau_grpc_port: int = Field(default=50054, ge=0, le=65535)
    notify_grpc_port: int = Field(default=50055, ge=0, le=65535)
    # Where the other services are reached; defaults follow the ports above.
    booth_grpc_target: str = ""
    expo_grpc_target: str = ""
    warehouse_grpc_target: str = ""
    bureau_grpc_target: str = ""
    notify_grpc_target: str = ""

    # Expo: each buyer may submit this many intents per window (RESOURCE_EXHAUSTED beyond).
    expo_intent_rate_limit: int = Field(default=20, ge=1)
    expo_intent_rate_window_seconds: int = Field(default=3600, ge=1)
    # Expo: how often intents past their deadline are closed or expired.
    expo_expiry_sweep_seconds: float = Field(default=5.0, gt=0)

    # Bureau: its Kafka consumer group and its dashboard's address.
    bureau_consumer_group: str = "chuhai-bureau"
    bureau_web_host: str = "127.0.0.1"
    bureau_web_port: int = Field(default=8080, ge=0, le=65535)

    # Notify: its Kafka consumer group.
    notify_consumer_group: str = "chuhai-notify"
    # Notify: how often due deliveries (e-mail, webhooks) are looked for, and how a
    # failed attempt is retried: after base seconds, doubling up to max, at most
    # max_attempts attempts in all.
    notify_dispatch_poll_seconds: float = Field(default=1.0, gt=0)
    notify_retry_base_seconds: float = Field(default=10.0, gt=0)
    notify_retry_max_seconds: float = Field(default=3600.0, gt=0)
    notify_max_attempts: int = Field(default=8, ge=1)
    # A webhook failing this many attempts in a row is disabled until its reader
    # enables it again.
    notify_webhook_disable_after: int = Field(default=10, ge=1)
    notify_webhook_timeout_seconds: float = Field(default=5.0, gt=0)
    # Events older than this when notify first reads them (a new notify on an old
    # platform, a long outage) notify in the platform only, never by e-mail or webhook.
    notify_stale_after_hours: float = Field(default=72.0, gt=0)
    # The officers' daily digest: the hour it is made, in the bureau's time zone.
    notify_digest_hour: int = Field(default=8, ge=0, le=23)
    notify_bureau_time_zone: str = "Asia/Shanghai"
    # E-mail: the SMTP server (empty host: no e-mail is sent), its credentials, and how
    # the connection is secured: STARTTLS, or TLS from the start (port 465).
    smtp_host: str = ""
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    smtp_tls: bool = False
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    notify_mail_from: str = "Chuhai <notify@chuhai.localhost>"
    # The embedded rung's mail catcher (chuhai-platform run): SMTP on one port, the
    # messages it caught on a page on the other.
    dev_mail_smtp_port: int = Field(default=2525, ge=0, le=65535)
    dev_mail_web_port: int = Field(default=8025, ge=0, le=65535)

    # Prometheus text at http://<metrics_host>:<port>/metrics, one port per service
    # (0: any free port). Containers set metrics_host to 0.0.0.0.
    metrics_host: str = "127.0.0.1"
    booth_metrics_port: int = Field(default=9461, ge=0, le=65535)
    expo_metrics_port: int = Field(default=9462, ge=0, le=65535)
    warehouse_metrics_port: int = Field(default=9463, ge=0, le=65535)
    bureau_metrics_port: int = Field(default=9464, ge=0, le=65535)
    notify_metrics_port: int = Field(default=9465, ge=0, le=65535)
    # Where spans go over OTLP/gRPC, e.g. http://otel-collector:4317; empty: no tracing.
    # The SDK's other OTEL_* variables (sampler, headers) apply as documented there.
    otel_exporter_otlp_endpoint: str = ""

    # Identity: who may call. Tokens are JWTs from the identity provider ``auth_issuer``
    # for ``auth_audience``, verified against its key set (a JWKS URL, a JWKS file, or
    # both: the provider's URL and a file with the services' own public keys). The
    # embedded rung makes its own key pair and points these at it.
    auth_issuer: str = "chuhai-development"
    auth_audience: str = "chuhai"
    auth_jwks_url: str = ""
    auth_jwks_file: str = ""
    # Accepted signature algorithms (asymmetric only), comma-separated.
    auth_algorithms: str = "RS256,PS256,ES256,EdDSA"
    auth_leeway_seconds: float = Field(default=30, ge=0, le=300)
    # Where roles and the party a principal acts for are in the provider's tokens
    # (dotted paths: realm_access.roles for a Keycloak realm role, for instance).
    auth_role_claim: str = "chuhai_role"
    auth_party_claim: str = "chuhai_party"
    auth_jwks_refresh_seconds: float = Field(default=300, gt=0)
    # Services sign the tokens of their calls to other services with their own key,
    # as issuer ``auth_service_issuer`` (trusted for the service role only).
    auth_service_issuer: str = "chuhai-services"
    auth_service_key_file: str = ""
    # Empty: the key's RFC 7638 thumbprint, the id the key sets made here use.
    auth_service_key_id: str = ""
    auth_service_algorithm: str = "ES256"
    # The embedded rung's development identity provider (chuhai-platform run): its key
    # set at http://127.0.0.1:<port>/.well-known/jwks.json.
    dev_identity_port: int = Field(default=9470, ge=0, le=65535)
    # Per principal (services excepted): calls a second, and the burst allowed.
    rate_limit_per_second: float = Field(default=50, gt=0)
    rate_limit_burst: int = Field(default=200, ge=1)
    # Largest request or response message a server or channel accepts.
    grpc_max_message_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)

    # TLS (runtime/adapters/tls.py). All empty: plaintext, as on the embedded rung. Files
    # are PEM and read at startup: rotate by restarting with new files.
    # The server certificate and key: both set, every gRPC server (and the bureau's web
    # server) serves TLS only.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    # Set: servers require client certificates signed by this CA (mutual TLS).
    tls_client_ca_file: str = ""
    # What a service trusts when it calls another one; set, its channels use TLS.
    tls_ca_file: str = ""
    # The certificate a service presents when it calls another one under mutual TLS.
    tls_client_cert_file: str = ""
    tls_client_key_file: str = ""
    # The name to check the callee's certificate against when it is not the target's
    # host (a shared certificate, an address reached through a tunnel).
    tls_server_name_override: str = ""

    log_level: str = "INFO"
    # How long a stopping server lets in-flight calls finish.
    grpc_shutdown_grace_seconds: float = 5.0
    relay_batch_size: int = Field(default=500, ge=1)
    relay_idle_poll_seconds: float = Field(default=0.2, gt=0)
    # Group commit: concurrent mutating requests of one service process share one
    # MongoDB transaction, up to max_batch of them arriving within max_wait_ms while
    # another transaction runs (a request arriving at an idle service runs at once).
    group_commit_enabled: bool = True
    group_commit_max_batch: int = Field(default=32, ge=1)
    group_commit_max_wait_ms: float = Field(default=2.0, ge=0)

    def grpc_port(self, service: str) -> int:
        return int(getattr(self, f"{service}_grpc_port"))

    def metrics_port(self, service: str) -> int:
        return int(getattr(self, f"{service}_metrics_port"))

    def grpc_target(self, service: str) -> str:
        explicit = getattr(self, f"{service}_grpc_target")
        return explicit or f"{self.grpc_host}:{self.grpc_port(service)}"

    def database_name(self, service: str) -> str:
        return f"{self.mongodb_database_prefix}{service}"
