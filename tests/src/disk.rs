//! A small disk for the full-disk tests: a tmpfs of a set size, mounted in a private mount
//! namespace (`unshare --user --map-root-user --mount`, so no privilege is needed and
//! nothing is left mounted when the test ends). A holder process keeps the namespace alive;
//! programs run on the disk through `nsenter`, and the test reaches its files through
//! `/proc/HOLDER/root`.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

pub struct SmallDisk {
    holder: Child,
    /// Where the disk is mounted, as the programs on it see it.
    pub mount: PathBuf,
    /// Keeps the mount point's directory until the disk is gone.
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts a tmpfs of `bytes` in a namespace of its own.
    pub fn mount(bytes: u64) -> SmallDisk {
        let dir = tempfile::tempdir().expect("mount point");
        let mount = dir.path().to_path_buf();
        let script =
            format!("mount -t tmpfs -o size={bytes} tmpfs '{}' && echo mounted && exec sleep 3600", mount.display());
        let mut holder = Command::new("unshare")
            .args(["--user", "--map-root-user", "--mount", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("unshare (util-linux) starts the small disk's namespace");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(holder.stdout.take().expect("stdout")), &mut line)
            .expect("the holder's word");
        assert_eq!(line.trim(), "mounted", "the small disk could not be mounted");
        SmallDisk { holder, mount, _dir: dir }
    }

    /// A command that runs `program` with the small disk mounted.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["--target", &self.holder.id().to_string(), "--user", "--mount", "--preserve-credentials", "--"]);
        c.arg(program);
        c
    }

    /// `path` on the small disk, as this process reaches it.
    pub fn outside(&self, path: &Path) -> PathBuf {
        let relative = path.strip_prefix("/").unwrap_or(path);
        PathBuf::from(format!("/proc/{}/root", self.holder.id())).join(relative)
    }

    /// Bytes free on the small disk.
    pub fn free(&self) -> u64 {
        let st = rustix::fs::statvfs(self.outside(&self.mount)).expect("statvfs of the small disk");
        st.f_bavail * st.f_frsize
    }

    /// Fills the disk with ballast until `left` bytes are free (or fewer: the file system
    /// allocates in pages). Returns the ballast's path.
    pub fn fill(&self, left: u64) -> PathBuf {
        use std::io::Write;
        let ballast = self.outside(&self.mount.join(format!("ballast-{}", uuid::Uuid::new_v4().simple())));
        let mut f = std::fs::File::create(&ballast).expect("ballast");
        let block = vec![0xA5u8; 64 * 1024];
        while self.free() > left {
            let want = (self.free() - left).min(block.len() as u64) as usize;
            if f.write_all(&block[..want.max(1)]).is_err() {
                break;
            }
            f.flush().ok();
        }
        ballast
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}
