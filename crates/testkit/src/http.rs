//! Just enough HTTP/1.1 for the stand-in servers: one request off a keep-alive connection.

use std::io::BufRead;

use anyhow::Result;

pub(crate) struct Request {
    /// The request line and the header lines, without their line ends.
    pub head: Vec<String>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.iter().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    pub fn path(&self) -> String {
        self.head
            .first()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("")
            .to_owned()
    }
}

/// The next request, or `None` when the client closed the connection.
pub(crate) fn read_request(r: &mut impl BufRead) -> Result<Option<Request>> {
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if line == "\r\n" {
            break;
        }
        head.push(line.trim_end().to_owned());
    }
    let mut req = Request {
        head,
        body: Vec::new(),
    };
    let len: usize = req
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    req.body = vec![0; len];
    r.read_exact(&mut req.body)?;
    Ok(Some(req))
}
