//! Exhaustive model check of the refresh lineage (issue 10): a hand-written breadth-first
//! search over every interleaving of a small scope, driving the REAL rules
//! ([`tessera::fuzzing::Lineage::decide_refresh`] / `decide_verify`) and the real child
//! derivation ([`tessera::fuzzing::derive_child`]); no HTTP, no store.
//!
//! # The scope
//! * One honest client with one token store (a cookie jar): up to [`REQUESTS`] requests —
//!   refreshes with the stored refresh token or database-checked verifies of the stored access
//!   token — all of which may be in flight at once. The server handles them in any order;
//!   each reply overwrites the store (refresh token and access token together; a verify reply
//!   only the access token) in any order of arrival.
//! * One reply of a refresh may be lost: the client then retries with whatever it holds.
//! * A thief copies the refresh token the client holds, at any moment, and presents it once,
//!   at any later moment.
//! * Time is an integer clock; the window is `G = 2`. Every request is handled and answered
//!   within `D = 1 = G / 2` of being sent (the round trip, a retry included, is shorter than
//!   half the window). Between requests the clock moves one step, or jumps past the window
//!   when nothing is in flight.
//!
//! # The properties
//! * **P1** No request of the honest client is answered theft; whenever nothing is in flight
//!   the token it holds refreshes now and after the window, and so does that refresh's answer.
//!   (Not asserted once the thief has been answered tokens: from then on the session is
//!   shared with the thief, which no scheme can tell apart.)
//! * **P2** A refresh token the client no longer holds (neither stored nor in flight),
//!   presented by the thief more than `G` after it was superseded (its head moved on), is
//!   theft and revokes the session.
//!
//! The same search runs the real rules at `G = 0` (strict CDI 5.4: P2 only) and, as negative
//! controls that must FAIL P1, the v1 rules (random children, siblings adopted), the CDI 5.6
//! reference's eager re-rotation, and v2 without the one-promotion-per-window rule.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::{HashMap, HashSet, VecDeque};
use tessera::fuzzing::RefreshTokenKey;
use tessera::fuzzing::{derive_child, mint_refresh_token, ChildFields, RefreshTokenFields};
use tessera::fuzzing::{Lineage, VerifyDecision};
use tessera::RefreshDecision;

const G: u8 = 2;
const D: u8 = 1;
const T_MAX: u8 = 7;
const REQUESTS: u8 = 5;
const CHAIN: usize = 16;

type Tok = u8;

