//! A minimal keep-alive HTTP/1.1 client over hyper, for talking to the real
//! server on its port. No redirects are followed: tests look at the 302 itself.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// One response, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or_else(|| panic!("no {name} header in {self:?}"), |v| v.to_str().expect("ascii header"))
    }
}

/// A client that keeps one connection open and reconnects when it closes.
pub struct Client {
    addr: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client { addr, sender: None }
    }

    async fn sender(&mut self) -> &mut SendRequest<Full<Bytes>> {
        let stale = match &self.sender {
            Some(s) => s.is_closed(),
            None => true,
        };
        if stale {
            let stream = tokio::net::TcpStream::connect(self.addr).await.expect("connect to server");
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        let s = self.sender.as_mut().expect("sender");
        s.ready().await.expect("connection ready");
        s
    }

    pub async fn send(&mut self, method: Method, path: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Reply {
        let mut req = Request::builder().method(method).uri(path).header("host", self.addr.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body.into())).expect("request");
        let resp = self.sender().await.send_request(req).await.expect("send request");
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.expect("read body").to_bytes();
        Reply { status: parts.status, headers: parts.headers, body }
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        self.send(Method::GET, path, &[], Bytes::new()).await
    }

    pub async fn head(&mut self, path: &str) -> Reply {
        self.send(Method::HEAD, path, &[], Bytes::new()).await
    }

    /// An API call with `key` as the bearer key and `body`, if any, as JSON.
    pub async fn api(&mut self, method: Method, path: &str, key: &str, body: Option<&serde_json::Value>) -> Reply {
        let auth = format!("Bearer {key}");
        let mut headers = vec![("authorization", auth.as_str())];
        let body = match body {
            Some(b) => {
                headers.push(("content-type", "application/json"));
                Bytes::from(b.to_string())
            }
            None => Bytes::new(),
        };
        self.send(method, path, &headers, body).await
    }

    /// POST /v1/links with `key` (None: no Authorization header).
    pub async fn mint(&mut self, key: Option<&str>, body: &serde_json::Value, idempotency_key: Option<&str>) -> Reply {
        self.post_json("/v1/links", key, body, idempotency_key).await
    }

    /// POST a JSON body to `path` with `key` (None: no Authorization header) and an optional `Idempotency-Key`.
    pub async fn post_json(&mut self, path: &str, key: Option<&str>, body: &serde_json::Value, idempotency_key: Option<&str>) -> Reply {
        let auth = key.map(|k| format!("Bearer {k}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        if let Some(k) = idempotency_key {
            headers.push(("idempotency-key", k));
        }
        self.send(Method::POST, path, &headers, Bytes::from(body.to_string())).await
    }
}

/// The path part of a tracking URL (`/c/<token>`).
pub fn path_of(tracking_url: &str) -> String {
    let rest = tracking_url.split_once("://").expect("absolute url").1;
    rest[rest.find('/').expect("path")..].to_owned()
}
