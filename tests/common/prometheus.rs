//! A real Prometheus (the Debian package) for end-to-end tests: scraping targets on 127.0.0.1
//! every second, from a temp dir, killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{ion_plan, write};

pub struct Prometheus {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (`host:port`) every second as job `demo`, and waits
    /// (at most a minute) until every target has been scraped once.
    pub fn start(targets: &[String]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let list = targets
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let config = write(
            dir.path(),
            "prometheus.yml",
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: demo\n    static_configs:\n      - targets: [{list}]\n"
            ),
        );
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the `prometheus` binary (Debian package `prometheus`)");
        let prometheus = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let want = format!("\"value\":{}.0", targets.len());
        let deadline = Instant::now() + Duration::from_mins(1);
        loop {
            let output = ion_plan()
                .args(["probe", "prometheus", &prometheus.url, "--json"])
                .args(["--query", "up=sum(up{job=\"demo\"})"])
                .run();
            if output.code == 0 && output.stdout.contains(&want) {
                return prometheus;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus did not scrape {targets:?} in time: {}",
                output.stdout
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}