/// An access token: its own refresh token and its parent refresh token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct At {
    own: Tok,
    parent: Option<Tok>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Req {
    Refresh { rt: Tok, deadline: u8 },
    Verify { at: At, deadline: u8 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Reply {
    Refreshed { rt: Tok, at: At, deadline: u8 },
    Verified { at: At, deadline: u8 },
}

/// The session row.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Row {
    head: Tok,
    prev: Option<Tok>,
    rotated_at: Option<u8>,
    revoked: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct State {
    t: u8,
    row: Row,
    jar_rt: Tok,
    jar_at: At,
    inflight: Vec<Req>,
    replies: Vec<Reply>,
    sent: u8,
    lost_left: u8,
    thief: Option<Tok>,
    thief_left: u8,
    /// (token, time its head moved on), sorted.
    superseded: Vec<(Tok, u8)>,
    /// Parent of each token with random children (index = token id).
    parents: Vec<Option<Tok>>,
}

/// The hash2 strings the real rules compare. Deterministic children are the real derived
/// chain `T0, child(T0), child(child(T0)), …` (id = generation); random children get fresh ids.
struct Tokens {
    hash2: Vec<String>,
}

impl Tokens {
    fn real_chain() -> Self {
        let key = RefreshTokenKey::generate().unwrap();
        let first = mint_refresh_token(
            &key,
            RefreshTokenFields {
                session_handle: "h",
                user_id: "u",
                tenant_id: "public",
                parent_hash1: None,
                anti_csrf_token: None,
                anonymous_id: None,
            },
        )
        .unwrap();
        let fields = ChildFields {
            session_handle: "h",
            user_id: "u",
            tenant_id: "public",
            anonymous_id: None,
            with_anti_csrf: false,
        };
        let mut chain = vec![first];
        while chain.len() < CHAIN {
            let parent = chain.last().unwrap().hash1.clone();
            let child = derive_child(&key, &parent, fields).unwrap();
            assert_eq!(
                child.token,
                derive_child(&key, &parent, fields).unwrap().token,
                "derivation is deterministic"
            );
            chain.push(child);
        }
        let hash2: Vec<String> = chain.into_iter().map(|t| t.hash2).collect();
        assert_eq!(
            hash2.iter().collect::<HashSet<_>>().len(),
            CHAIN,
            "distinct"
        );
        Self { hash2 }
    }

    fn random() -> Self {
        Self {
            hash2: (0..CHAIN).map(|i| format!("random-{i}")).collect(),
        }
    }
}

/// A rule set under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rules {
    /// The real rules, deterministic children (G > 0) or random ones (G = 0).
    V2,
    /// Negative control: v2 with a promotion at every use of the head's child.
    V2EveryPromotion,
    /// Negative control: the v1 rules (random children, siblings adopted in the window,
    /// the previous token re-issued a child that becomes current).
    V1,
    /// Negative control: CDI 5.6 reference, rotation at refresh and re-rotation from prev.
    Eager,
}

struct Model {
    rules: Rules,
    grace: u8,
    tokens: Tokens,
}

enum Answer {
    Tokens(Tok, At),
    Theft,
    Unauthorised,
}

impl Model {
    fn deterministic(&self) -> bool {
        self.grace > 0 && matches!(self.rules, Rules::V2 | Rules::V2EveryPromotion)
    }

    fn parent(&self, s: &State, x: Tok) -> Option<Tok> {
        if self.deterministic() {
            x.checked_sub(1)
        } else {
            s.parents[usize::from(x)]
        }
    }

    fn h(&self, x: Tok) -> &str {
        &self.tokens.hash2[usize::from(x)]
    }

    fn child(&self, s: &mut State, x: Tok) -> Tok {
        if self.deterministic() {
            x + 1
        } else {
            let id = Tok::try_from(s.parents.len()).unwrap();
            assert!(usize::from(id) < CHAIN, "scope exceeds the token table");
            s.parents.push(Some(x));
            id
        }
    }

    fn lineage<'a>(&'a self, row: &Row) -> Lineage<'a> {
        Lineage {
            current: self.h(row.head),
            prev: row.prev.map(|p| self.h(p)),
            rotated_at_ms: row.rotated_at.map(u64::from),
        }
    }

    fn in_window(&self, row: &Row, now: u8) -> bool {
        self.lineage(row)
            .in_window(u64::from(now), u64::from(self.grace))
    }

    fn promote(&self, s: &mut State, to: Tok, now: u8) {
        let old = s.row.head;
        mark(&mut s.superseded, old, now);
        if !self.deterministic() {
            // Random children of the old head other than `to` lost the race.
            for (k, p) in s.parents.clone().iter().enumerate() {
                let k = Tok::try_from(k).unwrap();
                if *p == Some(old) && k != to {
                    mark(&mut s.superseded, k, now);
                }
            }
        }
        s.row.prev = Some(old);
        s.row.head = to;
        s.row.rotated_at = Some(now);
    }

    fn answer(&self, s: &mut State, rt: Tok) -> Answer {
        let parent = self.parent(s, rt);
        Answer::Tokens(rt, At { own: rt, parent })
    }

    fn refresh(&self, s: &mut State, x: Tok) -> Answer {
        if s.row.revoked {
            return Answer::Unauthorised;
        }
        let now = s.t;
        match self.rules {
            Rules::V2 | Rules::V2EveryPromotion => {
                let parent = self.parent(s, x).map(|p| self.h(p).to_owned());
                let mut d = self.lineage(&s.row).decide_refresh(
                    self.h(x),
                    parent.as_deref(),
                    u64::from(now),
                    u64::from(self.grace),
                );
                if self.rules == Rules::V2EveryPromotion && d == RefreshDecision::ChildInWindow {
                    d = RefreshDecision::Promote;
                }
                if d == RefreshDecision::Promote {
                    self.promote(s, x, now);
                }
                let Some(n) = d.answer_generation() else {
                    s.row.revoked = true;
                    return Answer::Theft;
                };
                let mut rt = x;
                for _ in 0..n {
                    rt = self.child(s, rt);
                }
                self.answer(s, rt)
            }
            Rules::V1 => {
                let parent = self.parent(s, x);
                let in_window = self.in_window(&s.row, now);
                if x == s.row.head {
                } else if parent == Some(s.row.head) {
                    self.promote(s, x, now);
                } else if parent.is_some() && parent == s.row.prev && in_window {
                    s.row.head = x; // adopt the sibling
                } else if Some(x) == s.row.prev && in_window {
                    let c = self.child(s, x);
                    s.row.head = c; // re-issue: the new child is current
                    return self.answer(s, c);
                } else {
                    s.row.revoked = true;
                    return Answer::Theft;
                }
                let c = self.child(s, x);
                self.answer(s, c)
            }
            Rules::Eager => {
                let in_window = self.in_window(&s.row, now);
                if x == s.row.head {
                    let c = self.child(s, x);
                    self.promote(s, c, now);
                    self.answer(s, c)
                } else if Some(x) == s.row.prev && in_window {
                    let c = self.child(s, x);
                    s.row.head = c; // re-rotate from prev: the previous child is dead
                    self.answer(s, c)
                } else {
                    s.row.revoked = true;
                    Answer::Theft
                }
            }
        }
    }

    /// A database-checked verify; `Some` new access token, `None` for none. Never theft.
    fn verify(&self, s: &mut State, at: At) -> Result<Option<At>, ()> {
        if s.row.revoked {
            return Err(());
        }
        let now = s.t;
        let fresh = Some(At {
            own: at.own,
            parent: None,
        });
        match self.rules {
            Rules::V2 | Rules::V2EveryPromotion => {
                let parent = at.parent.map(|p| self.h(p).to_owned());
                let mut d = self.lineage(&s.row).decide_verify(
                    self.h(at.own),
                    parent.as_deref(),
                    u64::from(now),
                    u64::from(self.grace),
                );
                if self.rules == Rules::V2EveryPromotion && d == VerifyDecision::ChildInWindow {
                    d = VerifyDecision::Promote;
                }
                Ok(match d {
                    VerifyDecision::Promote => {
                        self.promote(s, at.own, now);
                        fresh
                    }
                    VerifyDecision::ChildInWindow => fresh,
                    VerifyDecision::Current => at.parent.and(fresh),
                    VerifyDecision::Older => None,
                })
            }
            Rules::V1 => {
                let in_window = self.in_window(&s.row, now);
                Ok(if at.parent == Some(s.row.head) {
                    self.promote(s, at.own, now);
                    fresh
                } else if at.own == s.row.head {
                    at.parent.and(fresh)
                } else if at.parent.is_some() && at.parent == s.row.prev && in_window {
                    s.row.head = at.own;
                    fresh
                } else {
                    None
                })
            }
            // CDI 5.6 verify never writes.
            Rules::Eager => Ok(None),
        }
    }
}

