//! The systems under load, each its own child process so that its memory is its own: the
//! release `switchboard serve` (one or more replicas) and the bare forwarder (this binary's
//! `forward` subcommand).

use std::fs::File;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// The hook's shared secret in the generated config.
pub const HOOK_SECRET: &str = "load-hook-secret-0123456789";
/// The hook's path, on switchboard and on the forwarder.
pub const HOOK_PATH: &str = "/okta/telephony";
/// How long a child may take to listen.
const READY_WITHIN: Duration = Duration::from_secs(15);

/// What the generated switchboard config needs to know.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// The Twilio emulator's base URL.
    pub twilio_url: String,
    /// Its `AccountSid`.
    pub account_sid: String,
    /// Its auth token.
    pub auth_token: String,
    /// The Twilio adapter's `timeout_ms`.
    pub timeout_ms: u64,
    /// `server.max_in_flight` (`None`: the default, 512).
    pub max_in_flight: Option<usize>,
    /// `server.max_connections` (`None`: the default, 4,096).
    pub max_connections: Option<usize>,
    /// `[state] backend = "redis"` at this URL; `None`: memory.
    pub redis_url: Option<String>,
}

/// The config `switchboard serve` reads: as the chaos harness's (guard in monitor mode, a
/// logging `phone_hash_key`, header-secret auth), one Twilio provider, one catch-all route.
#[must_use]
pub fn server_config(settings: &ServerSettings, listen: SocketAddr, admin: SocketAddr) -> String {
    let mut server = format!("listen = \"{listen}\"\nadmin_listen = \"{admin}\"\n");
    if let Some(n) = settings.max_in_flight {
        server.push_str(&format!("max_in_flight = {n}\n"));
    }
    if let Some(n) = settings.max_connections {
        server.push_str(&format!("max_connections = {n}\n"));
    }
    let state = settings
        .redis_url
        .as_ref()
        .map_or(String::new(), |url| format!("[state]\nbackend = \"redis\"\nurl = \"{url}\"\n\n"));
    format!(
        r#"[server]
{server}
[okta]
path = "{HOOK_PATH}"
deadline_ms = 2500
report = "always_success"
default_region = "US"

[okta.auth]
header = "Authorization"
secrets = ["{HOOK_SECRET}"]

[logging]
format = "text"
phone_hash_key = "load-phone-hash-key"

[guard]
mode = "monitor"

{state}[providers.twilio]
kind = "twilio"
account_sid = "{sid}"
auth_token = "{token}"
from = "{from}"
base_url = "{url}"
timeout_ms = {timeout_ms}

[[routes]]
name = "everywhere"
countries = ["*"]
providers = ["twilio"]
"#,
        sid = settings.account_sid,
        token = settings.auth_token,
        from = super::forwarder::FROM,
        url = settings.twilio_url,
        timeout_ms = settings.timeout_ms,
    )
}

/// One or more child processes serving the same hook, stopped when dropped.
pub struct Target {
    /// What the report calls it.
    pub name: String,
    /// The hook URL of each process.
    pub urls: Vec<String>,
    children: Vec<Child>,
}

impl Target {
    /// `replicas` × `switchboard serve` (the binary at `bin`), each with its own config in
    /// `dir`, logs to `dir/NAME-i.log`.
    pub fn switchboard(
        name: &str,
        bin: &Path,
        settings: &ServerSettings,
        replicas: usize,
        dir: &Path,
    ) -> anyhow::Result<Target> {
        let mut target = Target { name: name.to_owned(), urls: Vec::new(), children: Vec::new() };
        for replica in 0..replicas {
            let (listen, admin) = (free_port()?, free_port()?);
            let config = dir.join(format!("{name}-{replica}.toml"));
            File::create(&config)?.write_all(server_config(settings, listen, admin).as_bytes())?;
            let log = File::create(dir.join(format!("{name}-{replica}.log")))?;
            let child = Command::new(bin)
                .arg("serve")
                .arg("--config")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting {}", bin.display()))?;
            target.children.push(child);
            wait_listening(listen, &mut target.children[replica])
                .with_context(|| format!("{name} replica {replica}: see {}", dir.display()))?;
            target.urls.push(format!("http://{listen}{HOOK_PATH}"));
        }
        Ok(target)
    }

    /// The bare forwarder: this binary's `forward` subcommand, in front of `upstream`.
    pub fn forwarder(upstream: &super::forwarder::Upstream, dir: &Path) -> anyhow::Result<Target> {
        let listen = free_port()?;
        let exe = std::env::current_exe()?;
        let log = File::create(dir.join("forwarder.log"))?;
        let child = Command::new(exe)
            .args(["forward", "--listen", &listen.to_string(), "--upstream", &upstream.base_url])
            .args(["--account-sid", &upstream.account_sid, "--auth-token", &upstream.auth_token])
            .args(["--timeout-ms", &upstream.timeout.as_millis().to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut target = Target {
            name: "forwarder".to_owned(),
            urls: vec![format!("http://{listen}{HOOK_PATH}")],
            children: vec![child],
        };
        wait_listening(listen, &mut target.children[0])?;
        Ok(target)
    }

    /// Resident memory now, summed over the processes, in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        self.children.iter().map(|child| status_kib(child.id(), "VmRSS:")).sum()
    }

    /// Peak resident memory so far, summed over the processes, in KiB (`VmHWM`).
    pub fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        self.children.iter().map(|child| status_kib(child.id(), "VmHWM:")).sum()
    }

    /// Number of processes.
    #[must_use]
    pub fn processes(&self) -> usize {
        self.children.len()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A free loopback port (bound, read, released: another process could take it in between,
/// which on this machine nothing does).
fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn wait_listening(addr: SocketAddr, child: &mut Child) -> anyhow::Result<()> {
    let start = Instant::now();
    while start.elapsed() < READY_WITHIN {
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("exited before listening: {status}");
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    anyhow::bail!("not listening on {addr} after {READY_WITHIN:?}")
}

/// A `kB` line of `/proc/PID/status`.
fn status_kib(pid: u32, key: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .with_context(|| format!("no {key} in /proc/{pid}/status"))
}

/// Peak resident memory of this process (the load generator and the emulator), in KiB.
pub fn own_peak_rss_kib() -> anyhow::Result<u64> {
    status_kib(std::process::id(), "VmHWM:")
}

/// `target/release/switchboard` beside this binary (both built by cargo into one directory).
pub fn default_server_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("switchboard")))
        .unwrap_or_else(|| PathBuf::from("target/release/switchboard"))
}

/// The soft limit on open files of this process (children inherit it).
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_config_is_one_the_server_accepts() {
        let settings = ServerSettings {
            twilio_url: "http://127.0.0.1:9".to_owned(),
            account_sid: "AC55555555555555555555555555555555".to_owned(),
            auth_token: "token".to_owned(),
            timeout_ms: 60_000,
            max_in_flight: Some(11_000),
            max_connections: Some(11_000),
            redis_url: Some("redis://127.0.0.1:6379".to_owned()),
        };
        let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("load.toml");
        std::fs::write(&path, server_config(&settings, addr(1), addr(2))).unwrap();
        let loaded = switchboard_server::Settings::load(&path).unwrap();
        assert_eq!(loaded.listen, addr(1));
        assert_eq!(loaded.admin_listen, addr(2));
    }
}
