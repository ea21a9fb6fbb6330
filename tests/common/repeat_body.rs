//! A generated answer for the fake upstream ([`super::fake_upstream::Behavior::Repeat`]): a
//! head, one piece repeated `times` times (`u64::MAX`: as good as endless), then a tail, made
//! frame by frame as the reader pulls, so a 200 MiB answer or an endless stream costs the test
//! process no memory.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame};

/// Pieces per body frame: frames of some tens of KiB, as a fast upstream writes them.
const PIECES_PER_FRAME: u64 = 64;

/// The generated body.
pub struct RepeatBody {
    head: Option<Bytes>,
    /// `PIECES_PER_FRAME` copies of the piece.
    frame: Bytes,
    piece: Bytes,
    left: u64,
    tail: Option<Bytes>,
}

impl RepeatBody {
    pub fn new(head: Bytes, piece: Bytes, times: u64, tail: Bytes) -> RepeatBody {
        let frame = Bytes::from(piece.repeat(PIECES_PER_FRAME as usize));
        RepeatBody {
            head: Some(head).filter(|h| !h.is_empty()),
            frame,
            piece,
            left: times,
            tail: Some(tail).filter(|t| !t.is_empty()),
        }
    }
}

impl Body for RepeatBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(head) = self.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        if self.left >= PIECES_PER_FRAME {
            self.left -= PIECES_PER_FRAME;
            return Poll::Ready(Some(Ok(Frame::data(self.frame.clone()))));
        }
        if self.left > 0 && !self.piece.is_empty() {
            self.left -= 1;
            return Poll::Ready(Some(Ok(Frame::data(self.piece.clone()))));
        }
        Poll::Ready(self.tail.take().map(|t| Ok(Frame::data(t))))
    }
}
