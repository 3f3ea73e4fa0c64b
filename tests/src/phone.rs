//! A phone in a process of its own (the `backops-test-device` binary: the mobile bridge's
//! client on a replica in a directory), driven by commands, so a test can kill it with
//! SIGKILL in the middle of a transaction and open the same replica again.

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Child, ChildStdin, Command, Stdio},
    time::Duration,
};

use tokio::sync::mpsc;

/// How long one command may take.
const COMMAND_MAX: Duration = Duration::from_secs(90);

pub struct Phone {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<String>,
}

impl Phone {
    /// Opens the replica in `dir` in a new process of `bin`.
    pub async fn start(bin: &str, dir: &Path) -> Phone {
        Phone::spawn(Command::new(bin), dir).await
    }

    /// [`Phone::start`] on a small disk (`dir` as the processes there see it).
    pub async fn start_on(bin: &str, disk: &crate::disk::SmallDisk, dir: &Path) -> Phone {
        Phone::spawn(disk.command(bin), dir).await
    }

    async fn spawn(mut command: Command, dir: &Path) -> Phone {
        let mut child = command
            .env("BACKOPS_TEST_DEVICE_DIR", dir)
            .env("BACKOPS_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the device binary ({command:?}): {e}"));
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut phone = Phone { child, stdin, lines };
        let first = phone.line().await;
        assert_eq!(first.as_deref(), Some("open"), "the replica opened");
        phone
    }

    /// The next line the phone printed; None once it is gone.
    pub async fn line(&mut self) -> Option<String> {
        tokio::time::timeout(COMMAND_MAX, self.lines.recv()).await.expect("the phone answers in time")
    }

    /// Sends a command without waiting for it.
    pub fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").expect("the phone takes commands");
        self.stdin.flush().expect("flush");
    }

    /// Runs a command: what it printed before `done`. Panics on an `error` line.
    pub async fn run(&mut self, command: &str) -> Vec<String> {
        self.send(command);
        let mut out = Vec::new();
        loop {
            let line = self.line().await.unwrap_or_else(|| panic!("the phone ended during `{command}`"));
            if line == "done" {
                return out;
            }
            assert!(!line.starts_with("error"), "`{command}`: {line}");
            out.push(line);
        }
    }

    /// Signs in with `token` (the app keeps it), connects to the server at `base` and follows
    /// `event` from what it holds.
    pub async fn go_online(&mut self, token: &str, base: &str, event: &str) {
        for c in [format!("sign_in {token}"), format!("connect {base}"), format!("subscribe {event}")] {
            self.run(&c).await;
        }
    }

    /// The task titles the phone holds of `event`.
    pub async fn titles(&mut self, event: &str) -> Vec<String> {
        let out = self.run(&format!("titles {event}")).await;
        serde_json::from_str(&out[0]).expect("a JSON list")
    }

    /// Kills it at once (SIGKILL), whatever it is doing.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        self.kill();
    }
}
