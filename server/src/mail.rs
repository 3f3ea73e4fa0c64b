//! The mail the server sends: the code that proves an account's email (see
//! `engine::proof`). Through an SMTP server (`--smtp-url`), into a directory of `.eml` files
//! for a local mail agent to pick up (`--mail-dir`), or — with neither set — into the
//! server's log, which the server says at start, so a first run works on its own.

use lettre::{
    AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
};

/// Where mail goes.
#[derive(Clone, Debug, Default)]
pub struct MailConfig {
    /// `smtp://[user:password@]host[:port]` (plain, or `?tls=required` for STARTTLS) or
    /// `smtps://…` (TLS).
    pub smtp_url: Option<String>,
    /// A directory the messages are written into, one `.eml` file each.
    pub dir: Option<std::path::PathBuf>,
    /// The sender; `BackOps <no-reply@localhost>` when absent.
    pub from: Option<String>,
}

/// How long sending one message may take.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

pub enum Mailer {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
    },
    Dir {
        transport: AsyncFileTransport<Tokio1Executor>,
        from: Mailbox,
    },
    /// No mail settings: codes go to the log.
    Log,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mailer::Smtp { .. } => "Mailer::Smtp",
            Mailer::Dir { .. } => "Mailer::Dir",
            Mailer::Log => "Mailer::Log",
        })
    }
}

impl Mailer {
    pub fn new(c: &MailConfig) -> Result<Mailer, String> {
        let from: Mailbox = c
            .from
            .as_deref()
            .unwrap_or("BackOps <no-reply@localhost>")
            .parse()
            .map_err(|e| format!("the mail sender is not an address: {e}"))?;
        if let Some(url) = &c.smtp_url {
            let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                .map_err(|e| format!("the SMTP URL is not usable: {e}"))?
                .timeout(Some(SEND_TIMEOUT))
                .build();
            return Ok(Mailer::Smtp { transport, from });
        }
        if let Some(dir) = &c.dir {
            std::fs::create_dir_all(dir).map_err(|e| format!("the mail directory cannot be made: {e}"))?;
            return Ok(Mailer::Dir { transport: AsyncFileTransport::new(dir), from });
        }
        tracing::warn!(
            "no mail settings (--smtp-url or --mail-dir): codes that prove an email are written to this log instead"
        );
        Ok(Mailer::Log)
    }

    /// Sends the code that proves `code.email`.
    pub async fn send_code(&self, code: &engine::proof::EmailCode) -> Result<(), String> {
        let minutes = engine::proof::CODE_LIFETIME.num_minutes();
        let body = format!(
            "Hello {},\n\nyour BackOps code is {}.\n\nEnter it in the app to confirm that this address is yours. \
             It can be used for {minutes} minutes. Until you do, invitations, seats and roles given to this \
             address wait for you.\n\nIf you did not sign up for BackOps, ignore this message.\n",
            code.name, code.code
        );
        let message = |from: &Mailbox| -> Result<Message, String> {
            let to: Mailbox = code.email.parse().map_err(|e| format!("not an address: {e}"))?;
            Message::builder()
                .from(from.clone())
                .to(to)
                .subject(format!("{} is your BackOps code", code.code))
                .header(ContentType::TEXT_PLAIN)
                .body(body.clone())
                .map_err(|e| format!("the message cannot be made: {e}"))
        };
        match self {
            Mailer::Smtp { transport, from } => {
                transport.send(message(from)?).await.map(|_| ()).map_err(|e| format!("SMTP: {e}"))
            }
            Mailer::Dir { transport, from } => {
                transport.send(message(from)?).await.map(|_| ()).map_err(|e| format!("mail directory: {e}"))
            }
            Mailer::Log => {
                tracing::warn!(email = %code.email, code = %code.code, "no mail settings: the code that proves this email");
                Ok(())
            }
        }
    }
}
