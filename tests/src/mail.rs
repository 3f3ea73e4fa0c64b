//! A real SMTP server for the tests: aiosmtpd (from PyPI, installed by `.ci/run`), started
//! on a free loopback port with its Maildir handler, so what the server sends is delivered
//! over SMTP and read back from the maildir.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

pub struct SmtpSink {
    child: Child,
    pub port: u16,
    maildir: tempfile::TempDir,
}

impl SmtpSink {
    /// Starts aiosmtpd and waits until it takes connections.
    pub async fn start() -> SmtpSink {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let maildir = tempfile::tempdir().expect("maildir");
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.path().join("box"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 -m aiosmtpd (pip install aiosmtpd)");
        let deadline = tokio::time::Instant::now() + crate::WAIT_MAX;
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "aiosmtpd did not start (is it installed?)");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        SmtpSink { child, port, maildir }
    }

    /// The server's setting that sends through it.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// A test server that mails through this SMTP server (its harness reads the codes from
    /// the maildir), its configuration adjusted by `adjust`.
    pub async fn server_with(&self, adjust: impl FnOnce(&mut server::Config)) -> crate::TestServer {
        let mut srv = crate::TestServer::start_with(|c| {
            c.mail.dir = None;
            c.mail.smtp_url = Some(self.url());
            adjust(c);
        })
        .await;
        srv.mailbox = Some(self.delivered());
        srv
    }

    /// [`SmtpSink::server_with`] as the tests configure it.
    pub async fn server(&self) -> crate::TestServer {
        self.server_with(|_| {}).await
    }

    /// Where delivered messages land (the maildir's `new`).
    pub fn delivered(&self) -> PathBuf {
        self.maildir.path().join("box").join("new")
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
