//! Server-sent events written in batches: the events of a stream that are ready together go
//! out as one body frame — one write, one wake-up of the client — instead of a write each.
//!
//! The first event goes out at once (with the response head). After that, when the source has
//! nothing more right now, the body yields to the scheduler before writing what it holds, so
//! that the upstream connection's task runs and hands over what it has already read (a
//! provider that sends several chunks in one packet); the batch is written once
//! [`IDLE_YIELDS`] yields in a row bring nothing. A lone event so waits a few trips through
//! the scheduler (microseconds), never a timer, and a burst costs one write.

use std::task::{Context, Poll};

use bytes::Bytes;

/// Yields in a row that bring no event before a batch is written. One is not enough: the
/// upstream connection's task does not always run before the yielding one is polled again.
const IDLE_YIELDS: u8 = 2;
/// A batch is written once it holds this much, whatever else is ready.
const BATCH_MAX: usize = 64 * 1024;

/// The batching state of one stream's body.
#[derive(Debug, Default)]
pub struct Batch {
    buf: Vec<u8>,
    /// An event was sent: later ones are batched.
    started: bool,
    /// Yields in a row that brought nothing.
    idle_yields: u8,
}

impl Batch {
    /// The next frame of events from `next` (which gives one event per call), `None` after the
    /// last.
    pub fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        mut next: impl FnMut(&mut Context<'_>) -> Poll<Option<Bytes>>,
    ) -> Poll<Option<Bytes>> {
        let mut got = false;
        loop {
            match next(cx) {
                Poll::Ready(Some(event)) if !self.started => {
                    self.started = true;
                    return Poll::Ready(Some(event));
                }
                Poll::Ready(Some(event)) => {
                    self.buf.extend_from_slice(&event);
                    got = true;
                    if self.buf.len() >= BATCH_MAX {
                        return Poll::Ready(Some(self.take()));
                    }
                }
                Poll::Ready(None) if self.buf.is_empty() => return Poll::Ready(None),
                Poll::Ready(None) => return Poll::Ready(Some(self.take())),
                Poll::Pending if self.buf.is_empty() => return Poll::Pending,
                Poll::Pending => {
                    if got {
                        self.idle_yields = 0;
                    } else {
                        self.idle_yields += 1;
                    }
                    if self.idle_yields >= IDLE_YIELDS {
                        return Poll::Ready(Some(self.take()));
                    }
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            }
        }
    }

    fn take(&mut self) -> Bytes {
        self.idle_yields = 0;
        Bytes::from(std::mem::take(&mut self.buf))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::task::Waker;

    use super::*;

    /// What `next` gives on each call: an event, nothing yet, or the end.
    enum Step {
        Event(&'static str),
        Wait,
        End,
    }

    /// Poll a batch over `steps` until it ends: the frames it gave, and each poll's outcome
    /// (`F` a frame, `P` pending).
    fn run(steps: Vec<Step>) -> (Vec<String>, String) {
        let mut steps: VecDeque<Step> = steps.into();
        let mut batch = Batch::default();
        let mut cx = Context::from_waker(Waker::noop());
        let (mut frames, mut polls) = (Vec::new(), String::new());
        loop {
            let next = |_: &mut Context<'_>| match steps.pop_front() {
                Some(Step::Event(e)) => Poll::Ready(Some(Bytes::from_static(e.as_bytes()))),
                Some(Step::Wait) => Poll::Pending,
                Some(Step::End) | None => Poll::Ready(None),
            };
            match batch.poll_next(&mut cx, next) {
                Poll::Ready(Some(frame)) => {
                    polls.push('F');
                    frames.push(String::from_utf8(frame.to_vec()).expect("utf-8"));
                }
                Poll::Ready(None) => return (frames, polls),
                Poll::Pending => polls.push('P'),
            }
        }
    }

    #[test]
    fn the_first_event_goes_at_once_and_a_burst_after_it_in_one_frame() {
        use Step::*;
        let (frames, _) = run(vec![
            Event("a"),
            Event("b"),
            Wait,
            Event("c"),
            Wait,
            Event("d"),
            End,
        ]);
        assert_eq!(frames, ["a", "bcd"]);
    }

    #[test]
    fn a_lone_event_is_written_after_two_idle_yields() {
        use Step::*;
        let (frames, polls) = run(vec![
            Event("a"),
            Wait,
            Event("b"),
            Wait,
            Wait,
            Wait,
            Wait,
            Event("c"),
            Wait,
            Wait,
            Wait,
            End,
        ]);
        assert_eq!(frames, ["a", "b", "c"]);
        // a at once; pending; b then a yield, an idle yield, written at the second idle
        // poll; pending until c, the same for c.
        assert_eq!(polls, "FPPPFPPPF");
    }

    #[test]
    fn a_large_burst_is_cut_at_the_batch_limit() {
        let big: &'static str = Box::leak("x".repeat(BATCH_MAX / 2 + 1).into_boxed_str());
        let (frames, _) = run(vec![
            Step::Event("first"),
            Step::Event(big),
            Step::Event(big),
            Step::Event(big),
            Step::End,
        ]);
        let sizes: Vec<usize> = frames.iter().map(String::len).collect();
        assert_eq!(sizes, [5, 2 * big.len(), big.len()]);
    }

    #[test]
    fn nothing_at_all_is_no_frame() {
        assert_eq!(run(vec![Step::Wait, Step::End]).0, Vec::<String>::new());
    }
}
