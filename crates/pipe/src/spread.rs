//! Several pipes at one end: a producer's [`Outlet`] (one pipe, fan-out to many, or a split
//! of its records across replicas) and a consumer's [`Inlet`] (one pipe, or a merge of many
//! that never interleaves records).

use std::collections::VecDeque;

use bytes::Bytes;

use crate::record::{Format, Framer, RecordError};
use crate::stream::{Config, Receiver, Sender, State};

/// How an outlet shares its producer's bytes among its pipes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    /// Every pipe gets every byte; the slowest sets the pace (one pipe is the plain case).
    All,
    /// Each record goes to one pipe, the one with the most credit: faster consumers take more.
    Split(Format),
}

/// The producer's end of one or more pipes.
#[derive(Debug)]
pub struct Outlet {
    share: Share,
    senders: Vec<Sender>,
    framer: Option<Framer>,
    /// Bytes (fan-out) or whole records (split) not yet given to the pipes.
    pending: VecDeque<Bytes>,
    /// The next pipe a tie of credit goes to.
    turn: usize,
    input_done: bool,
}

impl Outlet {
    /// An outlet over `pipes` pipes (at least one). A split's records are at most the window.
    pub fn new(config: Config, pipes: usize, share: Share) -> Outlet {
        let pipes = pipes.max(1);
        let max_record = usize::try_from(config.window).unwrap_or(usize::MAX);
        Outlet {
            share,
            senders: (0..pipes).map(|_| Sender::new(config)).collect(),
            framer: match share {
                Share::All => None,
                Share::Split(format) => Some(Framer::new(format, max_record)),
            },
            pending: VecDeque::new(),
            turn: 0,
            input_done: false,
        }
    }

    /// Whether the producer's next bytes may be taken now: what was taken before has gone
    /// into the pipes. While it is `false` the producer is not read, so it blocks.
    pub fn wants_input(&self) -> bool {
        self.pending.is_empty() && !self.input_done && !self.is_closed()
    }

    /// More of the producer's bytes (take them only while [`Outlet::wants_input`]).
    pub fn input(&mut self, bytes: Bytes) -> Result<(), RecordError> {
        match &mut self.framer {
            None => self.pending.push_back(bytes),
            Some(framer) => {
                framer.push(&bytes);
                while let Some(record) = framer.next_record()? {
                    self.pending.push_back(record);
                }
            }
        }
        self.pump();
        Ok(())
    }

    /// The producer's output ended: each pipe ends after its last byte.
    pub fn end_input(&mut self) -> Result<(), RecordError> {
        self.input_done = true;
        if let Some(framer) = &mut self.framer {
            while let Some(record) = framer.finish()? {
                self.pending.push_back(record);
            }
        }
        self.pump();
        Ok(())
    }

    /// Gives pending bytes to the pipes as their credit allows. Call after acknowledgements.
    pub fn pump(&mut self) {
        match self.share {
            Share::All => self.pump_all(),
            Share::Split(_) => self.pump_split(),
        }
        if self.input_done && self.pending.is_empty() {
            for s in &mut self.senders {
                s.finish();
            }
        }
    }

    fn open(s: &Sender) -> bool {
        *s.state() == State::Open
    }

    fn pump_all(&mut self) {
        while let Some(front) = self.pending.front_mut() {
            let credit = self
                .senders
                .iter()
                .filter(|s| Self::open(s))
                .map(Sender::credit)
                .min();
            let Some(credit) = credit else {
                self.pending.clear(); // nobody left to take it
                return;
            };
            let n = usize::try_from(credit)
                .unwrap_or(usize::MAX)
                .min(front.len());
            if n == 0 {
                return;
            }
            let piece = front.split_to(n);
            for s in self.senders.iter_mut().filter(|s| Self::open(s)) {
                let mut copy = piece.clone();
                s.push(&mut copy);
            }
            if front.is_empty() {
                self.pending.pop_front();
            }
        }
    }

