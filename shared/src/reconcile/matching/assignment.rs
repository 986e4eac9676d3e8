//! The assignment algorithm: closest-first pairing over date buckets, then augmenting paths so
//! that a drift-bounded pass matches as many pairs as can match.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// Pairs `lines` with `items` one to one, greedily by (date distance, line index, posting index)
/// over every candidate pair, skipping pairs further apart than `max_distance`. Both slices are
/// ascending indices, and posting indices ascend with the booked date.
///
/// Postings are bucketed by day. Each open line keeps one entry in a min-heap: the nearest day
/// that still has an open posting. Buckets only empty over time, so an entry never promises more
/// than the line can have; a popped entry whose bucket is still open is therefore the best pair
/// left anywhere, and one whose bucket has emptied is recomputed and pushed again.
pub(super) fn pair_closest(
    lines: &[usize],
    items: &[usize],
    line_day: &[i32],
    item_day: &[i32],
    max_distance: Option<u32>,
    pairs: &mut Vec<(usize, usize)>,
) {
    let within = |distance: u32| max_distance.is_none_or(|max| distance <= max);
    match (lines, items) {
        ([], _) | (_, []) => return,
        (&[line], &[item]) => {
            if within(line_day[line].abs_diff(item_day[item])) {
                pairs.push((line, item));
            }
            return;
        }
        _ => {}
    }
    let start = pairs.len();
    pair_closest_greedy(lines, items, line_day, item_day, max_distance, pairs);
    if let Some(max) = max_distance {
        augment(lines, items, line_day, item_day, max, pairs, start);
    }
}

/// Closest-first can strand a pair: lines on days 12 and 15, postings on days 10 and 13, drift 2:
/// (12, 13) is closest, and then 15 and 10 are too far apart, although (12, 10) and (15, 13) would
/// match both. This looks for augmenting paths from each stranded line (Kuhn's algorithm over the
/// lines and postings within the drift, closest candidates first), so the pass matches as many as
/// can match, keeping closest-first pairs wherever that costs nothing. Bounded work per group.
fn augment(
    lines: &[usize],
    items: &[usize],
    line_day: &[i32],
    item_day: &[i32],
    max: u32,
    pairs: &mut Vec<(usize, usize)>,
    start: usize,
) {
    const NONE: usize = usize::MAX;
    if pairs.len() - start == lines.len().min(items.len()) {
        return;
    }
    let line_pos: HashMap<usize, usize> = lines.iter().enumerate().map(|(p, &l)| (l, p)).collect();
    let item_pos: HashMap<usize, usize> = items.iter().enumerate().map(|(q, &i)| (i, q)).collect();
    let mut state = Augment {
        days: items.iter().map(|&i| item_day[i]).collect(),
        line_days: lines.iter().map(|&l| line_day[l]).collect(),
        max: max as i32,
        match_line: vec![NONE; lines.len()],
        match_item: vec![NONE; items.len()],
        visited: vec![0; items.len()],
        round: 0,
        budget: 64 * (lines.len() + items.len()),
    };
    for &(l, i) in &pairs[start..] {
        let (p, q) = (line_pos[&l], item_pos[&i]);
        state.match_line[p] = q;
        state.match_item[q] = p;
    }
    for p in 0..lines.len() {
        if state.match_line[p] == NONE && state.budget > 0 {
            state.round += 1;
            state.try_line(p, 0);
        }
    }
    pairs.truncate(start);
    for (p, &q) in state.match_line.iter().enumerate() {
        if q != NONE {
            pairs.push((lines[p], items[q]));
        }
    }
}

struct Augment {
    /// Posting days, ascending.
    days: Vec<i32>,
    line_days: Vec<i32>,
    max: i32,
    match_line: Vec<usize>,
    match_item: Vec<usize>,
    visited: Vec<u32>,
    round: u32,
    budget: usize,
}

impl Augment {
    const MAX_DEPTH: usize = 256;

