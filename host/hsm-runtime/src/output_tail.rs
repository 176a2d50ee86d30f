//! Where a plugin's stdout and stderr go: a buffer that keeps only the last bytes
//! written. A plugin may print as much as it likes within its time limit; hsm keeps
//! its last words (a panic message comes last) to explain a crash, in bounded
//! memory, however much came before them.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// The last `capacity` bytes a plugin wrote to stdout and stderr together.
#[derive(Clone)]
pub(crate) struct OutputTail {
    capacity: usize,
    buffer: Arc<Mutex<VecDeque<u8>>>,
}

impl OutputTail {
    /// An empty tail that keeps `capacity` bytes.
    pub(crate) fn new(capacity: usize) -> Self {
        Self { capacity, buffer: Arc::new(Mutex::new(VecDeque::new())) }
    }

    /// What it holds.
    pub(crate) fn contents(&self) -> Vec<u8> {
        self.buffer.lock().unwrap_or_else(|e| e.into_inner()).iter().copied().collect()
    }

    fn push(&self, bytes: &[u8]) {
        let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = &bytes[bytes.len().saturating_sub(self.capacity)..];
        let over = (buffer.len() + bytes.len()).saturating_sub(self.capacity);
        buffer.drain(..over);
        buffer.extend(bytes);
    }
}

impl IsTerminal for OutputTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for OutputTail {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for OutputTail {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always room: older bytes make way.
        Ok(64 << 10)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for OutputTail {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for OutputTail {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_bytes_written() {
        let tail = OutputTail::new(8);
        tail.push(b"0123");
        tail.push(b"4567");
        tail.push(b"89");
        assert_eq!(tail.contents(), b"23456789");
        tail.push(b"a much longer write than the tail holds");
        assert_eq!(tail.contents(), b"ail holds"[1..].to_vec());
    }
}
