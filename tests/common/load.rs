//! A bounded redirect load for the fault tests: N keep-alive connections
//! request tracking paths round-robin until told to stop (or a deadline),
//! and every answer is counted. Unlike [`super::client::Client`] it never
//! panics on a refused or reset connection, since the fault tests cause
//! those on purpose; it reconnects and counts the failure instead.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// What the load saw.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Answers that were the expected success (302 on `/c/`, 200 on `/o/`).
    pub served: u64,
    /// Any other status, with its path.
    pub unexpected: Vec<(StatusCode, String)>,
    /// Requests that got no answer (refused, reset, closed).
    pub failed: u64,
    /// When each served answer arrived.
    pub served_at: Vec<Instant>,
}

impl LoadReport {
    fn merge(&mut self, other: LoadReport) {
        self.served += other.served;
        self.unexpected.extend(other.unexpected);
        self.failed += other.failed;
        self.served_at.extend(other.served_at);
    }

    /// Served answers that arrived in `[from, to]`.
    pub fn served_between(&self, from: Instant, to: Instant) -> u64 {
        self.served_at.iter().filter(|t| **t >= from && **t <= to).count() as u64
    }
}

/// A running load; [`Load::stop`] ends it and returns the report.
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<LoadReport>>,
}

impl Load {
    /// `connections` tasks, each walking `paths` from its own offset. Each
    /// ends by itself after `limit`, so a broken test cannot run forever.
    pub fn start(addr: SocketAddr, paths: &Arc<Vec<String>>, connections: usize, limit: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + limit;
        let tasks = (0..connections)
            .map(|i| {
                let (paths, stop) = (paths.clone(), stop.clone());
                tokio::spawn(async move { one_connection(addr, &paths, i * 7919, &stop, deadline).await })
            })
            .collect();
        Load { stop, tasks }
    }

    pub async fn stop(self) -> LoadReport {
        self.stop.store(true, Ordering::SeqCst);
        let mut report = LoadReport::default();
        for t in self.tasks {
            report.merge(t.await.expect("load task"));
        }
        report
    }
}

async fn connect(addr: SocketAddr) -> Option<SendRequest<Empty<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Some(sender)
}

async fn one_connection(addr: SocketAddr, paths: &[String], offset: usize, stop: &AtomicBool, deadline: Instant) -> LoadReport {
    let mut report = LoadReport::default();
    let mut sender: Option<SendRequest<Empty<Bytes>>> = None;
    let mut i = offset;
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        let path = &paths[i % paths.len()];
        i += 1;
        if sender.as_ref().is_none_or(SendRequest::is_closed) {
            sender = connect(addr).await;
        }
        let Some(s) = sender.as_mut() else {
            report.failed += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let req = Request::get(path.as_str()).header("host", addr.to_string()).body(Empty::new()).expect("request");
        let answer = async {
            s.ready().await.ok()?;
            let resp = s.send_request(req).await.ok()?;
            let status = resp.status();
            resp.into_body().collect().await.ok()?;
            Some(status)
        };
        match answer.await {
            None => {
                report.failed += 1;
                sender = None;
            }
            Some(status) => {
                let ok = if path.starts_with("/o/") { StatusCode::OK } else { StatusCode::FOUND };
                if status == ok {
                    report.served += 1;
                    report.served_at.push(Instant::now());
                } else {
                    report.unexpected.push((status, path.clone()));
                }
            }
        }
    }
    report
}
