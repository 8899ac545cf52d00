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
            let id = format!("req-{}", deadline_ms()?);
            w.write_all(next_answer(&id, &event)?.as_bytes())?;
        } else {
            let _ = tx.send(Seen::Answer(
                path,
                String::from_utf8_lossy(&body).into_owned(),
            ));
            w.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")?;
        }
    }
}

/// A minute from now, as the Runtime API gives an invocation's deadline (ms since the epoch).
fn deadline_ms() -> Result<u128> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    Ok(now.as_millis() + 60_000)
}

/// The answer to `/invocation/next`: `event` under request id `id`, in one write (see
/// `recorder.rs`: pieces meet Nagle and a delayed ACK).
fn next_answer(id: &str, event: &str) -> Result<String> {
    Ok(format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: {id}\r\nLambda-Runtime-Deadline-Ms: {}\r\nLambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:000000000000:function:bench\r\nLambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000\r\nContent-Length: {}\r\n\r\n{event}",
        deadline_ms()?,
        event.len()
    ))
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

/// One event's fate when served by [`serve_many`].
#[derive(Debug, Clone)]
pub struct Delivered {
    /// From the first hand-out to the last answer (retries included).
    pub took: std::time::Duration,
    /// Deliveries after the first (the function answered with an error before).
    pub retries: u32,
    /// Answered with a response (not an error) in the end.
    pub ok: bool,
    pub answer: String,
}

#[derive(Default)]
struct Book {
    queue: std::collections::VecDeque<(usize, u32)>,
    in_flight: std::collections::HashMap<String, (usize, u32)>,
    first_out: Vec<Option<Instant>>,
    results: Vec<Option<Delivered>>,
    remaining: usize,
    next_id: u64,
}

/// What [`serve_many`] hands out and hears back.
pub struct Deliveries {
    events: Vec<String>,
    retries: u32,
    book: std::sync::Mutex<Book>,
    changed: std::sync::Condvar,
}

/// Serves `events` to any number of function processes at once, as Lambda feeds concurrent
/// instances of one function: each `/next` takes the next event; an `/error` answer puts it
/// back, up to `retries` times (Lambda retries a failed asynchronous invocation twice).
pub fn serve_many(events: Vec<String>, retries: u32) -> Result<(u16, std::sync::Arc<Deliveries>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let n = events.len();
    let book = Book {
        queue: (0..n).map(|i| (i, 0)).collect(),
        first_out: vec![None; n],
        results: vec![None; n],
        remaining: n,
        ..Book::default()
    };
    let d = std::sync::Arc::new(Deliveries {
        events,
        retries,
        book: std::sync::Mutex::new(book),
        changed: std::sync::Condvar::new(),
    });
    let served = d.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let d = served.clone();
            std::thread::spawn(move || d.connection(stream));
        }
    });
    Ok((port, d))
}

impl Deliveries {
    /// Blocks until every event is answered for good, or `timeout` passes.
    pub fn wait_all(&self, timeout: std::time::Duration) -> Result<Vec<Delivered>> {
        let book = self.book.lock().expect("book");
        let (book, waited) = self
            .changed
            .wait_timeout_while(book, timeout, |b| b.remaining > 0)
            .expect("book");
        if waited.timed_out() {
            anyhow::bail!(
                "{} events still unanswered after {timeout:?}",
                book.remaining
            );
        }
        Ok(book.results.iter().flatten().cloned().collect())
    }

    fn connection(&self, stream: TcpStream) -> Result<()> {
        stream.set_nodelay(true)?;
        let mut r = BufReader::new(stream.try_clone()?);
        let mut w = stream;
        while let Some(req) = crate::http::read_request(&mut r)? {
            let path = req.path();
            if path.ends_with("/invocation/next") {
                let Some((id, event)) = self.hand_out() else {
                    // Everything is answered: hold the function until it is killed.
                    std::thread::park();
                    return Ok(());
                };
                w.write_all(next_answer(&id, event)?.as_bytes())?;
            } else {
                // /invocation/<id>/response or /invocation/<id>/error
                let mut parts = path.rsplit('/');
                let kind = parts.next().unwrap_or_default().to_owned();
                let id = parts.next().unwrap_or_default().to_owned();
                self.answered(&id, kind == "response", String::from_utf8_lossy(&req.body));
                w.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")?;
            }
        }
        Ok(())
    }

    fn hand_out(&self) -> Option<(String, &str)> {
        let mut book = self.book.lock().expect("book");
        loop {
            if let Some((i, attempt)) = book.queue.pop_front() {
                book.next_id += 1;
                let id = format!("req-{}", book.next_id);
                book.in_flight.insert(id.clone(), (i, attempt));
                book.first_out[i].get_or_insert_with(Instant::now);
                return Some((id, &self.events[i]));
            }
            if book.remaining == 0 {
                return None;
            }
            book = self.changed.wait(book).expect("book");
        }
    }

    fn answered(&self, id: &str, ok: bool, answer: std::borrow::Cow<'_, str>) {
        let mut book = self.book.lock().expect("book");
        let Some((i, attempt)) = book.in_flight.remove(id) else {
            return;
        };
        if !ok && attempt < self.retries {
            book.queue.push_back((i, attempt + 1));
        } else {
            let took = book.first_out[i].map(|t| t.elapsed()).unwrap_or_default();
            book.results[i] = Some(Delivered {
                took,
                retries: attempt,
                ok,
                answer: answer.into_owned(),
            });
            book.remaining -= 1;
        }
        self.changed.notify_all();
    }
}
