//! A small recording server for AWS APIs no emulator implements (CodePipeline's job and approval
//! API): it speaks the JSON 1.1 protocol on loopback, records each call's operation and body,
//! and answers with what the test says (`{}` by default).

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use serde_json::Value;

type Answer = dyn Fn(&str, &Value) -> (u16, String) + Send + Sync;

/// The calls seen so far, as (operation, request body).
#[derive(Clone, Default)]
pub struct Calls(Arc<Mutex<Vec<(String, Value)>>>);

impl Calls {
    pub fn all(&self) -> Vec<(String, Value)> {
        self.0.lock().expect("calls lock").clone()
    }

    pub fn of(&self, operation: &str) -> Vec<Value> {
        self.all()
            .into_iter()
            .filter(|(o, _)| o == operation)
            .map(|(_, b)| b)
            .collect()
    }
}

pub struct Recorder {
    pub endpoint: String,
    pub calls: Calls,
}

/// Starts the server on a free port. `answer(operation, body)` gives the status and JSON body.
pub fn serve(
    answer: impl Fn(&str, &Value) -> (u16, String) + Send + Sync + 'static,
) -> Result<Recorder> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let calls = Calls::default();
    let answer: Arc<Answer> = Arc::new(answer);
    let seen = calls.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (answer, seen) = (answer.clone(), seen.clone());
            std::thread::spawn(move || {
                let _ = connection(stream, &*answer, &seen);
            });
        }
    });
    Ok(Recorder {
        endpoint: format!("http://127.0.0.1:{port}"),
        calls,
    })
}

fn connection(stream: TcpStream, answer: &Answer, seen: &Calls) -> Result<()> {
    stream.set_nodelay(true)?;
    let mut r = BufReader::new(stream.try_clone()?);
    let mut w = stream;
    loop {
        let Some(req) = crate::http::read_request(&mut r)? else {
            return Ok(());
        };
        let operation = req
            .header("x-amz-target")
            .and_then(|t| t.rsplit('.').next().map(str::to_owned))
            .unwrap_or_default();
        let body = req.body;
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        seen.0
            .lock()
            .expect("calls lock")
            .push((operation.clone(), body.clone()));
        let (status, text) = answer(&operation, &body);
        // One write: `write!` straight to the socket sends each piece as its own segment, and
        // Nagle's algorithm with the client's delayed ACK then holds the last one back 40 ms.
        let response = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/x-amz-json-1.1\r\nx-amzn-requestid: rec-1\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        );
        w.write_all(response.as_bytes())?;
    }
}