    fn pump_split(&mut self) {
        while let Some(record) = self.pending.front() {
            let len = record.len() as u64;
            let count = self.senders.len();
            // The most credit wins; ties go round, starting after the last pipe given one.
            let best = (0..count)
                .map(|k| (self.turn + k) % count)
                .filter(|&i| Self::open(&self.senders[i]) && self.senders[i].credit() >= len)
                .max_by_key(|&i| {
                    (
                        self.senders[i].credit(),
                        count - (i + count - self.turn) % count,
                    )
                });
            let Some(i) = best else {
                if !self.senders.iter().any(Self::open) {
                    self.pending.clear();
                }
                return;
            };
            let Some(mut record) = self.pending.pop_front() else {
                return;
            };
            self.senders[i].push(&mut record);
            self.turn = (i + 1) % count;
        }
    }

    /// The pipes, in the order they were made.
    pub fn senders(&mut self) -> &mut [Sender] {
        &mut self.senders
    }

    /// Every pipe is closed or failed: the producer should get `EPIPE`.
    pub fn is_closed(&self) -> bool {
        self.senders
            .iter()
            .all(|s| matches!(s.state(), State::Closed | State::Failed(_)))
    }

    /// Every pipe is done (finished, closed or failed) and nothing is pending that an open
    /// pipe could still take.
    pub fn is_done(&self) -> bool {
        self.senders.iter().all(Sender::is_quiet) && (self.pending.is_empty() || self.is_closed())
    }

    /// Bytes held: pending plus what the pipes hold.
    pub fn buffered(&self) -> u64 {
        let pending: u64 = self.pending.iter().map(|b| b.len() as u64).sum();
        pending + self.senders.iter().map(Sender::buffered).max().unwrap_or(0)
    }
}

/// The consumer's end of one or more pipes: the bytes for the program's input.
#[derive(Debug)]
pub struct Inlet {
    receivers: Vec<Receiver>,
    /// For a merge: a framer per pipe, so that only whole records are handed on.
    framers: Vec<Framer>,
    /// The pipe the next record is taken from.
    turn: usize,
}

/// Bytes for the consumer, from one pipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// Which pipe.
    pub pipe: usize,
    /// The bytes (a whole record when merging).
    pub bytes: Bytes,
    /// How many bytes of the pipe's stream they stand for: their length, except for a JSON
    /// record, written as its value and a newline whatever whitespace stood around it.
    pub consumed: u64,
}

impl Inlet {
    /// An inlet over `pipes` pipes (at least one); with more than one, records of `format`
    /// are kept whole.
    pub fn new(config: Config, pipes: usize, format: Format) -> Inlet {
        let pipes = pipes.max(1);
        let max_record = usize::try_from(config.window).unwrap_or(usize::MAX);
        Inlet {
            receivers: (0..pipes).map(|_| Receiver::new(config)).collect(),
            framers: if pipes > 1 {
                (0..pipes)
                    .map(|_| Framer::new(format, max_record))
                    .collect()
            } else {
                Vec::new()
            },
            turn: 0,
        }
    }

    /// The pipes, in the order they were made.
    pub fn receivers(&mut self) -> &mut [Receiver] {
        &mut self.receivers
    }

    /// Pipe `i`.
    pub fn receiver(&self, i: usize) -> Option<&Receiver> {
        self.receivers.get(i)
    }

    /// Pipe `i` starts again from `offset` (its producer's end was made again, or relinked):
    /// what it held is dropped, and its count returned.
    pub fn restart(&mut self, i: usize, config: Config, offset: u64) -> u64 {
        let Some(r) = self.receivers.get_mut(i) else {
            return 0;
        };
        let lost = r.buffered();
        *r = Receiver::starting_at(config, offset);
        if let Some(f) = self.framers.get_mut(i) {
            *f = Framer::new(f.format(), f.max_record());
        }
        lost
    }

    /// Pipe `i`, to change.
    pub fn receiver_mut(&mut self, i: usize) -> Option<&mut Receiver> {
        self.receivers.get_mut(i)
    }

    /// The next bytes for the consumer, taking pipes in turn. When the consumer has written
    /// them, [`Inlet::written`] opens their pipe's credit. A pipe whose stream cannot be cut
    /// into records fails.
    pub fn next_piece(&mut self) -> Option<Piece> {
        let count = self.receivers.len();
        for k in 0..count {
            let i = (self.turn + k) % count;
            if let Some((bytes, consumed)) = self.take(i) {
                self.turn = (i + 1) % count;
                return Some(Piece {
                    pipe: i,
                    bytes,
                    consumed,
                });
            }
        }
        None
    }