fn mark(superseded: &mut Vec<(Tok, u8)>, tok: Tok, now: u8) {
    if !superseded.iter().any(|(t, _)| *t == tok) {
        superseded.push((tok, now));
        superseded.sort_unstable();
    }
}

fn deadline(r: &Req) -> u8 {
    match r {
        Req::Refresh { deadline, .. } | Req::Verify { deadline, .. } => *deadline,
    }
}

fn reply_deadline(r: &Reply) -> u8 {
    match r {
        Reply::Refreshed { deadline, .. } | Reply::Verified { deadline, .. } => *deadline,
    }
}

#[derive(Debug)]
struct Outcome {
    states: usize,
    p1: Option<String>,
    p2: Option<String>,
}

fn holds(s: &State, tok: Tok) -> bool {
    s.jar_rt == tok
        || s.inflight
            .iter()
            .any(|r| matches!(r, Req::Refresh { rt, .. } if *rt == tok))
        || s.replies
            .iter()
            .any(|r| matches!(r, Reply::Refreshed { rt, .. } if *rt == tok))
}

fn trace(nodes: &[(State, Option<usize>, String)], mut i: usize) -> String {
    let mut steps = Vec::new();
    loop {
        let (_, parent, label) = &nodes[i];
        steps.push(label.clone());
        match parent {
            Some(p) => i = *p,
            None => break,
        }
    }
    steps.reverse();
    steps.join("\n  ")
}