    fn try_line(&mut self, p: usize, depth: usize) -> bool {
        if depth > Self::MAX_DEPTH {
            return false;
        }
        let day = self.line_days[p];
        let lo = self.days.partition_point(|&d| d < day - self.max);
        let hi = self.days.partition_point(|&d| d <= day + self.max);
        let mut candidates: Vec<usize> = (lo..hi).collect();
        candidates.sort_by_key(|&q| (self.days[q].abs_diff(day), q));
        for q in candidates {
            if self.budget == 0 {
                return false;
            }
            self.budget -= 1;
            if self.visited[q] == self.round {
                continue;
            }
            self.visited[q] = self.round;
            let holder = self.match_item[q];
            if holder == usize::MAX || self.try_line(holder, depth + 1) {
                self.match_line[p] = q;
                self.match_item[q] = p;
                return true;
            }
        }
        false
    }
}

/// The greedy closest-first pairing of [`pair_closest`].
fn pair_closest_greedy(
    lines: &[usize],
    items: &[usize],
    line_day: &[i32],
    item_day: &[i32],
    max_distance: Option<u32>,
    pairs: &mut Vec<(usize, usize)>,
) {
    let within = |distance: u32| max_distance.is_none_or(|max| distance <= max);

    let mut buckets: Vec<Bucket> = Vec::new();
    for (position, &item) in items.iter().enumerate() {
        match buckets.last_mut() {
            Some(bucket) if bucket.day == item_day[item] => bucket.end = position + 1,
            _ => buckets.push(Bucket {
                day: item_day[item],
                next: position,
                end: position + 1,
            }),
        }
    }
    let mut open = OpenBuckets::new(buckets.len());

    let nearest = |open: &mut OpenBuckets, buckets: &[Bucket], day: i32| -> Option<(u32, usize)> {
        let split = buckets.partition_point(|b| b.day < day);
        let before = split
            .checked_sub(1)
            .and_then(|b| open.at_or_before(b))
            .map(|b| (day.abs_diff(buckets[b].day), b));
        let after = open
            .at_or_after(split)
            .map(|b| (day.abs_diff(buckets[b].day), b));
        // On equal distance the earlier day wins: its bucket index is smaller.
        [before, after]
            .into_iter()
            .flatten()
            .min()
            .filter(|&(distance, _)| within(distance))
    };

    let mut heap = BinaryHeap::with_capacity(lines.len());
    for (rank, &line) in lines.iter().enumerate() {
        if let Some((distance, bucket)) = nearest(&mut open, &buckets, line_day[line]) {
            heap.push(Reverse((distance, rank, bucket)));
        }
    }
    let mut left = items.len();
    while let Some(Reverse((_, rank, bucket))) = heap.pop() {
        let b = &mut buckets[bucket];
        if b.next < b.end {
            pairs.push((lines[rank], items[b.next]));
            b.next += 1;
            if b.next == b.end {
                open.close(bucket);
            }
            left -= 1;
            if left == 0 {
                break;
            }
        } else if let Some((distance, bucket)) = nearest(&mut open, &buckets, line_day[lines[rank]])
        {
            heap.push(Reverse((distance, rank, bucket)));
        }
    }
}

/// The postings of one day within a group: `items[next..end]` are still open.
struct Bucket {
    day: i32,
    next: usize,
    end: usize,
}

/// Finds the nearest bucket that still has open postings, in either direction (two path-compressed
/// "skip to the next open one" forests, one per direction; slot `len` is a sentinel).
struct OpenBuckets {
    forward: Vec<usize>,
    backward: Vec<usize>,
}

impl OpenBuckets {
    fn new(len: usize) -> Self {
        Self {
            forward: (0..=len).collect(),
            backward: (0..=len).collect(),
        }
    }

    fn len(&self) -> usize {
        self.forward.len() - 1
    }

    fn close(&mut self, bucket: usize) {
        let len = self.len();
        self.forward[bucket] = bucket + 1;
        self.backward[len - 1 - bucket] = len - bucket;
    }

    fn at_or_after(&mut self, bucket: usize) -> Option<usize> {
        let found = find_open(&mut self.forward, bucket);
        (found < self.len()).then_some(found)
    }

    fn at_or_before(&mut self, bucket: usize) -> Option<usize> {
        let len = self.len();
        let found = find_open(&mut self.backward, len - 1 - bucket);
        (found < len).then(|| len - 1 - found)
    }
}

fn find_open(next: &mut [usize], start: usize) -> usize {
    let mut root = start;
    while next[root] != root {
        root = next[root];
    }
    let mut at = start;
    while next[at] != root {
        let following = next[at];
        next[at] = root;
        at = following;
    }
    root
}