    /// The next bytes of pipe `i` and how many bytes of its stream they stand for.
    fn take(&mut self, i: usize) -> Option<(Bytes, u64)> {
        let receiver = &mut self.receivers[i];
        let Some(framer) = self.framers.get_mut(i) else {
            return receiver.read().map(|b| {
                let n = b.len() as u64;
                (b, n)
            });
        };
        let before = framer.consumed();
        let record = |framer: &Framer, r: Bytes| Some((r, framer.consumed() - before));
        loop {
            match framer.next_record() {
                Ok(Some(r)) => return record(framer, r),
                Ok(None) => {}
                Err(e) => {
                    receiver.fail(e.to_string());
                    return None;
                }
            }
            match receiver.read() {
                Some(bytes) => framer.push(&bytes),
                None if receiver.at_end() => {
                    return match framer.finish() {
                        Ok(Some(r)) => record(framer, r),
                        Ok(None) => {
                            // Whitespace after the last value: taken, with nothing to write.
                            receiver.release(framer.consumed() - before);
                            None
                        }
                        Err(e) => {
                            receiver.fail(e.to_string());
                            None
                        }
                    };
                }
                None => return None,
            }
        }
    }

    /// The consumer wrote `piece`: its pipe's credit opens by the stream bytes it stands for.
    pub fn written(&mut self, piece: &Piece) {
        if let Some(r) = self.receivers.get_mut(piece.pipe) {
            r.release(piece.consumed);
        }
    }

    /// Every pipe has ended (finished, closed or failed) and everything was handed on: the
    /// consumer's input may close.
    pub fn at_end(&self) -> bool {
        self.receivers.iter().enumerate().all(|(i, r)| {
            let drained = self.framers.get(i).is_none_or(|f| f.buffered() == 0);
            (r.at_end() && drained) || matches!(r.state(), State::Closed | State::Failed(_))
        })
    }

    /// The consumer is gone: every pipe tells its producer so.
    pub fn close(&mut self) {
        for r in &mut self.receivers {
            r.close();
        }
    }

