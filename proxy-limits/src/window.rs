//! Two count-min sketches whose counters are tagged with the time window
//! they count: the storage of [`Rate`](crate::Rate).
//!
//! Each counter is one `AtomicU64`: the window's tag in the top 24 bits and
//! the count in the low 40. Window `w` lives in sketch `w % 2`, so the
//! current and the previous window are always in different sketches. A
//! counter whose tag is not the window being read holds an older window's
//! count and reads as zero; the first addition of a new window replaces it
//! (in the same compare-and-swap as the addition). So windows rotate without
//! anyone clearing a sketch, and without a lock: no thread ever waits for
//! another, and no addition is lost to a concurrent rotation. An addition
//! for a window two or more behind a counter's (from a thread that read the
//! clock, then was descheduled for a whole window) is dropped rather than
//! let it replace the newer count: its window is over and no longer read.
//!
//! An addition to a counter already tagged with its window is one
//! `fetch_add` (the compare-and-swap is only for a window's first addition
//! to a counter, and near saturation). Should a thread stall for a whole
//! window between reading such a counter and adding to it, while another
//! moves the counter on two windows, its events count in the later window:
//! an over-estimate by them, never a lost or negative count.
//!
//! Limits, by construction: a window's count saturates at 2^40 − 1 (about
//! 1.1 × 10^12) per counter; tags repeat every 2^24 − 1 windows (194 days
//! of 1-second windows), so a counter left untouched for exactly a multiple
//! of that many windows would be read as current. Touching any key in a row
//! touches a counter of it, so on a sketch in use this needs a slot no key
//! hashed to for months; the effect is then an over-estimate by that old
//! count.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::hash::Rows;

/// Bits of a counter that hold the count.
const COUNT_BITS: u32 = 40;
/// The largest count a counter holds (it saturates there).
pub(crate) const MAX_COUNT: u64 = (1 << COUNT_BITS) - 1;
/// Largest `events` [`WindowedSketch::add`] adds with a plain `fetch_add`.
const MAX_FAST_EVENTS: u64 = 1 << 20;
/// Largest count [`WindowedSketch::add`] adds to with a plain `fetch_add`:
/// a carry into the tag would take 2^19 concurrent additions of
/// [`MAX_FAST_EVENTS`] between one load and its add.
const MAX_FAST_COUNT: u64 = MAX_COUNT / 2;
/// Tags cycle through `1..=TAG_CYCLE`; tag 0 is a counter never written.
const TAG_CYCLE: u64 = (1 << (64 - COUNT_BITS)) - 1;

/// The tag of window number `window`.
#[inline]
fn tag_of(window: u64) -> u64 {
    window % TAG_CYCLE + 1
}

/// Whether a counter holding `cell` counts a window later than the one
/// tagged `tag` (tags compared around their cycle: later means less than
/// half a cycle ahead). A counter never written (tag 0) is never later.
#[inline]
fn is_later(cell: u64, tag: u64) -> bool {
    let cell_tag = cell >> COUNT_BITS;
    cell_tag != 0 && {
        let ahead = (cell_tag + TAG_CYCLE - tag) % TAG_CYCLE;
        ahead != 0 && ahead < TAG_CYCLE / 2
    }
}

/// What a counter holding `cell` counts for the window tagged `tag`.
#[inline]
fn count_in(cell: u64, tag: u64) -> u64 {
    if cell >> COUNT_BITS == tag {
        cell & MAX_COUNT
    } else {
        0
    }
}

/// `count + events`, kept within `0..=MAX_COUNT`.
#[inline]
fn add_events(count: u64, events: isize) -> u64 {
    // usize is at most 64 bits on every target Rust supports
    let magnitude = u64::try_from(events.unsigned_abs()).unwrap_or(u64::MAX);
    let sum = if events >= 0 {
        count.saturating_add(magnitude)
    } else {
        count.saturating_sub(magnitude)
    };
    sum.min(MAX_COUNT)
}

/// A pair of count-min sketches for the current and the previous window.
pub(crate) struct WindowedSketch {
    rows: Rows,
    /// Sketch 0 (even windows), then sketch 1 (odd windows), each
    /// `rows.cells()` counters.
    cells: Box<[AtomicU64]>,
}

impl WindowedSketch {
    /// Two empty sketches of the shape `rows`.
    pub(crate) fn new(rows: Rows) -> Self {
        let cells = (0..2 * rows.cells()).map(|_| AtomicU64::new(0)).collect();
        WindowedSketch { rows, cells }
    }

    /// The rows, to hash keys with.
    pub(crate) fn rows(&self) -> &Rows {
        &self.rows
    }

    /// The counters of window `window`'s sketch.
    #[inline]
    fn sketch(&self, window: u64) -> &[AtomicU64] {
        let n = self.rows.cells();
        let start = if window & 1 == 0 { 0 } else { n };
        self.cells.get(start..start + n).unwrap_or(&[])
    }

