//! `backops`: the BackOps sync server.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};
use server::attempts::Rate;

/// mimalloc: the server allocates many small, short-lived values (JSON, SurrealDB values);
/// glibc's allocator spent a fifth of the load generator's profile in malloc and free.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "backops", version, about = "BackOps sync server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (embedded SurrealKV under ./data unless told otherwise).
    Serve(Serve),
}

#[derive(Parser)]
struct Serve {
    /// Address to listen on.
    #[arg(long, env = "BACKOPS_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Directory for the embedded database and the server's own files.
    #[arg(long, env = "BACKOPS_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Database URL: surrealkv://PATH, mem:// or ws://HOST:PORT [default: surrealkv://DATA_DIR/db]
    #[arg(long, env = "BACKOPS_DATABASE_URL")]
    database_url: Option<String>,
    /// Root user for a SurrealDB server reached over ws://.
    #[arg(long, env = "BACKOPS_DATABASE_USER")]
    database_user: Option<String>,
    #[arg(long, env = "BACKOPS_DATABASE_PASSWORD", hide_env_values = true)]
    database_password: Option<String>,
    /// HS256 signing secret (32+ characters); generated into DATA_DIR when absent.
    #[arg(long, env = "BACKOPS_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// PEM file with an external identity provider's RSA public key (accepts its RS256 tokens;
    /// needs --jwt-issuer and --jwt-audience).
    #[arg(long, env = "BACKOPS_JWT_PUBLIC_KEY_FILE")]
    jwt_public_key_file: Option<PathBuf>,
    /// Required `iss` of external tokens.
    #[arg(long, env = "BACKOPS_JWT_ISSUER")]
    jwt_issuer: Option<String>,
    /// Required `aud` of external tokens.
    #[arg(long, env = "BACKOPS_JWT_AUDIENCE")]
    jwt_audience: Option<String>,
    /// Addresses of reverse proxies in front of this server (repeat, or comma-separated):
    /// behind one, a client's address for the sign-in limits is taken from
    /// `X-Forwarded-For`.
    #[arg(long = "trusted-proxy", env = "BACKOPS_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxies: Vec<std::net::IpAddr>,
    /// The SMTP server the codes that prove an email go through:
    /// `smtp://[user:password@]host[:port]` (`?tls=required` for STARTTLS) or `smtps://…`.
    #[arg(long, env = "BACKOPS_SMTP_URL", hide_env_values = true)]
    smtp_url: Option<String>,
    /// A directory the server writes its mail into, one `.eml` file each, for a local mail
    /// agent to pick up (instead of --smtp-url). With neither, codes go to the log.
    #[arg(long, env = "BACKOPS_MAIL_DIR")]
    mail_dir: Option<PathBuf>,
    /// The sender of the server's mail.
    #[arg(long, env = "BACKOPS_MAIL_FROM")]
    mail_from: Option<String>,
    /// Lifetime of access tokens, in seconds (devices renew them with their refresh token).
    #[arg(long, env = "BACKOPS_TOKEN_TTL_SECS", default_value_t = 15 * 60)]
    token_ttl_secs: u64,
    /// How long a sign-in lives without a renewal, in seconds (a device offline longer signs
    /// in again).
    #[arg(long, env = "BACKOPS_SIGN_IN_IDLE_SECS", default_value_t = 30 * 24 * 3600)]
    sign_in_idle_secs: u64,
    /// Sign-ins allowed from one address at once, then per minute (a crew behind one venue
    /// NAT shares an address; renewals are not counted).
    #[arg(long, env = "BACKOPS_SIGN_INS_PER_ADDRESS_BURST", default_value_t = server::attempts::AttemptLimits::default().sign_ins_per_address.burst)]
    sign_ins_per_address_burst: u32,
    #[arg(long, env = "BACKOPS_SIGN_INS_PER_ADDRESS_PER_MINUTE", default_value_t = server::attempts::AttemptLimits::default().sign_ins_per_address.per_minute)]
    sign_ins_per_address_per_minute: u32,
    /// Failed sign-ins allowed to one account at once, then per minute (password guessing).
    #[arg(long, env = "BACKOPS_FAILED_SIGN_INS_PER_ACCOUNT_BURST", default_value_t = server::attempts::AttemptLimits::default().failures_per_account.burst)]
    failed_sign_ins_per_account_burst: u32,
    #[arg(long, env = "BACKOPS_FAILED_SIGN_INS_PER_ACCOUNT_PER_MINUTE", default_value_t = server::attempts::AttemptLimits::default().failures_per_account.per_minute)]
    failed_sign_ins_per_account_per_minute: u32,
    /// Sign-ups allowed from one address at once, then per minute.
    #[arg(long, env = "BACKOPS_SIGN_UPS_PER_ADDRESS_BURST", default_value_t = server::attempts::AttemptLimits::default().sign_ups_per_address.burst)]
    sign_ups_per_address_burst: u32,
    #[arg(long, env = "BACKOPS_SIGN_UPS_PER_ADDRESS_PER_MINUTE", default_value_t = server::attempts::AttemptLimits::default().sign_ups_per_address.per_minute)]
    sign_ups_per_address_per_minute: u32,
    /// Passwords checked at once [default: the cores]; twice as many may wait per address
    /// (turns go round the addresses), 64 in all, and past that a sign-in is answered 503
    /// `busy` with `Retry-After`.
    #[arg(long, env = "BACKOPS_PASSWORD_HASHES_MAX")]
    password_hashes_max: Option<usize>,
    /// Seconds a client has to send a request's headers (also how long a kept-alive
    /// connection may wait for its next request).
    #[arg(long, env = "BACKOPS_HTTP_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    http_header_timeout_secs: u64,
    /// Seconds a client has to send a request's body, plus one per 32 KiB it declares
    /// (upload chunks have their own idle limit instead).
    #[arg(long, env = "BACKOPS_HTTP_BODY_TIMEOUT_SECS", default_value_t = 30)]
    http_body_timeout_secs: u64,
    /// Connections the node holds at most (sync sockets included); past it new ones are
    /// closed at once.
    #[arg(long, env = "BACKOPS_CONNECTIONS_MAX", default_value_t = server::listen::HttpLimits::default().connections_max)]
    connections_max: usize,
    /// Connections from one address at most (trusted proxies are not counted).
    #[arg(long, env = "BACKOPS_CONNECTIONS_PER_ADDRESS_MAX", default_value_t = server::listen::HttpLimits::default().connections_per_address_max)]
    connections_per_address_max: usize,
    /// Mutations one person may push at once, then per minute.
    #[arg(long, env = "BACKOPS_PUSH_MUTATIONS_PER_ACCOUNT_BURST", default_value_t = server::quotas::PushQuotas::default().mutations_per_account.burst)]
    push_mutations_per_account_burst: u32,
    #[arg(long, env = "BACKOPS_PUSH_MUTATIONS_PER_ACCOUNT_PER_MINUTE", default_value_t = server::quotas::PushQuotas::default().mutations_per_account.per_minute)]
    push_mutations_per_account_per_minute: u32,
    /// Bytes of mutations one person may push at once, then per minute.
    #[arg(long, env = "BACKOPS_PUSH_BYTES_PER_ACCOUNT_BURST", default_value_t = server::quotas::PushQuotas::default().bytes_per_account.burst)]
    push_bytes_per_account_burst: u32,
    #[arg(long, env = "BACKOPS_PUSH_BYTES_PER_ACCOUNT_PER_MINUTE", default_value_t = server::quotas::PushQuotas::default().bytes_per_account.per_minute)]
    push_bytes_per_account_per_minute: u32,
    /// Mutations one collaborator's people (or an event's team) may push at once, then per minute.
    #[arg(long, env = "BACKOPS_PUSH_MUTATIONS_PER_COLLABORATOR_BURST", default_value_t = server::quotas::PushQuotas::default().mutations_per_collaborator.burst)]
    push_mutations_per_collaborator_burst: u32,
    #[arg(long, env = "BACKOPS_PUSH_MUTATIONS_PER_COLLABORATOR_PER_MINUTE", default_value_t = server::quotas::PushQuotas::default().mutations_per_collaborator.per_minute)]
    push_mutations_per_collaborator_per_minute: u32,
    /// Bytes of mutations one collaborator's people may push at once, then per minute.
    #[arg(long, env = "BACKOPS_PUSH_BYTES_PER_COLLABORATOR_BURST", default_value_t = server::quotas::PushQuotas::default().bytes_per_collaborator.burst)]
    push_bytes_per_collaborator_burst: u32,
    #[arg(long, env = "BACKOPS_PUSH_BYTES_PER_COLLABORATOR_PER_MINUTE", default_value_t = server::quotas::PushQuotas::default().bytes_per_collaborator.per_minute)]
    push_bytes_per_collaborator_per_minute: u32,
    /// Largest request body, in bytes.
    #[arg(long, env = "BACKOPS_BODY_LIMIT_BYTES", default_value_t = 256 * 1024)]
    body_limit_bytes: usize,
    /// Largest credential import (CSV), in bytes.
    #[arg(long, env = "BACKOPS_IMPORT_LIMIT_BYTES", default_value_t = 16 * 1024 * 1024)]
    import_limit_bytes: usize,
    /// Hours change-log entries are kept: a device offline for less resumes with the changes
    /// it missed; an older cursor resyncs with a fresh snapshot.
    #[arg(long, env = "BACKOPS_LOG_RETENTION_HOURS", default_value_t = 72)]
    log_retention_hours: u64,
    /// The most change-log entries kept per event whatever their age (the bound on the log's
    /// storage).
    #[arg(long, env = "BACKOPS_LOG_ENTRIES_MAX", default_value_t = 10_000_000)]
    log_entries_max: i64,
    /// Largest file, in bytes.
    #[arg(long, env = "BACKOPS_FILE_LIMIT_BYTES", default_value_t = engine::files::FILE_LIMIT_DEFAULT)]
    file_limit_bytes: u64,
    /// Most bytes of files one organization may hold [default: no limit].
    #[arg(long, env = "BACKOPS_ORG_STORAGE_LIMIT_BYTES")]
    org_storage_limit_bytes: Option<u64>,
    /// Free space (MiB) kept on the file systems the server writes to: below it, writes are
    /// refused with 507 `storage_unavailable` until space is freed (0: never refused).
    #[arg(long, env = "BACKOPS_DISK_RESERVE_MIB", default_value_t = engine::disk::RESERVE_DEFAULT / (1024 * 1024))]
    disk_reserve_mib: u64,
    /// Images processed at once (thumbnails).
    #[arg(long, env = "BACKOPS_IMAGE_WORKERS", default_value_t = 2)]
    image_workers: usize,
    /// Snapshots the sync sockets read at once (more wait their turn); default: the cores.
    #[arg(long, env = "BACKOPS_SNAPSHOTS_AT_ONCE")]
    snapshots_at_once: Option<usize>,
    /// Hours after which an upload is forgotten with its partial bytes (a client coming
    /// back later starts that file over).
    #[arg(long, env = "BACKOPS_UPLOAD_EXPIRY_HOURS", default_value_t = 168)]
    upload_expiry_hours: u64,
    /// Keep file contents in this directory instead of DATA_DIR/blobs: several servers may
    /// share one (a network mount), as they may share a bucket.
    #[arg(long, env = "BACKOPS_BLOB_DIR", conflicts_with = "s3_bucket")]
    blob_dir: Option<PathBuf>,
    /// Keep file contents in this S3-compatible bucket instead of DATA_DIR/blobs.
    #[arg(long, env = "BACKOPS_S3_BUCKET")]
    s3_bucket: Option<String>,
    /// The S3-compatible service, `http(s)://host:port` [default: AWS].
    #[arg(long, env = "BACKOPS_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    #[arg(long, env = "BACKOPS_S3_REGION", default_value = "us-east-1")]
    s3_region: String,
    #[arg(long, env = "BACKOPS_S3_ACCESS_KEY_ID", hide_env_values = true)]
    s3_access_key_id: Option<String>,
    #[arg(long, env = "BACKOPS_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    s3_secret_access_key: Option<String>,
    /// Key prefix inside the bucket.
    #[arg(long, env = "BACKOPS_S3_PREFIX", default_value = "blobs")]
    s3_prefix: String,
    /// Delay between a license purchase and its activation, in milliseconds.
    #[arg(long, env = "BACKOPS_LICENSE_ACTIVATION_DELAY_MS", default_value_t = 2000)]
    license_activation_delay_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BACKOPS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,surrealdb=warn,surrealkv=warn")),
        )
        .init();
    let Command::Serve(args) = Cli::parse().command;
    let mut config = server::Config::embedded(&args.data_dir);
    if let Some(url) = args.database_url {
        config.database_url = url;
    }
    if let (Some(username), Some(password)) = (args.database_user, args.database_password) {
        config.database_auth = Some(engine::RemoteAuth { username, password });
    }
    config.jwt_secret = args.jwt_secret;
    if let Some(path) = args.jwt_public_key_file {
        config.jwt_public_key_pem = Some(
            std::fs::read_to_string(&path).with_context(|| format!("reading the JWT public key {}", path.display()))?,
        );
    }
    config.jwt_issuer = args.jwt_issuer;
    config.jwt_audience = args.jwt_audience;
    config.mail = server::mail::MailConfig { smtp_url: args.smtp_url, dir: args.mail_dir, from: args.mail_from };
    config.attempts.trusted_proxies = args.trusted_proxies;
    config.attempts.sign_ins_per_address =
        Rate { burst: args.sign_ins_per_address_burst, per_minute: args.sign_ins_per_address_per_minute };
    config.attempts.failures_per_account =
        Rate { burst: args.failed_sign_ins_per_account_burst, per_minute: args.failed_sign_ins_per_account_per_minute };
    config.attempts.sign_ups_per_address =
        Rate { burst: args.sign_ups_per_address_burst, per_minute: args.sign_ups_per_address_per_minute };
    if let Some(n) = args.password_hashes_max {
        let n = n.max(1);
        config.engine.hashing = engine::HashingLimits { running: n, waiting: n };
        config.password_gate.running = n;
        config.password_gate.waiting_per_address = 2 * n;
    }
    config.engine.sign_in_idle = Duration::from_secs(args.sign_in_idle_secs);
    config.token_ttl = Duration::from_secs(args.token_ttl_secs);
    config.quotas = server::quotas::PushQuotas {
        mutations_per_account: Rate {
            burst: args.push_mutations_per_account_burst,
            per_minute: args.push_mutations_per_account_per_minute,
        },
        bytes_per_account: Rate {
            burst: args.push_bytes_per_account_burst,
            per_minute: args.push_bytes_per_account_per_minute,
        },
        mutations_per_collaborator: Rate {
            burst: args.push_mutations_per_collaborator_burst,
            per_minute: args.push_mutations_per_collaborator_per_minute,
        },
        bytes_per_collaborator: Rate {
            burst: args.push_bytes_per_collaborator_burst,
            per_minute: args.push_bytes_per_collaborator_per_minute,
        },
    };
    config.body_limit_bytes = args.body_limit_bytes;
    config.http = server::listen::HttpLimits {
        header_timeout: Duration::from_secs(args.http_header_timeout_secs.max(1)),
        body_timeout: Duration::from_secs(args.http_body_timeout_secs.max(1)),
        connections_max: args.connections_max.max(1),
        connections_per_address_max: args.connections_per_address_max.max(1),
    };
    config.import_limit_bytes = args.import_limit_bytes;
    config.engine.license_activation_delay = Duration::from_millis(args.license_activation_delay_ms);
    config.engine.log_retention = Duration::from_secs(args.log_retention_hours.saturating_mul(3600));
    config.engine.log_entries_max = args.log_entries_max;
    config.engine.file_limit_bytes = args.file_limit_bytes;
    config.engine.org_storage_limit_bytes = args.org_storage_limit_bytes;
    config.engine.disk_reserve_bytes = args.disk_reserve_mib.saturating_mul(1024 * 1024);
    config.image_workers = args.image_workers;
    if let Some(n) = args.snapshots_at_once {
        config.snapshots_at_once = n.max(1);
    }
    config.upload_expiry = Duration::from_secs(args.upload_expiry_hours.saturating_mul(3600));
    if let Some(dir) = args.blob_dir {
        config.file_store = server::FileStore::SharedDirectory(dir);
    }
    if let Some(bucket) = args.s3_bucket {
        config.file_store = server::FileStore::S3(server::blobs::S3Config {
            endpoint: args.s3_endpoint,
            bucket,
            region: args.s3_region,
            access_key_id: args.s3_access_key_id.context("--s3-access-key-id is needed with --s3-bucket")?,
            secret_access_key: args
                .s3_secret_access_key
                .context("--s3-secret-access-key is needed with --s3-bucket")?,
            prefix: args.s3_prefix,
        });
    }

    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    server::run(listener, config, shutdown_signal()).await?;
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM (how service managers stop a process).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}