    /// Bytes held over all pipes.
    pub fn buffered(&self) -> u64 {
        let framed: usize = self.framers.iter().map(Framer::buffered).sum();
        self.receivers.iter().map(Receiver::buffered).sum::<u64>() + framed as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::Frame;

    fn config(window: u64) -> Config {
        Config {
            window,
            max_frame: 8,
            retransmit_ms: 100,
        }
    }

    /// Moves every frame of `outlet`'s pipe `i` into `inlet`'s pipe `j` and the acks back.
    fn carry(outlet: &mut Outlet, i: usize, inlet: &mut Inlet, j: usize) {
        while let Some(f) = outlet.senders()[i].poll_transmit(0) {
            let _ = inlet.receivers()[j].on_frame(f);
        }
        let ack = inlet.receivers()[j].ack();
        outlet.senders()[i].on_ack(&ack, 0).unwrap();
        outlet.pump();
    }

    #[test]
    fn fan_out_goes_at_the_slowest_pace() {
        let mut out = Outlet::new(config(16), 2, Share::All);
        out.input(Bytes::from(vec![7u8; 40])).unwrap();
        assert!(!out.wants_input());
        let mut fast = Inlet::new(config(16), 1, Format::Raw);
        let mut slow = Inlet::new(config(16), 1, Format::Raw);
        let mut got_fast = 0;
        for _ in 0..10 {
            carry(&mut out, 0, &mut fast, 0);
            carry(&mut out, 1, &mut slow, 0);
            while let Some(p) = fast.next_piece() {
                got_fast += p.bytes.len();
                fast.written(&p);
            }
        }
        // The slow one never takes: the fast one gets only the window.
        assert_eq!(got_fast, 16);
        assert_eq!(slow.buffered(), 16);
    }

    #[test]
    fn split_gives_whole_records_to_whoever_has_credit() {
        let mut out = Outlet::new(config(12), 2, Share::Split(Format::Raw));
        out.input(Bytes::from_static(b"aaaa\nbbbb\ncccc\ndddd\n"))
            .unwrap();
        out.end_input().unwrap();
        let mut a = Inlet::new(config(12), 1, Format::Raw);
        let mut b = Inlet::new(config(12), 1, Format::Raw);
        let mut got_a = Vec::new();
        for _ in 0..10 {
            carry(&mut out, 0, &mut a, 0);
            carry(&mut out, 1, &mut b, 0);
            while let Some(p) = a.next_piece() {
                got_a.extend_from_slice(&p.bytes);
                a.written(&p); // a is fast; b never takes
            }
        }
        // b had room for two records before it stalled; a took the rest.
        assert_eq!(&got_a, b"aaaa\ncccc\n");
        assert_eq!(b.buffered(), 10);
    }

    #[test]
    fn merge_never_interleaves_records() {
        let cfg = config(64);
        let mut one = Outlet::new(cfg, 1, Share::All);
        let mut two = Outlet::new(cfg, 1, Share::All);
        let mut inlet = Inlet::new(cfg, 2, Format::Raw);
        one.input(Bytes::from_static(b"one-a\none-")).unwrap();
        two.input(Bytes::from_static(b"two-a\ntwo-b")).unwrap();
        carry(&mut one, 0, &mut inlet, 0);
        carry(&mut two, 0, &mut inlet, 1);
        one.input(Bytes::from_static(b"b\n")).unwrap();
        one.end_input().unwrap();
        two.end_input().unwrap();
        carry(&mut one, 0, &mut inlet, 0);
        carry(&mut two, 0, &mut inlet, 1);
        let mut lines = Vec::new();
        while let Some(p) = inlet.next_piece() {
            lines.push(String::from_utf8(p.bytes.to_vec()).unwrap());
            inlet.written(&p);
        }
        lines.sort();
        assert_eq!(lines, vec!["one-a\n", "one-b\n", "two-a\n", "two-b"]);
        assert!(inlet.at_end());
    }

    /// JSON records are rewritten (value and newline): the credit they give back is the
    /// stream bytes they stood for, whitespace included, so both pipes finish.
    #[test]
    fn merged_json_gives_back_all_its_credit() {
        let cfg = config(64);
        let mut one = Outlet::new(cfg, 1, Share::All);
        let mut two = Outlet::new(cfg, 1, Share::All);
        let mut inlet = Inlet::new(cfg, 2, Format::Json);
        one.input(Bytes::from_static(b"  {\"a\": 1}\n\n {\"b\":2}  \n"))
            .unwrap();
        two.input(Bytes::from_static(b"[1, 2]\n")).unwrap();
        one.end_input().unwrap();
        two.end_input().unwrap();
        let mut records = Vec::new();
        for _ in 0..4 {
            carry(&mut one, 0, &mut inlet, 0);
            carry(&mut two, 0, &mut inlet, 1);
            while let Some(p) = inlet.next_piece() {
                records.push(String::from_utf8(p.bytes.to_vec()).unwrap());
                inlet.written(&p);
            }
        }
        records.sort();
        assert_eq!(records, ["[1, 2]\n", "{\"a\": 1}\n", "{\"b\":2}\n"]);
        assert!(inlet.at_end());
        assert_eq!(inlet.receivers()[0].state(), &State::Finished);
        assert_eq!(inlet.receivers()[1].state(), &State::Finished);
        assert_eq!(one.senders()[0].state(), &State::Finished);
    }

    #[test]
    fn a_consumer_gone_closes_the_outlet() {
        let mut out = Outlet::new(config(16), 1, Share::All);
        let mut inlet = Inlet::new(config(16), 1, Format::Raw);
        out.input(Bytes::from_static(b"x")).unwrap();
        inlet.close();
        carry(&mut out, 0, &mut inlet, 0);
        assert!(out.is_closed());
        out.input(Bytes::from_static(b"more")).unwrap();
        assert!(
            out.is_done(),
            "what no pipe will take does not hold it open"
        );
        assert!(!out.wants_input());
        assert!(matches!(
            out.senders()[0].poll_transmit(0),
            None | Some(Frame::Reset { .. })
        ));
    }
}
