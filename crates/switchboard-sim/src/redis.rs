//! A real `redis-server` (Debian's package) for one test or benchmark: its own process on a free
//! loopback port, with no persistence, so each test can inject its own faults: [`pause`] and
//! [`resume`] (SIGSTOP/SIGCONT: "Redis hangs", connections stay open and nothing answers),
//! [`kill`] and [`restart`] ("Redis down", then back empty on the same port).
//!
//! `scripts/setup.sh` installs `redis-server` when it is missing; nothing here uses a Redis the
//! machine happens to run.
//!
//! [`pause`]: RedisServer::pause
//! [`resume`]: RedisServer::resume
//! [`kill`]: RedisServer::kill
//! [`restart`]: RedisServer::restart

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One `redis-server` process.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    password: Option<String>,
    /// Serving TLS only (`--port 0 --tls-port`), with this certificate and key in `dir`.
    is_tls: bool,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it answers `PING`.
    ///
    /// # Panics
    /// When `redis-server` is not installed (run `scripts/setup.sh`) or does not start.
    #[must_use]
    pub fn start() -> RedisServer {
        RedisServer::start_with(None)
    }

    /// Like [`RedisServer::start`], requiring `AUTH` with `password`.
    #[must_use]
    pub fn with_password(password: &str) -> RedisServer {
        RedisServer::start_with(Some(password.to_owned()))
    }

    /// Serves TLS only, with `cert_pem` (the server's chain) and `key_pem`; the URL is
    /// `rediss://127.0.0.1:PORT`, so the client must trust the chain's root.
    #[must_use]
    pub fn with_tls(cert_pem: &str, key_pem: &str) -> RedisServer {
        let dir = tempfile::tempdir().expect("a temporary directory for redis-server");
        std::fs::write(dir.path().join("cert.pem"), cert_pem).expect("write the certificate");
        std::fs::write(dir.path().join("key.pem"), key_pem).expect("write the key");
        RedisServer::start_in(dir, None, true)
    }

    fn start_with(password: Option<String>) -> RedisServer {
        let dir = tempfile::tempdir().expect("a temporary directory for redis-server");
        RedisServer::start_in(dir, password, false)
    }

    fn start_in(dir: tempfile::TempDir, password: Option<String>, is_tls: bool) -> RedisServer {
        let mut server = RedisServer { child: None, port: 0, password, is_tls, dir };
        // A port that was free a moment ago can be taken before redis binds it: try a few.
        for _ in 0..5 {
            server.port = free_port();
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server did not start on a free loopback port in five tries");
    }

    /// `redis://127.0.0.1:PORT` (with the password when there is one).
    #[must_use]
    pub fn url(&self) -> String {
        let scheme = if self.is_tls { "rediss" } else { "redis" };
        match &self.password {
            Some(password) => format!("{scheme}://:{password}@127.0.0.1:{}", self.port),
            None => format!("{scheme}://127.0.0.1:{}", self.port),
        }
    }

    /// The port it listens on.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id, while it runs (to signal it from another task).
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGSTOP: the process stops answering; its connections stay open.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT: it answers again, including what was sent while it was paused.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// SIGKILL, and waits for the process to end: connections are reset, the data is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again, empty, on the same port.
    ///
    /// # Panics
    /// When it does not come back.
    pub fn restart(&mut self) {
        self.kill();
        assert!(self.spawn(), "redis-server did not restart on port {}", self.port);
    }

    /// Sends one command in RESP and returns the raw reply's first line: for a test to look at
    /// what a server wrote (`KEYS *`, `DBSIZE`) without a client of its own.
    ///
    /// # Panics
    /// When the server does not answer, or serves TLS only.
    #[must_use]
    pub fn command(&self, args: &[&str]) -> String {
        assert!(!self.is_tls, "command() speaks plain RESP; this server serves TLS only");
        let mut stream = self.connect().expect("redis-server answers");
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).expect("write to redis-server");
        read_reply(&mut stream)
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .arg(signal)
                .arg(child.id().to_string())
                .status()
                .expect("kill(1) runs");
            assert!(status.success(), "kill {signal} {}", child.id());
        }
    }

    /// Spawns the process and waits up to 10 s for `PING`; false if it exited (port taken).
    fn spawn(&mut self) -> bool {
        let program = which_redis_server();
        let mut command = Command::new(&program);
        if self.is_tls {
            let path = |name: &str| self.dir.path().join(name);
            command
                .args(["--port", "0", "--tls-port", &self.port.to_string()])
                .arg("--tls-cert-file")
                .arg(path("cert.pem"))
                .arg("--tls-key-file")
                .arg(path("key.pem"))
                .args(["--tls-auth-clients", "no"]);
        } else {
            command.args(["--port", &self.port.to_string()]);
        }
        command
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .args(["--loglevel", "warning"])
            .args(["--databases", "1"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run {}: {error}", program.display()));
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            if self.ping() {
                self.child = Some(child);
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    fn ping(&self) -> bool {
        if self.is_tls {
            // No TLS client here: listening is ready enough (redis binds after loading).
            return TcpStream::connect(("127.0.0.1", self.port)).is_ok();
        }
        let Ok(mut stream) = self.connect() else { return false };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        stream.write_all(b"PING\r\n").is_ok() && read_reply(&mut stream).starts_with("+PONG")
    }

    fn connect(&self) -> std::io::Result<TcpStream> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        if let Some(password) = &self.password {
            let auth = format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{password}\r\n", password.len());
            stream.write_all(auth.as_bytes())?;
            let _ = read_reply(&mut stream);
        }
        Ok(stream)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A paused process must be woken to die promptly and leave no stopped zombie.
            let _ = Command::new("kill").arg("-CONT").arg(child.id().to_string()).status();
        }
        self.kill();
    }
}

/// Reads one reply's bytes as they come (enough for `+OK`, `:3`, a bulk string or an array).
fn read_reply(stream: &mut TcpStream) -> String {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut text = String::new();
    // One read gets a small reply whole on loopback; a large one is enough for a test to look.
    if let Ok(n) = stream.read(&mut buffer) {
        text.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    text
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}

fn which_redis_server() -> std::path::PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    for dir in candidates
        .iter()
        .map(std::path::PathBuf::as_path)
        .chain([std::path::Path::new("/usr/bin"), std::path::Path::new("/usr/local/bin")])
    {
        let program = dir.join("redis-server");
        if program.is_file() {
            return program;
        }
    }
    panic!(
        "redis-server is not installed: run scripts/setup.sh (it installs Debian's redis-server), \
         or install it and put it on PATH"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_pauses_and_restarts_empty() {
        let mut redis = RedisServer::start();
        assert!(redis.command(&["SET", "k", "v"]).starts_with("+OK"));
        assert!(redis.command(&["GET", "k"]).contains('v'));
        redis.pause();
        let mut stream = TcpStream::connect(("127.0.0.1", redis.port())).unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        stream.write_all(b"PING\r\n").unwrap();
        let mut byte = [0u8; 1];
        assert!(stream.read(&mut byte).is_err(), "a paused server does not answer");
        redis.resume();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "and answers once resumed");
        redis.restart();
        assert!(redis.command(&["EXISTS", "k"]).starts_with(":0"), "restarted empty");
        let secured = RedisServer::with_password("pa55word");
        assert!(secured.command(&["PING"]).starts_with("+PONG"));
        assert!(secured.url().contains(":pa55word@"));
    }
}
