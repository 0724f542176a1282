//! The built `berth` binary as a child process on a free loopback port, for
//! tests that kill it, restart it or set its environment.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

pub struct Process {
    pub child: Child,
    pub base: String,
}

/// `berth serve` on `port` over `dir`, logging warnings only; the caller
/// adds environment and decides where output goes.
pub fn serve_command(dir: &Path, port: u16) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
    ])
    .arg(dir)
    .env("BERTH_LOG", "warn")
    .stdout(Stdio::null());
    cmd
}

impl Process {
    /// Starts `berth serve` on `port` and waits (with a deadline) until it answers.
    pub async fn start(dir: &Path, port: u16) -> Process {
        Process::start_with(dir, port, &[]).await
    }

    pub async fn start_with(dir: &Path, port: u16, env: &[(&str, &str)]) -> Process {
        Process::start_logging(dir, port, env, Stdio::null()).await
    }

    /// As [`Process::start_with`], with the server's log going to `stderr`.
    pub async fn start_logging(
        dir: &Path,
        port: u16,
        env: &[(&str, &str)],
        stderr: Stdio,
    ) -> Process {
        // This test may be the first of its process to build an HTTP client.
        berth::install_crypto_provider();
        let metadata = crate::support::metadata_env(&crate::support::suite_metadata(dir).await);
        let child = serve_command(dir, port)
            .envs(metadata)
            .envs(env.iter().copied())
            .stderr(stderr)
            .spawn()
            .expect("spawn berth");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = client.get(format!("{base}/v2/")).send().await
                && r.status() == StatusCode::OK
            {
                break;
            }
            assert!(Instant::now() < deadline, "berth did not start");
            tokio::task::yield_now().await;
            std::thread::yield_now();
        }
        Process { child, base }
    }

    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
