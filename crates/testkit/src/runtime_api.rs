//! A stand-in for the Lambda Runtime API, enough to start a function binary outside Lambda,
//! hand it events and collect its answers: used to measure start-up and to run the real function
//! binaries against the emulator.

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::Result;

pub enum Seen {
    /// The first request arrived (the function is ready for events).
    FirstRequest(Instant),
    /// The function answered an event: (path, body).
    Answer(String, String),
}

/// Serves `events` one per `/next` request, in order; reports what it sees on the channel.
pub fn serve(events: Vec<String>) -> Result<(u16, mpsc::Receiver<Seen>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut events = events.into_iter();
        let mut first = true;
        for stream in listener.incoming().flatten() {
            if handle(stream, &mut events, &tx, &mut first).is_err() {
                continue;
            }
        }
    });
    Ok((port, rx))
}

fn handle(
    stream: TcpStream,
    events: &mut impl Iterator<Item = String>,
    tx: &mpsc::Sender<Seen>,
    first: &mut bool,
) -> Result<()> {
    stream.set_nodelay(true)?;
    let mut r = BufReader::new(stream.try_clone()?);
    let mut w = stream;
    loop {
        let Some(req) = crate::http::read_request(&mut r)? else {
            return Ok(());
        };
        if *first {
            *first = false;
            let _ = tx.send(Seen::FirstRequest(Instant::now()));
        }
        let path = req.path();
        let body = req.body;
        if path.ends_with("/invocation/next") {
            let Some(event) = events.next() else {
                // No more events: hold the function here until the test kills it.
                std::thread::park();
                return Ok(());
            };
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis()
                + 60_000;
            // One write (see `recorder.rs`: pieces meet Nagle and a delayed ACK).
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: req-{deadline}\r\nLambda-Runtime-Deadline-Ms: {deadline}\r\nLambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:000000000000:function:bench\r\nLambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000\r\nContent-Length: {}\r\n\r\n{event}",
                event.len()
            );
            w.write_all(response.as_bytes())?;
        } else {
            let _ = tx.send(Seen::Answer(
                path,
                String::from_utf8_lossy(&body).into_owned(),
            ));
            w.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")?;
        }
    }
}

/// The environment a function binary needs to run outside Lambda against this stand-in.
pub fn lambda_env(port: u16, name: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}")),
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench".into()),
    ]
}

/// Peak resident set size of a running process, in KiB (Linux).
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