    /// Adds `events` (negative: takes them away, not below zero) to the key
    /// hashed to `hash` in window `window`; returns the key's estimate for
    /// that window afterwards.
    #[inline]
    pub(crate) fn add(&self, hash: u64, window: u64, events: isize) -> u64 {
        let tag = tag_of(window);
        let sketch = self.sketch(window);
        let mut min = MAX_COUNT;
        let fast_events = u64::try_from(events).ok().filter(|e| *e <= MAX_FAST_EVENTS);
        for i in self.rows.indices(hash) {
            let Some(cell) = sketch.get(i) else { continue };
            // The common case, one `fetch_add`: the counter is already this
            // window's and far from saturating. (If another thread moves it
            // to a later window between the load and the add, this caller
            // was stalled for a whole window in between, and its events
            // count in the later window: an over-estimate, never a loss.)
            if let Some(e) = fast_events {
                let v = cell.load(Ordering::Relaxed);
                if v >> COUNT_BITS == tag && v & MAX_COUNT <= MAX_FAST_COUNT {
                    let old = cell.fetch_add(e, Ordering::Relaxed);
                    min = min.min(((old & MAX_COUNT) + e).min(MAX_COUNT));
                    continue;
                }
            }
            // A counter already moved on to a later window is left alone:
            // this caller read the clock at least two windows ago (it was
            // descheduled), and its window is over and no longer read.
            let update = |v: u64| {
                if v >> COUNT_BITS == tag {
                    // the common case: this window's counter
                    Some((tag << COUNT_BITS) | add_events(v & MAX_COUNT, events))
                } else if is_later(v, tag) {
                    None
                } else {
                    Some((tag << COUNT_BITS) | add_events(0, events))
                }
            };
            let count = match cell.fetch_update(Ordering::Relaxed, Ordering::Relaxed, update) {
                Ok(old) => add_events(count_in(old, tag), events),
                Err(_later) => 0,
            };
            min = min.min(count);
        }
        min
    }

    /// The estimate of the key hashed to `hash` in window `window`.
    #[inline]
    pub(crate) fn get(&self, hash: u64, window: u64) -> u64 {
        let tag = tag_of(window);
        let sketch = self.sketch(window);
        let mut min = MAX_COUNT;
        for i in self.rows.indices(hash) {
            if let Some(cell) = sketch.get(i) {
                min = min.min(count_in(cell.load(Ordering::Relaxed), tag));
            }
        }
        min
    }
}

impl fmt::Debug for WindowedSketch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WindowedSketch")
            .field("hashes", &self.rows.hashes())
            .field("slots", &self.rows.slots())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sketch() -> WindowedSketch {
        WindowedSketch::new(Rows::new(4, 256, 21))
    }

    #[test]
    fn windows_count_separately() {
        let s = sketch();
        let h = s.rows().hash("k");
        assert_eq!(s.add(h, 0, 3), 3);
        assert_eq!(s.add(h, 1, 1), 1);
        assert_eq!(s.add(h, 1, 1), 2);
        assert_eq!((s.get(h, 0), s.get(h, 1)), (3, 2));
    }

    #[test]
    fn a_window_two_later_starts_from_zero_in_the_same_sketch() {
        let s = sketch();
        let h = s.rows().hash("k");
        s.add(h, 4, 10);
        assert_eq!(s.get(h, 6), 0, "window 6 shares window 4's sketch");
        assert_eq!(s.add(h, 6, 1), 1);
        assert_eq!(s.get(h, 4), 0, "window 4's counts were replaced");
    }

    #[test]
    fn counts_stay_within_zero_and_the_maximum() {
        let s = sketch();
        let h = s.rows().hash("k");
        assert_eq!(s.add(h, 0, -5), 0);
        assert_eq!(s.add(h, 0, 2), 2);
        assert_eq!(s.add(h, 0, -5), 0);
        assert_eq!(s.add(h, 0, isize::MAX), MAX_COUNT);
        assert_eq!(s.add(h, 0, 1), MAX_COUNT);
    }

    #[test]
    fn a_late_addition_for_an_old_window_leaves_the_newer_count_alone() {
        let s = sketch();
        let h = s.rows().hash("k");
        assert_eq!(s.add(h, 8, 5), 5);
        assert_eq!(s.add(h, 6, 1), 0, "window 6 is over: dropped");
        assert_eq!(s.get(h, 8), 5);
        // across the tag cycle too
        assert_eq!(s.add(h, TAG_CYCLE + 2, 3), 3);
        assert_eq!(s.add(h, TAG_CYCLE, 1), 0);
        assert_eq!(s.get(h, TAG_CYCLE + 2), 3);
    }

    #[test]
    fn tags_cycle_without_zero() {
        assert_eq!(tag_of(0), 1);
        assert_eq!(tag_of(TAG_CYCLE - 1), TAG_CYCLE);
        assert_eq!(tag_of(TAG_CYCLE), 1);
        assert_eq!(count_in(0, tag_of(0)), 0, "a fresh counter reads as zero");
    }
}