/// Explores every state reachable with `requests` client requests; with `stop_at_p1` it
/// returns at the first P1 violation (negative controls).
fn search(rules: Rules, grace: u8, requests: u8, stop_at_p1: bool) -> Outcome {
    let model = Model {
        rules,
        grace,
        tokens: if grace > 0 && matches!(rules, Rules::V2 | Rules::V2EveryPromotion) {
            Tokens::real_chain()
        } else {
            Tokens::random()
        },
    };
    let init = State {
        t: 0,
        row: Row {
            head: 0,
            prev: None,
            rotated_at: None,
            revoked: false,
        },
        jar_rt: 0,
        jar_at: At {
            own: 0,
            parent: None,
        },
        inflight: Vec::new(),
        replies: Vec::new(),
        sent: 0,
        lost_left: 1,
        thief: None,
        thief_left: 1,
        superseded: Vec::new(),
        parents: vec![None],
    };
    let mut nodes: Vec<(State, Option<usize>, String)> = vec![(init.clone(), None, "start".into())];
    let mut seen: HashMap<State, ()> = HashMap::new();
    seen.insert(init, ());
    let mut queue = VecDeque::from([0usize]);
    let mut out = Outcome {
        states: 0,
        p1: None,
        p2: None,
    };
    while let Some(i) = queue.pop_front() {
        if stop_at_p1 && out.p1.is_some() {
            break;
        }
        let s = nodes[i].0.clone();
        out.states += 1;
        let mut next: Vec<(State, String)> = Vec::new();
        let mut p1 = |why: String, nodes: &[(State, Option<usize>, String)]| {
            if out.p1.is_none() {
                out.p1 = Some(format!("{why}\n  {}", trace(nodes, i)));
            }
        };

        // P1 probe: with nothing in flight the stored token refreshes now and after the
        // window, and so does the answer.
        if s.inflight.is_empty() && s.replies.is_empty() && !s.row.revoked {
            for wait in [0, grace + 1] {
                let mut probe = s.clone();
                probe.t += wait;
                match model.refresh(&mut probe, s.jar_rt) {
                    Answer::Tokens(rt, _) => {
                        probe.t += grace + 1;
                        if !matches!(model.refresh(&mut probe, rt), Answer::Tokens(..)) {
                            p1(format!("probe: the answer {rt} does not refresh"), &nodes);
                        }
                    }
                    _ => p1(
                        format!(
                            "probe: stored token {} does not refresh after {wait}",
                            s.jar_rt
                        ),
                        &nodes,
                    ),
                }
            }
        }
        if s.row.revoked {
            continue;
        }
        // The client sends a request.
        if s.sent < requests {
            let mut n = s.clone();
            n.sent += 1;
            n.inflight.push(Req::Refresh {
                rt: s.jar_rt,
                deadline: s.t + D,
            });
            n.inflight.sort_unstable();
            next.push((n, format!("t={} send refresh({})", s.t, s.jar_rt)));
            let mut n = s.clone();
            n.sent += 1;
            n.inflight.push(Req::Verify {
                at: s.jar_at,
                deadline: s.t + D,
            });
            n.inflight.sort_unstable();
            next.push((n, format!("t={} send verify({:?})", s.t, s.jar_at)));
        }
        // The server handles any request in flight.
        for k in 0..s.inflight.len() {
            if k > 0 && s.inflight[k] == s.inflight[k - 1] {
                continue;
            }
            let mut n = s.clone();
            let req = n.inflight.remove(k);
            match req {
                Req::Refresh { rt, deadline } => match model.refresh(&mut n, rt) {
                    Answer::Tokens(new_rt, at) => {
                        n.replies.push(Reply::Refreshed {
                            rt: new_rt,
                            at,
                            deadline,
                        });
                        n.replies.sort_unstable();
                        next.push((n, format!("t={} refresh({rt}) -> {new_rt}", s.t)));
                    }
                    _ => {
                        p1(
                            format!("t={} honest refresh({rt}) answered theft", s.t),
                            &nodes,
                        );
                    }
                },
                Req::Verify { at, deadline } => match model.verify(&mut n, at) {
                    Ok(new_at) => {
                        if let Some(at) = new_at {
                            n.replies.push(Reply::Verified { at, deadline });
                            n.replies.sort_unstable();
                        }
                        next.push((n, format!("t={} verify({at:?}) -> {new_at:?}", s.t)));
                    }
                    Err(()) => p1(format!("t={} honest verify unauthorised", s.t), &nodes),
                },
            }
        }
        // A reply arrives (any order) or is lost.
        for k in 0..s.replies.len() {
            if k > 0 && s.replies[k] == s.replies[k - 1] {
                continue;
            }
            let mut n = s.clone();
            let reply = n.replies.remove(k);
            match reply {
                Reply::Refreshed { rt, at, .. } => {
                    n.jar_rt = rt;
                    n.jar_at = at;
                    if s.lost_left > 0 {
                        let mut l = s.clone();
                        l.replies.remove(k);
                        l.lost_left -= 1;
                        l.inflight.push(Req::Refresh {
                            rt: s.jar_rt,
                            deadline: s.t + D,
                        });
                        l.inflight.sort_unstable();
                        next.push((
                            l,
                            format!("t={} reply {rt} lost, retry with {}", s.t, s.jar_rt),
                        ));
                    }
                }
                Reply::Verified { at, .. } => n.jar_at = at,
            }
            next.push((n, format!("t={} deliver {reply:?}", s.t)));
        }
        // The clock.
        let earliest = s
            .inflight
            .iter()
            .map(deadline)
            .chain(s.replies.iter().map(reply_deadline))
            .min();
        if s.t < T_MAX && earliest.is_none_or(|d| d > s.t) {
            let mut n = s.clone();
            n.t += 1;
            next.push((n, format!("tick to {}", s.t + 1)));
        }
        if earliest.is_none() && s.t + grace < T_MAX {
            let mut n = s.clone();
            n.t += grace + 1;
            next.push((n, format!("idle to {}", s.t + grace + 1)));
        }
        // The thief copies the stored refresh token, and presents it later.
        if s.thief.is_none() && s.thief_left > 0 {
            let mut n = s.clone();
            n.thief = Some(s.jar_rt);
            n.thief_left = 0;
            next.push((n, format!("t={} thief copies {}", s.t, s.jar_rt)));
        }
        if let Some(stolen) = s.thief {
            let mut n = s.clone();
            let superseded_at = s.superseded.iter().find(|(t, _)| *t == stolen).map(|p| p.1);
            let late = superseded_at.is_some_and(|at| s.t > at + grace) && !holds(&s, stolen);
            match model.refresh(&mut n, stolen) {
                Answer::Theft => {
                    assert!(n.row.revoked);
                    assert!(matches!(
                        model.refresh(&mut n.clone(), s.jar_rt),
                        Answer::Unauthorised
                    ));
                }
                _ if late && out.p2.is_none() => {
                    out.p2 = Some(format!(
                        "t={} stolen {stolen} (superseded at {superseded_at:?}) accepted\n  {}",
                        s.t,
                        trace(&nodes, i)
                    ));
                }
                // Answered tokens: the session is now shared with the thief; stop here.
                _ => {}
            }
        }
        for (n, label) in next {
            if !seen.contains_key(&n) {
                seen.insert(n.clone(), ());
                nodes.push((n, Some(i), label));
                queue.push_back(nodes.len() - 1);
            }
        }
    }
    out
}

