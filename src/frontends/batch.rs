//! Server-sent events written in batches: the events of a stream that are ready together go
//! out in one write — one wake-up of the client — instead of a write each.
//!
//! The first event goes out at once (with the response head). After that, when the source has
//! nothing more right now, the body yields to the scheduler before writing what it holds, so
//! that the upstream connection's task runs and hands over what it has already read (a
//! provider that sends several chunks in one packet); the batch is written once
//! [`IDLE_YIELDS`] yields in a row bring nothing. A lone event so waits a few trips through
//! the scheduler (microseconds), never a timer, and a burst costs one write.
//!
//! A batch goes out as one body frame ([`Batch::poll_joined`]: SSE clients read lines, not
//! chunks), or as one frame per event given in a row ([`Batch::poll_each`]: the Parea SDK
//! parses each HTTP chunk as one event), which hyper writes together, one chunk each.

use std::collections::VecDeque;
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
    held: VecDeque<Bytes>,
    /// Bytes in `held`.
    held_bytes: usize,
    /// An event was sent: later ones are batched.
    started: bool,
    /// Yields in a row that brought nothing.
    idle_yields: u8,
    /// `held` is being given out, one frame per event ([`Batch::poll_each`]).
    releasing: bool,
    /// The source ended.
    ended: bool,
}

/// What gathering came to.
enum Gathered {
    /// The stream's first event, to send at once.
    First(Bytes),
    /// `held` is a batch to write.
    Batch,
    /// Nothing held, and the source ended.
    End,
}

impl Batch {
    /// The next frame of events from `next` (which gives one event per call): the first event,
    /// then each batch joined in one frame; `None` after the last.
    pub fn poll_joined(
        &mut self,
        cx: &mut Context<'_>,
        next: impl FnMut(&mut Context<'_>) -> Poll<Option<Bytes>>,
    ) -> Poll<Option<Bytes>> {
        Poll::Ready(match std::task::ready!(self.gather(cx, next)) {
            Gathered::First(event) => Some(event),
            // A lone event (a paced stream's usual batch) goes as it is, uncopied.
            Gathered::Batch if self.held.len() == 1 => self.pop(),
            Gathered::Batch => {
                let mut frame = Vec::with_capacity(self.held_bytes);
                for event in self.held.drain(..) {
                    frame.extend_from_slice(&event);
                }
                self.held_bytes = 0;
                Some(Bytes::from(frame))
            }
            Gathered::End => None,
        })
    }

    /// The next frame from `next`, each event a frame of its own: a batch's frames are given
    /// one after the other without waiting between them, so they are written together.
    pub fn poll_each(
        &mut self,
        cx: &mut Context<'_>,
        next: impl FnMut(&mut Context<'_>) -> Poll<Option<Bytes>>,
    ) -> Poll<Option<Bytes>> {
        if self.releasing {
            if let Some(event) = self.pop() {
                return Poll::Ready(Some(event));
            }
            self.releasing = false;
        }
        Poll::Ready(match std::task::ready!(self.gather(cx, next)) {
            Gathered::First(event) => Some(event),
            Gathered::Batch => {
                self.releasing = true;
                self.pop()
            }
            Gathered::End => None,
        })
    }

    /// The oldest held event.
    fn pop(&mut self) -> Option<Bytes> {
        let event = self.held.pop_front()?;
        self.held_bytes -= event.len();
        Some(event)
    }

    /// Read `next` until the first event, a batch to write, or the end (see the module).
    fn gather(
        &mut self,
        cx: &mut Context<'_>,
        mut next: impl FnMut(&mut Context<'_>) -> Poll<Option<Bytes>>,
    ) -> Poll<Gathered> {
        let mut got = false;
        loop {
            if self.ended {
                return Poll::Ready(if self.held.is_empty() {
                    Gathered::End
                } else {
                    Gathered::Batch
                });
            }
            match next(cx) {
                Poll::Ready(Some(event)) if !self.started => {
                    self.started = true;
                    return Poll::Ready(Gathered::First(event));
                }
                Poll::Ready(Some(event)) => {
                    self.held_bytes += event.len();
                    self.held.push_back(event);
                    got = true;
                    if self.held_bytes >= BATCH_MAX {
                        return Poll::Ready(self.written());
                    }
                }
                Poll::Ready(None) => self.ended = true,
                Poll::Pending if self.held.is_empty() => return Poll::Pending,
                Poll::Pending => {
                    if got {
                        self.idle_yields = 0;
                    } else {
                        self.idle_yields += 1;
                    }
                    if self.idle_yields >= IDLE_YIELDS {
                        return Poll::Ready(self.written());
                    }
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            }
        }
    }

    /// `held` goes out now.
    fn written(&mut self) -> Gathered {
        self.idle_yields = 0;
        Gathered::Batch
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

    /// Poll a batch over `steps` until it ends, its batches joined: the frames it gave, and
    /// each poll's outcome (`F` a frame, `P` pending).
    fn run(steps: Vec<Step>) -> (Vec<String>, String) {
        run_as(steps, false)
    }

    /// The same, each event its own frame.
    fn run_each(steps: Vec<Step>) -> (Vec<String>, String) {
        run_as(steps, true)
    }

    fn run_as(steps: Vec<Step>, each: bool) -> (Vec<String>, String) {
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
            let frame = if each {
                batch.poll_each(&mut cx, next)
            } else {
                batch.poll_joined(&mut cx, next)
            };
            match frame {
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

    #[test]
    fn each_event_its_own_frame_a_burst_given_in_a_row() {
        use Step::*;
        let (frames, polls) = run_each(vec![
            Event("a"),
            Event("b"),
            Wait,
            Event("c"),
            Wait,
            Wait,
            Wait,
            Event("d"),
            Wait,
            End,
        ]);
        assert_eq!(frames, ["a", "b", "c", "d"]);
        // a at once; b and c gathered over the yields, then given one after the other with no
        // wait between them (one write); d held until the end came.
        assert_eq!(polls, "FPPPFFPF");
    }

    #[test]
    fn each_event_its_own_frame_the_rest_at_the_end() {
        use Step::*;
        let (frames, polls) = run_each(vec![Event("a"), Event("b"), Event("c"), End]);
        assert_eq!(frames, ["a", "b", "c"]);
        assert_eq!(polls, "FFF");
        assert_eq!(run_each(vec![Wait, End]).0, Vec::<String>::new());
    }

    #[test]
    fn each_event_its_own_frame_cut_at_the_batch_limit() {
        let big: &'static str = Box::leak("x".repeat(BATCH_MAX / 2 + 1).into_boxed_str());
        let (frames, polls) = run_each(vec![
            Step::Event("first"),
            Step::Event(big),
            Step::Event(big),
            Step::Event(big),
            Step::Wait,
            Step::End,
        ]);
        let sizes: Vec<usize> = frames.iter().map(String::len).collect();
        assert_eq!(sizes, [5, big.len(), big.len(), big.len()]);
        // The first two big ones reach the limit and go out in a row; the third is held until
        // the end came.
        assert_eq!(polls, "FFFPF");
    }
}
