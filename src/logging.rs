//! The daemon log's output: standard error, one `write` per line, except
//! while a [`Hold`] is in force on the thread: then the lines gather in a
//! buffer and go out in one `write` when it ends. The roster holds the log
//! while it logs what one turn decided (a burst of 1,000 admissions is
//! 1,000 lines: one system call, not 1,000, before the apply starts).
//!
//! Nothing is lost or reordered: the lines go out in order, when the hold
//! ends, also on a panic (the guard's drop). A line logged on another
//! thread meanwhile goes out at once, as before.

use std::cell::RefCell;
use std::io::{self, Write};

thread_local! {
    static HELD: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// The writer for `tracing_subscriber::fmt().with_writer(Stderr)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Stderr {
    type Writer = Stderr;

    fn make_writer(&'a self) -> Stderr {
        Stderr
    }
}

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let held = HELD.with(|h| match h.borrow_mut().as_mut() {
            Some(v) => {
                v.extend_from_slice(buf);
                true
            }
            None => false,
        });
        if held {
            Ok(buf.len())
        } else {
            io::stderr().write(buf)
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// Holds this thread's log lines until dropped (see the module). A hold
/// taken while one is in force does nothing: the outer one writes.
#[must_use = "the lines go out when the hold is dropped"]
pub struct Hold {
    outer: bool,
}

pub fn hold() -> Hold {
    let outer = HELD.with(|h| {
        let mut h = h.borrow_mut();
        let outer = h.is_none();
        if outer {
            *h = Some(Vec::new());
        }
        outer
    });
    Hold { outer }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if !self.outer {
            return;
        }
        let held = HELD.with(|h| h.borrow_mut().take()).unwrap_or_default();
        if !held.is_empty() {
            // Standard error has nowhere to report its own failure.
            let _ = io::stderr().write_all(&held);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_lines_wait_for_the_outer_hold_and_keep_their_order() {
        let outer = hold();
        Stderr.write_all(b"one\n").unwrap();
        {
            let _inner = hold();
            Stderr.write_all(b"two\n").unwrap();
        }
        // The inner hold ended: still held by the outer one.
        let buffered = HELD.with(|h| h.borrow().clone());
        assert_eq!(buffered.as_deref(), Some(&b"one\ntwo\n"[..]));
        drop(outer);
        assert_eq!(HELD.with(|h| h.borrow().clone()), None);
    }
}