#[test]
fn v2_rules_keep_p1_and_p2_with_a_window() {
    let started = std::time::Instant::now();
    let out = search(Rules::V2, G, REQUESTS, false);
    println!(
        "v2, G = {G}: {} states, {:?}",
        out.states,
        started.elapsed()
    );
    assert!(out.p1.is_none(), "P1 violated:\n{}", out.p1.unwrap());
    assert!(out.p2.is_none(), "P2 violated:\n{}", out.p2.unwrap());
    assert!(out.states > 10_000, "the scope is not trivial");
}

#[test]
fn v2_rules_keep_p2_with_grace_0() {
    let out = search(Rules::V2, 0, REQUESTS - 2, false);
    println!("v2, G = 0: {} states", out.states);
    assert!(out.p2.is_none(), "P2 violated:\n{}", out.p2.unwrap());
    // Strict CDI 5.4: concurrent refreshes do end in theft without a window.
    assert!(out.p1.is_some(), "grace 0 is strict");
}

fn assert_fails_p1(rules: Rules) {
    let out = search(rules, G, REQUESTS, true);
    println!(
        "{rules:?} (negative control): {} states, P1 counterexample:\n  {}",
        out.states,
        out.p1.as_deref().unwrap_or("none")
    );
    assert!(out.p1.is_some(), "{rules:?} should fail P1 in this scope");
}

#[test]
fn negative_control_v1_rules_fail_p1() {
    assert_fails_p1(Rules::V1);
}

#[test]
fn negative_control_eager_re_rotation_fails_p1() {
    assert_fails_p1(Rules::Eager);
}

#[test]
fn negative_control_a_second_promotion_in_the_window_fails_p1() {
    assert_fails_p1(Rules::V2EveryPromotion);
}
