//! A counting HTTP/1.1 proxy on loopback: sits between an AWS client and the emulator and
//! records each request's operation, so benchmarks count the AWS calls a tool makes, whatever
//! the tool is written in.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

/// One request seen by the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// `ecs:RegisterTaskDefinition`, `sns:Publish`, `s3:PUT /bucket/key`…
    pub operation: String,
    /// When its answer had been passed on to the caller (benchmarks time "until X answered").
    pub answered: Option<std::time::Instant>,
}

pub struct CountingProxy {
    pub port: u16,
    pub endpoint: String,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl CountingProxy {
    pub fn start(upstream_port: u16) -> Result<CountingProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
        let log = calls.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || {
                    let _ = relay(client, upstream_port, &log);
                });
            }
        });
        Ok(CountingProxy {
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
            calls,
        })
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("calls lock").clone()
    }

    pub fn reset(&self) {
        self.calls.lock().expect("calls lock").clear();
    }
}

pub(crate) struct Message {
    pub(crate) raw: Vec<u8>,
    pub(crate) head: String,
}

/// One client's connection and the upstream one made for it: each side's reader and writer.
pub(crate) struct Pair {
    pub(crate) from_client: BufReader<TcpStream>,
    pub(crate) from_server: BufReader<TcpStream>,
    pub(crate) client: TcpStream,
    pub(crate) server: TcpStream,
}

pub(crate) fn connect(client: TcpStream, upstream_port: u16) -> Result<Pair> {
    let server = TcpStream::connect(("127.0.0.1", upstream_port))?;
    // Relayed messages go out whole: no Nagle delay added to what is measured.
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    Ok(Pair {
        from_client: BufReader::new(client.try_clone()?),
        from_server: BufReader::new(server.try_clone()?),
        client,
        server,
    })
}

fn relay(client: TcpStream, upstream_port: u16, log: &Mutex<Vec<Call>>) -> Result<()> {
    let Pair {
        mut from_client,
        mut from_server,
        mut client,
        mut server,
    } = connect(client, upstream_port)?;
    loop {
        let Some(req) = read_message(&mut from_client, false)? else {
            return Ok(());
        };
        let index = {
            let mut calls = log.lock().expect("calls lock");
            calls.push(Call {
                operation: operation_of(&req),
                answered: None,
            });
            calls.len() - 1
        };
        server.write_all(&req.raw)?;
        let head_request = req.head.starts_with("HEAD ");
        let resp = read_message(&mut from_server, head_request)?.context("upstream closed")?;
        client.write_all(&resp.raw)?;
        // A reset in between emptied the log: this call belongs to no one's count.
        if let Some(call) = log.lock().expect("calls lock").get_mut(index) {
            call.answered = Some(std::time::Instant::now());
        }
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

pub(crate) fn read_message(r: &mut impl BufRead, no_body: bool) -> Result<Option<Message>> {
    let mut raw = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Ok(None);
        }
        raw.extend_from_slice(&line);
        if line == b"\r\n" || line == b"\n" {
            break;
        }
    }
    let head = String::from_utf8_lossy(&raw).into_owned();
    let status_without_body = head.starts_with("HTTP/")
        && matches!(head.split_whitespace().nth(1), Some("204") | Some("304"));
    if no_body || status_without_body {
        return Ok(Some(Message { raw, head }));
    }
    if header(&head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size_line = Vec::new();
            r.read_until(b'\n', &mut size_line)?;
            raw.extend_from_slice(&size_line);
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&size_line)
                    .trim()
                    .split(';')
                    .next()
                    .unwrap_or("0"),
                16,
            )?;
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk)?;
            raw.extend_from_slice(&chunk);
            if size == 0 {
                break;
            }
        }
    } else if let Some(len) = header(&head, "content-length") {
        let mut body = vec![0; len.parse()?];
        r.read_exact(&mut body)?;
        raw.extend_from_slice(&body);
    } else if head.starts_with("HTTP/") {
        r.read_to_end(&mut raw)?;
    }
    Ok(Some(Message { raw, head }))
}

pub(crate) fn operation_of(m: &Message) -> String {
    let service = header(&m.head, "authorization")
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(3))
        .unwrap_or("?")
        .to_owned();
    if let Some(target) = header(&m.head, "x-amz-target") {
        return format!("{service}:{}", target.rsplit('.').next().unwrap_or(target));
    }
    let body = String::from_utf8_lossy(&m.raw[m.head.len()..]);
    if let Some(action) = body.split('&').find_map(|kv| kv.strip_prefix("Action=")) {
        return format!("{service}:{action}");
    }
    let mut first = m.head.lines().next().unwrap_or("").split_whitespace();
    let method = first.next().unwrap_or("");
    let path = first.next().unwrap_or("").split('?').next().unwrap_or("");
    format!("{service}:{method} {path}")
}

/// Whether an operation changes something (for "no mutating call" checks).
pub fn is_mutating(operation: &str) -> bool {
    let op = operation.split(':').nth(1).unwrap_or(operation);
    let read_prefixes = [
        "Describe", "List", "Get", "BatchGet", "Receive", "GET ", "HEAD ",
    ];
    !read_prefixes.iter().any(|p| op.starts_with(p))
}
