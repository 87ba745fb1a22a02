//! `ethertap start --metrics ADDR:PORT`: Prometheus metrics at `/metrics`, in the classic
//! text exposition format (`text/plain; version=0.0.4`), which every Prometheus and
//! `promtool check metrics` reads. (The `prometheus-client` crate writes OpenMetrics, whose
//! `# EOF` promtool 2.42 rejects, so the few lines of the format are written here.)
//!
//! A scrape reads the same per-queue counters as the words, through atomics, on the metrics
//! thread: it never waits for the VM, a console client or a worker. Names and labels follow
//! node_exporter's style; docs/operations.md lists them.

use super::report::StatsReport;
use crate::ixdp::report::InterfaceReport;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

/// What the metrics thread reads at each scrape.
pub trait MetricsSource: Send + Sync {
    /// The engine's interfaces and queues now.
    fn stats(&self) -> StatsReport;
}

/// Why the metrics endpoint did not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address cannot be bound.
    #[error("--metrics {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the system said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The thread cannot start.
    #[error("metrics thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// The content type of the classic text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A label value with `\`, `"` and newlines escaped as the format wants.
fn label(value: &str) -> String {
    let mut s = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// One metric family: its `# HELP` and `# TYPE` lines and one sample per label set.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// One figure of an interface's report.
type IfFigure = fn(&InterfaceReport) -> u64;

/// The exposition text of a report.
pub fn encode(report: &StatsReport) -> String {
    let mut out = String::new();
    let per_if = |f: IfFigure| -> Vec<(String, u64)> {
        report
            .interfaces
            .iter()
            .map(|i| (format!("interface=\"{}\"", label(&i.id.name)), f(i)))
            .collect()
    };
    let counters: [(&str, &str, IfFigure); 8] = [
        (
            "ethertap_receive_packets_total",
            "Frames received on the interface (if.stats rx).",
            |i| i.rx,
        ),
        (
            "ethertap_transmit_packets_total",
            "Frames transmitted on the interface (if.stats tx).",
            |i| i.tx,
        ),
        (
            "ethertap_receive_bytes_total",
            "Bytes of the frames received on the interface, without FCS.",
            |i| i.rx_bytes,
        ),
        (
            "ethertap_transmit_bytes_total",
            "Bytes of the frames transmitted on the interface, without FCS.",
            |i| i.tx_bytes,
        ),
        (
            "ethertap_errors_total",
            "Frames received on the interface and lost to ring errors (if.stats err).",
            |i| i.err,
        ),
        (
            "ethertap_fault_dropped_total",
            "Frames received on the interface that fault injection dropped.",
            |i| i.fault.dropped,
        ),
        (
            "ethertap_fault_flipped_total",
            "Frames received on the interface that fault injection changed by one bit.",
            |i| i.fault.flipped,
        ),
        (
            "ethertap_fault_duplicated_total",
            "Frames received on the interface that fault injection sent twice.",
            |i| i.fault.duplicated,
        ),
    ];
    for (name, help, f) in counters {
        family(&mut out, name, "counter", help, &per_if(f));
    }
    let mut drops = Vec::new();
    for i in &report.interfaces {
        let name = label(&i.id.name);
        for (reason, n) in [
            ("machash", i.machash_dropped()),
            ("fault", i.fault.dropped),
            ("tx_ring", i.err),
            ("no_interface", i.noif),
        ] {
            drops.push((format!("interface=\"{name}\",reason=\"{reason}\""), n));
        }
    }
    family(
        &mut out,
        "ethertap_drop_total",
        "counter",
        "Frames received on the interface and not forwarded, by reason: drop machash, fault injection, refused by the output TX ring, no output interface.",
        &drops,
    );
    let per_queue = |f: &dyn Fn(&super::report::QueueReport) -> u64| -> Vec<(String, u64)> {
        report
            .queues
            .iter()
            .map(|q| (format!("queue=\"{}\"", label(&q.name)), f(q)))
            .collect()
    };
    family(
        &mut out,
        "ethertap_tap_queue_inserted_total",
        "counter",
        "Tapped frames put into the packet queue.",
        &per_queue(&|q| q.inserted),
    );
    family(
        &mut out,
        "ethertap_tap_queue_full_total",
        "counter",
        "Tapped frames refused because the packet queue was full.",
        &per_queue(&|q| q.full),
    );
    family(
        &mut out,
        "ethertap_tap_queue_retrieved_total",
        "counter",
        "Frames taken out of the packet queue by any consumer.",
        &per_queue(&|q| q.retrieved),
    );
    family(
        &mut out,
        "ethertap_tap_queue_depth",
        "gauge",
        "Frames waiting in the packet queue.",
        &per_queue(&|q| q.depth),
    );
    family(
        &mut out,
        "ethertap_up",
        "gauge",
        "1 while the engine runs and answers.",
        &[(String::new(), 1)],
    );
    family(
        &mut out,
        "ethertap_build_info",
        "gauge",
        "The running ethertap version, as a label; always 1.",
        &[(format!("version=\"{}\"", env!("CARGO_PKG_VERSION")), 1)],
    );
    out
}

/// The metrics endpoint; stops on drop.
pub struct MetricsServer {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl MetricsServer {
    /// Binds `addr` and serves `/metrics` from `source` on a thread of its own.
    pub fn start(
        addr: SocketAddr,
        source: Arc<dyn MetricsSource>,
    ) -> Result<MetricsServer, MetricsError> {
        let server = Arc::new(
            tiny_http::Server::http(addr).map_err(|source| MetricsError::Bind { addr, source })?,
        );
        let bound = server.server_addr().to_ip().unwrap_or(addr);
        let thread = {
            let server = server.clone();
            std::thread::Builder::new()
                .name("metrics".into())
                .spawn(move || serve(&server, &*source))
                .map_err(MetricsError::Thread)?
        };
        Ok(MetricsServer {
            server,
            thread: Some(thread),
            addr: bound,
        })
    }

    /// The address it listens on (the port the system chose for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(server: &tiny_http::Server, source: &dyn MetricsSource) {
    for request in server.incoming_requests() {
        let path = request.url().split('?').next().unwrap_or("");
        let response = match (request.method(), path) {
            (tiny_http::Method::Get, "/metrics") => {
                let body = encode(&source.stats());
                tiny_http::Response::from_string(body).with_header(header(CONTENT_TYPE))
            }
            (tiny_http::Method::Get, "/") => {
                tiny_http::Response::from_string("ethertap metrics: GET /metrics\n")
                    .with_header(header("text/plain; charset=utf-8"))
            }
            (tiny_http::Method::Get, _) => {
                tiny_http::Response::from_string("not found: the metrics are at /metrics\n")
                    .with_status_code(404)
            }
            _ => tiny_http::Response::from_string("only GET is served\n").with_status_code(405),
        };
        // A scraper that went away is not our problem.
        let _ = request.respond(response);
    }
}

fn header(content_type: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(&b"Content-Type"[..], content_type.as_bytes())
        .expect("a constant, valid header")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::report::QueueReport;
    use crate::ixdp::report::{FaultReport, InterfaceId, InterfaceReport};

    fn report() -> StatsReport {
        StatsReport {
            interfaces: vec![InterfaceReport {
                id: InterfaceId {
                    name: "we\"ird\\0".into(),
                    ..InterfaceId::default()
                },
                rx: 10,
                tx: 9,
                drop: 3,
                noif: 1,
                err: 2,
                rx_bytes: 600,
                tx_bytes: 540,
                fault: FaultReport {
                    dropped: 1,
                    ..FaultReport::default()
                },
                ..InterfaceReport::default()
            }],
            queues: vec![QueueReport {
                name: "q".into(),
                inserted: 5,
                depth: 2,
                ..QueueReport::default()
            }],
        }
    }

    #[test]
    fn samples_carry_escaped_labels_and_the_counters() {
        let text = encode(&report());
        for line in [
            "# TYPE ethertap_receive_packets_total counter",
            "ethertap_receive_packets_total{interface=\"we\\\"ird\\\\0\"} 10",
            "ethertap_transmit_bytes_total{interface=\"we\\\"ird\\\\0\"} 540",
            "ethertap_drop_total{interface=\"we\\\"ird\\\\0\",reason=\"machash\"} 2",
            "ethertap_drop_total{interface=\"we\\\"ird\\\\0\",reason=\"fault\"} 1",
            "ethertap_drop_total{interface=\"we\\\"ird\\\\0\",reason=\"no_interface\"} 1",
            "ethertap_tap_queue_inserted_total{queue=\"q\"} 5",
            "# TYPE ethertap_tap_queue_depth gauge",
            "ethertap_tap_queue_depth{queue=\"q\"} 2",
            "ethertap_up 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert!(!text.contains("# EOF"), "classic format, not OpenMetrics");
        assert!(text.ends_with('\n'));
    }
}
